/**
 * A runtime session on a model held in memory (e.g. with LoRA weights merged in): passed as bytes when it
 * fits in one protobuf message, else written with external data to a temporary folder, opened from there
 * and the folder removed (the runtime has read the weights by then).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROTOBUF_LIMIT, encodeModel } from '../onnx/codec.js';
import { saveModel } from '../onnx/external-data.js';
import type { Model } from '../onnx/ir.js';
import type { Runtime, Session, SessionOptions } from '../runtime/types.js';

export async function createSessionFromModel(
  runtime: Runtime,
  model: Model,
  options: SessionOptions = {},
): Promise<Session> {
  let bytes = 0;
  for (const t of model.graph.initializers) bytes += t.data?.byteLength ?? 0;
  if (bytes < PROTOBUF_LIMIT / 2) return runtime.createSession(encodeModel(model), options);
  const dir = await mkdtemp(join(tmpdir(), 'vidprior-model-'));
  try {
    const path = join(dir, 'model.onnx');
    await saveModel(model, path, { externalData: { threshold: 1024, fileName: 'model.onnx.data' } });
    return await runtime.createSession(path, options);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
