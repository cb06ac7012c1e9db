/**
 * Full fine-tune results as files: the learned delta of every UNet weight, in safetensors, keyed
 * `unet.<diffusers parameter name>` in diffusers' layout (Linear weights [out, in], norm scales [C]), so that
 * base + delta is the fine-tuned diffusers state dict. The metadata marks the file (`vidprior_delta`) and
 * carries vidprior's training record (`vidprior`), like a LoRA adapter's.
 *
 * Loading for inference folds the delta into the base weights in place, one tensor at a time: the base
 * weights are in memory once, the delta file is read tensor by tensor.
 */
import { VidpriorError } from '../errors.js';
import { loadExternalData } from '../onnx/external-data.js';
import type { Model } from '../onnx/ir.js';
import { type Adapter, type AdapterRecord, saveAdapter } from './adapter.js';
import { type FullParam, findFullParams, fromTorchLayout, toTorchLayout } from './full.js';
import { type SafeTensor, type SafetensorsReader, writeSafetensors } from './safetensors.js';

export const DELTA_FORMAT = 'vidprior-full-delta/1';

/** A full fine-tune's result in memory: per parameter, its delta in graph layout. */
export interface FullDeltaAdapter {
  kind: 'full';
  deltas: Map<string, { param: FullParam; data: Float32Array }>;
  record: Partial<AdapterRecord>;
}

/** The tensors of a delta file (diffusers layout). */
export function deltaTensors(entries: Iterable<{ param: FullParam; data: Float32Array }>): Map<string, SafeTensor> {
  const tensors = new Map<string, SafeTensor>();
  for (const { param, data } of entries)
    tensors.set(`unet.${param.name}`, { type: 'float32', dims: param.torchDims, data: toTorchLayout(param, data) });
  return tensors;
}

export async function saveFullDelta(path: string, adapter: FullDeltaAdapter): Promise<void> {
  await writeSafetensors(path, deltaTensors(adapter.deltas.values()), {
    format: 'pt',
    vidprior_delta: DELTA_FORMAT,
    vidprior: JSON.stringify({ ...adapter.record, kind: 'full' }),
  });
}

/** True when a safetensors file's metadata marks a full delta. */
export function isFullDelta(metadata: Record<string, string>): boolean {
  return metadata.vidprior_delta !== undefined;
}

/** The record stored in a delta file. */
export function deltaRecord(reader: SafetensorsReader): Partial<AdapterRecord> {
  try {
    return JSON.parse(reader.metadata.vidprior ?? '{}') as Partial<AdapterRecord>;
  } catch {
    return {};
  }
}

/** Where delta tensors come from: a file read tensor by tensor, or a fine-tune's result in memory. */
export interface DeltaSource {
  label: string;
  entries: Map<string, { type: string; dims: number[] }>;
  read(key: string): Promise<Float32Array>;
}

export function deltaSourceOf(adapter: FullDeltaAdapter): DeltaSource {
  const tensors = deltaTensors(adapter.deltas.values());
  return {
    label: 'the fine-tuned delta',
    entries: new Map([...tensors].map(([k, t]) => [k, { type: t.type, dims: t.dims }])),
    read: async (key) => tensors.get(key)!.data as Float32Array,
  };
}

export function deltaSourceOfFile(reader: SafetensorsReader, path: string): DeltaSource {
  if (reader.metadata.vidprior_delta !== DELTA_FORMAT)
    throw new VidpriorError(
      'E_ADAPTER',
      `${path} is a full-UNet delta of format ${JSON.stringify(reader.metadata.vidprior_delta)}, expected ${DELTA_FORMAT}`,
      { file: path },
    );
  return {
    label: path,
    entries: reader.entries,
    read: async (key) => (await reader.read(key)).data as Float32Array,
  };
}

/**
 * Adds a delta to the model's weights, in place. Weights that exporters share between layers (see full.ts)
 * get their own copy for each layer the delta changes. Every tensor of the delta must match a weight of the
 * model (name and shape), or E_ADAPTER names the first misfit. Returns how many weights changed.
 */
export async function mergeFullDelta(model: Model, source: DeltaSource): Promise<number> {
  const params = new Map(findFullParams(model).map((p) => [`unet.${p.name}`, p]));
  const g = model.graph;
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const readers = new Map<string, number>(); // initializer → how many params read it
  for (const p of params.values()) readers.set(p.initializer, (readers.get(p.initializer) ?? 0) + 1);
  const nodes = new Map(g.nodes.map((n) => [n.name, n]));
  let changed = 0;
  for (const [key, entry] of source.entries) {
    const p = params.get(key);
    if (!p)
      throw new VidpriorError(
        'E_ADAPTER',
        `${source.label} does not fit this model: it changes ${key}, which the model lacks`,
        { key },
      );
    if (entry.type !== 'float32' || entry.dims.join() !== p.torchDims.join())
      throw new VidpriorError(
        'E_ADAPTER',
        `${source.label} does not fit this model: ${key} is ${entry.type} [${entry.dims}], the model's is float32 [${p.torchDims}]`,
        { key },
      );
    const base = inits.get(p.initializer)!;
    if (!base.data) await loadExternalData([base]);
    const delta = fromTorchLayout(p, await source.read(key));
    const shared = readers.get(p.initializer)! > 1;
    // A shared weight: this layer gets its own copy; a weight of one layer is changed where it lies.
    const target = shared ? Float32Array.from(base.data as Float32Array) : (base.data as Float32Array);
    for (let i = 0; i < target.length; i++) target[i] = target[i]! + delta[i]!;
    if (shared) {
      const name = `${p.initializer}/${p.name}`;
      g.initializers.push({ name, type: 'float32', dims: [...base.dims], data: target });
      nodes.get(p.node)!.inputs[p.input] = name;
    }
    changed++;
  }
  return changed;
}

export function isFullDeltaAdapter(a: Adapter | FullDeltaAdapter): a is FullDeltaAdapter {
  return 'kind' in a && a.kind === 'full';
}

/** Writes a fine-tune's result: a LoRA adapter file, or a full-UNet delta file. */
export async function saveFinetuned(path: string, a: Adapter | FullDeltaAdapter): Promise<void> {
  if (isFullDeltaAdapter(a)) await saveFullDelta(path, a);
  else await saveAdapter(path, a);
}
