/**
 * A UNet session with fine-tuned weights folded in: a LoRA adapter (adapter.ts mergeAdapter) or a full-UNet
 * delta (full-delta.ts mergeFullDelta), told apart by the file's metadata. Inference with the fine-tuned
 * model at the base model's speed. The pipelines take it through `StylizeOptions.unet` or
 * `loadModelFolder(…, { unet })`. The base weights are loaded once and changed in place.
 */
import { join } from 'node:path';
import { createSessionFromModel } from '../models/session-from-model.js';
import { forEachTensor, loadExternalData, loadModel } from '../onnx/external-data.js';
import type { Model, TensorValue } from '../onnx/ir.js';
import type { Runtime, Session, SessionOptions } from '../runtime/types.js';
import { type Adapter, type AdapterRecord, loadAdapter, mergeAdapter } from './adapter.js';
import {
  type FullDeltaAdapter,
  deltaRecord,
  deltaSourceOf,
  deltaSourceOfFile,
  isFullDelta,
  mergeFullDelta,
} from './full-delta.js';
import { findLoraTargets } from './lora.js';
import { openSafetensors } from './safetensors.js';

export interface AdaptedUnet {
  session: Session;
  /** 'lora' (with `adapter`) or 'full' (a delta on every weight). */
  kind: 'lora' | 'full';
  /** The LoRA adapter (LoRA only). */
  adapter?: Adapter;
  /** How it was made (prompt, iterations, …). */
  record: Partial<AdapterRecord>;
  /** How many layers (LoRA) or weights (full) it changed. */
  layers: number;
}

/**
 * Loads `<modelDir>/unet/model.onnx` (or takes `base`, a UNet already in memory, e.g. with style LoRAs merged:
 * it is changed in place), merges the adapter (a file or in memory) and opens a session on it.
 */
export async function createAdaptedUnet(
  runtime: Runtime,
  modelDir: string,
  adapter: string | Adapter | FullDeltaAdapter,
  options: SessionOptions & { base?: Model } = {},
): Promise<AdaptedUnet> {
  const { base, ...sessionOptions } = options;
  const model = base ?? (await loadModel(join(modelDir, 'unet', 'model.onnx'), { loadExternal: false }));
  let about: Omit<AdaptedUnet, 'session'>;
  const reader = typeof adapter === 'string' ? await openSafetensors(adapter) : null;
  try {
    if (reader && isFullDelta(reader.metadata)) {
      const layers = await mergeFullDelta(model, deltaSourceOfFile(reader, adapter as string));
      about = { kind: 'full', record: deltaRecord(reader), layers };
    } else if (typeof adapter !== 'string' && 'kind' in adapter && adapter.kind === 'full') {
      const layers = await mergeFullDelta(model, deltaSourceOf(adapter));
      about = { kind: 'full', record: adapter.record, layers };
    } else {
      const source = typeof adapter === 'string' ? adapter : 'adapter';
      const loaded = typeof adapter === 'string' ? await loadAdapter(adapter) : (adapter as Adapter);
      await loadExternalData(externalTensors(model));
      const convs = [...loaded.weights.values()].some((w) => w.kind === 'conv');
      mergeAdapter(model, findLoraTargets(model, { convs }), loaded, source);
      about = { kind: 'lora', adapter: loaded, record: loaded.record, layers: loaded.weights.size };
    }
  } finally {
    await reader?.close();
  }
  const label = sessionOptions.label ?? 'unet+adapter';
  // The merged weights are the runtime's from here on: never two copies of them in memory.
  const session = await createSessionFromModel(runtime, model, { ...sessionOptions, label, releaseWeights: true });
  return { ...about, session };
}

function externalTensors(model: Model): TensorValue[] {
  const out: TensorValue[] = [];
  forEachTensor(model.graph, (t) => {
    if (t.external && !t.data) out.push(t);
  });
  return out;
}
