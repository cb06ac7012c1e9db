/**
 * One-node Identity models, per element type. The worker uses them to probe an execution provider (a tiny
 * session that must create and run) and to read GPU-resident tensors back to the host: feeding a 'gpu-buffer'
 * tensor to an Identity session whose output lives on the CPU is the safe download path (getData() on such a
 * tensor aborts the process in onnxruntime-node 1.30).
 */
import { GraphBuilder } from '../onnx/builder.js';
import { encodeModel } from '../onnx/codec.js';
import type { DType } from '../tensor.js';

/** ONNX model bytes: y = Identity(x), x of element type `type` and any shape. */
export function identityModel(type: DType): Uint8Array {
  const b = new GraphBuilder(`vidprior_identity_${type}`, { opset: 17 });
  const x = b.input('x', type, null);
  b.output(b.op('Identity', [x], {}, { outputs: ['y'] }), undefined, type, null);
  return encodeModel(b.build());
}
