/**
 * A runtime session on a model held in memory (e.g. with LoRA weights merged in): passed as bytes when it
 * fits in one protobuf message (tensors still in their external file are read in first), else written with
 * external data to a temporary folder, opened from there and the folder removed (the runtime has read the
 * weights by then).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROTOBUF_LIMIT, encodeModel } from '../onnx/codec.js';
import { forEachTensor, loadExternalData, saveModel } from '../onnx/external-data.js';
import type { Model, TensorValue } from '../onnx/ir.js';
import type { Runtime, Session, SessionOptions } from '../runtime/types.js';

export interface SessionFromModelOptions extends SessionOptions {
  /**
   * Drop the model's weights once they are written for the runtime (big models only): the caller is done with
   * the model, and the runtime reads its own copy, so the two are never held at once.
   */
  releaseWeights?: boolean;
}

export async function createSessionFromModel(
  runtime: Runtime,
  model: Model,
  options: SessionFromModelOptions = {},
): Promise<Session> {
  const { releaseWeights, ...sessionOptions } = options;
  let bytes = 0;
  for (const t of model.graph.initializers) bytes += t.data?.byteLength ?? t.external?.length ?? 0;
  if (bytes < PROTOBUF_LIMIT / 2) {
    await loadExternalData(externalTensors(model));
    return runtime.createSession(encodeModel(model), sessionOptions);
  }
  const dir = await mkdtemp(join(tmpdir(), 'vidprior-model-'));
  try {
    const path = join(dir, 'model.onnx');
    await saveModel(model, path, { externalData: { threshold: 1024, fileName: 'model.onnx.data' } });
    if (releaseWeights) model.graph.initializers = [];
    return await runtime.createSession(path, sessionOptions);
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
