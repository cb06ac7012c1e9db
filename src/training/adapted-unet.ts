/**
 * A UNet session with a LoRA adapter folded into its weights (adapter.ts mergeAdapter): inference with the
 * fine-tuned model at the base model's speed. The pipelines take it through `StylizeOptions.unet` or
 * `loadModelFolder(…, { unet })`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeModel, PROTOBUF_LIMIT } from '../onnx/codec.js';
import { loadModel, saveModel } from '../onnx/external-data.js';
import type { Runtime, Session, SessionOptions } from '../runtime/types.js';
import { type Adapter, loadAdapter, mergeAdapter } from './adapter.js';
import { findLoraTargets } from './lora.js';

export interface AdaptedUnet {
  session: Session;
  adapter: Adapter;
  /** How many layers the adapter changed. */
  layers: number;
}

/** Loads `<modelDir>/unet/model.onnx`, merges the adapter (a file or in memory) and opens a session on it. */
export async function createAdaptedUnet(
  runtime: Runtime,
  modelDir: string,
  adapter: string | Adapter,
  options: SessionOptions = {},
): Promise<AdaptedUnet> {
  const source = typeof adapter === 'string' ? adapter : 'adapter';
  const loaded = typeof adapter === 'string' ? await loadAdapter(adapter) : adapter;
  const model = await loadModel(join(modelDir, 'unet', 'model.onnx'));
  const convs = [...loaded.weights.values()].some((w) => w.kind === 'conv');
  const targets = findLoraTargets(model, { convs });
  mergeAdapter(model, targets, loaded, source);
  const label = options.label ?? 'unet+adapter';
  let bytes = 0;
  for (const t of model.graph.initializers) bytes += t.data?.byteLength ?? 0;
  if (bytes < PROTOBUF_LIMIT / 2) {
    return {
      session: await runtime.createSession(encodeModel(model), { ...options, label }),
      adapter: loaded,
      layers: loaded.weights.size,
    };
  }
  // Too big for one protobuf message: write it with external data, open it from the path.
  const dir = await mkdtemp(join(tmpdir(), 'vidprior-unet-'));
  try {
    const path = join(dir, 'model.onnx');
    await saveModel(model, path, { externalData: { threshold: 1024, fileName: 'model.onnx.data' } });
    return {
      session: await runtime.createSession(path, { ...options, label }),
      adapter: loaded,
      layers: loaded.weights.size,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
