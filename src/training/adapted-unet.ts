/**
 * A UNet session with a LoRA adapter folded into its weights (adapter.ts mergeAdapter): inference with the
 * fine-tuned model at the base model's speed. The pipelines take it through `StylizeOptions.unet` or
 * `loadModelFolder(…, { unet })`.
 */
import { join } from 'node:path';
import { createSessionFromModel } from '../models/session-from-model.js';
import { loadModel } from '../onnx/external-data.js';
import type { Model } from '../onnx/ir.js';
import type { Runtime, Session, SessionOptions } from '../runtime/types.js';
import { type Adapter, loadAdapter, mergeAdapter } from './adapter.js';
import { findLoraTargets } from './lora.js';

export interface AdaptedUnet {
  session: Session;
  adapter: Adapter;
  /** How many layers the adapter changed. */
  layers: number;
}

/**
 * Loads `<modelDir>/unet/model.onnx` (or takes `base`, a UNet already in memory, e.g. with style LoRAs merged:
 * it is changed in place), merges the adapter (a file or in memory) and opens a session on it.
 */
export async function createAdaptedUnet(
  runtime: Runtime,
  modelDir: string,
  adapter: string | Adapter,
  options: SessionOptions & { base?: Model } = {},
): Promise<AdaptedUnet> {
  const source = typeof adapter === 'string' ? adapter : 'adapter';
  const loaded = typeof adapter === 'string' ? await loadAdapter(adapter) : adapter;
  const { base, ...sessionOptions } = options;
  const model = base ?? (await loadModel(join(modelDir, 'unet', 'model.onnx')));
  const convs = [...loaded.weights.values()].some((w) => w.kind === 'conv');
  const targets = findLoraTargets(model, { convs });
  mergeAdapter(model, targets, loaded, source);
  const session = await createSessionFromModel(runtime, model, {
    ...sessionOptions,
    label: sessionOptions.label ?? 'unet+adapter',
  });
  return { session, adapter: loaded, layers: loaded.weights.size };
}
