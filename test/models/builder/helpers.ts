/** Shared bits of the builder tests: running a built graph on the CPU runtime, and value checks. */
import assert from 'node:assert/strict';
import { encodeModel } from '../../../src/onnx/codec.js';
import type { Model } from '../../../src/onnx/ir.js';
import type { Runtime } from '../../../src/runtime/index.js';
import { isGpuTensor } from '../../../src/runtime/index.js';
import { type Tensor, asFloat32 } from '../../../src/tensor.js';

export async function runModel(
  runtime: Runtime,
  model: Model,
  feeds: Record<string, Tensor>,
): Promise<Record<string, Tensor<'float32'>>> {
  const session = await runtime.createSession(encodeModel(model), { label: model.graph.name });
  try {
    const out = await session.run(feeds);
    const host: Record<string, Tensor<'float32'>> = {};
    for (const [k, v] of Object.entries(out)) {
      assert.ok(!isGpuTensor(v));
      host[k] = asFloat32(v as Tensor);
    }
    return host;
  } finally {
    await session.release();
  }
}

/** Asserts finite values that are neither constant nor exploding (random nets must stay O(1)). */
export function assertHealthy(t: Tensor<'float32'>, what: string): { mean: number; std: number } {
  let s = 0,
    s2 = 0,
    maxAbs = 0;
  for (const v of t.data) {
    assert.ok(Number.isFinite(v), `${what}: non-finite value`);
    s += v;
    s2 += v * v;
    maxAbs = Math.max(maxAbs, Math.abs(v));
  }
  const mean = s / t.data.length;
  const std = Math.sqrt(Math.max(0, s2 / t.data.length - mean * mean));
  assert.ok(std > 0.05 && std < 10, `${what}: std ${std}`);
  assert.ok(maxAbs < 100, `${what}: max |x| ${maxAbs}`);
  return { mean, std };
}
