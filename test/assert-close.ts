// Comparisons the tests share: the largest element-wise difference of two arrays or tensors, and a rejection with
// a given VidpriorError code. One copy here, so every test measures "close" the same way.
import assert from 'node:assert/strict';
import { VidpriorError } from '../src/errors.js';
import { type Tensor, asFloat32 } from '../src/tensor.js';

/** max |a[i] − b[i]| of two arrays of the same length (a length mismatch fails the test). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'element count');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** max |a − b| of two tensors of the same dims (float16 compared as float32, integers as numbers). */
export function maxTensorDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.dims, b.dims);
  const values = (t: Tensor): ArrayLike<number> =>
    t.type === 'float16' || t.type === 'float32' ? asFloat32(t).data : Array.from(t.data as ArrayLike<number>, Number);
  return maxAbsDiff(values(a), values(b));
}

/** Awaits a rejection that is a VidpriorError with `code` and, when given, a message matching `text`. */
export async function rejectsWith(p: Promise<unknown>, code: string, text?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof VidpriorError, `expected a VidpriorError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (text) assert.match(err.message, text);
    return true;
  });
}
