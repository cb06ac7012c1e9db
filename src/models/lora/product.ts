/**
 * The products of a LoRA merge, Δ = A·B (A [n, r], B [r, m], row-major), two ways:
 *   - `jsProduct`: in JavaScript with float64 sums, so the merged float32 weights are exact (tests compare
 *     against this); about 0.2–0.5 G multiply-adds per second;
 *   - `runtimeProduct`: a MatMul run by the ONNX runtime (MLAS on the CPU, the GPU elsewhere), float32 sums,
 *     tens of times faster: an SD 1.5 LoRA of rank 32 is ~10 G multiply-adds.
 */
import { GraphBuilder } from '../../onnx/builder.js';
import { encodeModel } from '../../onnx/codec.js';
import type { Runtime } from '../../runtime/types.js';
import { isGpuTensor } from '../../runtime/types.js';
import { float32 } from '../../tensor.js';

export type LowRankProduct = (
  a: Float64Array,
  b: Float64Array,
  n: number,
  r: number,
  m: number,
) => Promise<ArrayLike<number>>;

/**
 * delta[o, :] += Σ_k a[o, k] · b[k, :], four k at a time: the row of delta is read and written once per four
 * products, which is what bounds this loop.
 */
function addLowRank(delta: Float64Array, a: Float64Array, b: Float64Array, n: number, r: number, m: number): void {
  for (let o = 0; o < n; o++) {
    const row = o * m;
    let k = 0;
    for (; k + 4 <= r; k += 4) {
      const u0 = a[o * r + k]!;
      const u1 = a[o * r + k + 1]!;
      const u2 = a[o * r + k + 2]!;
      const u3 = a[o * r + k + 3]!;
      const b0 = k * m;
      const b1 = b0 + m;
      const b2 = b1 + m;
      const b3 = b2 + m;
      for (let j = 0; j < m; j++)
        delta[row + j] += u0 * b[b0 + j]! + u1 * b[b1 + j]! + u2 * b[b2 + j]! + u3 * b[b3 + j]!;
    }
    for (; k < r; k++) {
      const u = a[o * r + k]!;
      const bk = k * m;
      for (let j = 0; j < m; j++) delta[row + j] += u * b[bk + j]!;
    }
  }
}

export const jsProduct: LowRankProduct = async (a, b, n, r, m) => {
  const delta = new Float64Array(n * m);
  addLowRank(delta, a, b, n, r, m);
  return delta;
};

/** A product run by `runtime` (one small MatMul session with free dims, released by `release`). */
export async function runtimeProduct(runtime: Runtime): Promise<{ product: LowRankProduct; release(): Promise<void> }> {
  const g = new GraphBuilder('lora_merge_product', { opset: 17 });
  const a = g.input('a', 'float32', ['n', 'r']);
  const b = g.input('b', 'float32', ['r', 'm']);
  g.output(g.op('MatMul', [a, b]), 'delta');
  const session = await runtime.createSession(encodeModel(g.build()), { label: 'lora-merge' });
  return {
    async product(av, bv, n, r, m) {
      const out = await session.run({
        a: float32([n, r], Float32Array.from(av)),
        b: float32([r, m], Float32Array.from(bv)),
      });
      const delta = out.delta!;
      return (isGpuTensor(delta) ? await runtime.read(delta) : delta).data as Float32Array;
    },
    release: () => session.release(),
  };
}
