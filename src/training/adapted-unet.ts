/**
 * A UNet session with fine-tuned weights folded in: a LoRA adapter (adapter.ts mergeAdapter) or a full-UNet
 * delta (full-delta.ts mergeFullDelta), told apart by the file's metadata. Inference with the fine-tuned
 * model at the base model's speed. The pipelines take it through `StylizeOptions.unet` or
 * `loadModelFolder(…, { unet })`. The base weights are loaded once and changed in place.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeModel, PROTOBUF_LIMIT } from '../onnx/codec.js';
import { forEachTensor, loadExternalData, loadModel, saveModel } from '../onnx/external-data.js';
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

/** Loads `<modelDir>/unet/model.onnx`, merges the adapter (a file or in memory) and opens a session on it. */
export async function createAdaptedUnet(
  runtime: Runtime,
  modelDir: string,
  adapter: string | Adapter | FullDeltaAdapter,
  options: SessionOptions = {},
): Promise<AdaptedUnet> {
  const model = await loadModel(join(modelDir, 'unet', 'model.onnx'), { loadExternal: false });
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
  const label = options.label ?? 'unet+adapter';
  let bytes = 0;
  for (const t of model.graph.initializers) bytes += t.data?.byteLength ?? t.external?.length ?? 0;
  if (bytes < PROTOBUF_LIMIT / 2) {
    await loadExternalData(externalTensors(model));
    return { ...about, session: await runtime.createSession(encodeModel(model), { ...options, label }) };
  }
  // Too big for one protobuf message: write it with external data, open it from the path.
  const dir = await mkdtemp(join(tmpdir(), 'vidprior-unet-'));
  try {
    const path = join(dir, 'model.onnx');
    await saveModel(model, path, { externalData: { threshold: 1024, fileName: 'model.onnx.data' } });
    // The weights now live in the file: let the model's copy go before ORT reads its own.
    model.graph.initializers = [];
    return { ...about, session: await runtime.createSession(path, { ...options, label }) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function externalTensors(model: Model): TensorValue[] {
  const out: TensorValue[] = [];
  forEachTensor(model.graph, (t) => {
    if (t.external && !t.data) out.push(t);
  });
  return out;
}
