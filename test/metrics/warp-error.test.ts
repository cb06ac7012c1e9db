import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeFlow, type RgbImage } from '../../src/metrics/image.js';
import type { OcclusionMask } from '../../src/metrics/occlusion.js';
import { pairFlicker, pairWarpError } from '../../src/metrics/warp-error.js';

const W = 8;
const H = 4;
const N = W * H;

/** A frame whose channel c at (x, y) is f(x, y, c). */
function frame(f: (x: number, y: number, c: number) => number): RgbImage {
  const data = new Float32Array(3 * N);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data[c * N + y * W + x] = f(x, y, c);
  return { width: W, height: H, data };
}

function mask(occluded: (x: number, y: number) => boolean): OcclusionMask {
  const data = new Uint8Array(N);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data[y * W + x] = occluded(x, y) ? 1 : 0;
  return { width: W, height: H, data, fraction: data.reduce((a, b) => a + b, 0) / N };
}

test('frame t+1 is warped BACK with the forward flow: content moving right by 2 px gives zero error', () => {
  const a = frame((x, y, c) => 0.1 * x + 0.05 * y + 0.2 * c);
  const b = frame((x, y, c) => 0.1 * (x - 2) + 0.05 * y + 0.2 * c); // b(x) = a(x − 2): moved right
  const forward = makeFlow(W, H);
  forward.u.fill(2); // pixel x of frame t is at x + 2 in frame t+1
  const nothingOccluded = mask(() => false);
  const inside = mask((x) => x >= W - 2); // the last two columns leave the frame: left out here
  assert.ok(pairWarpError(a, b, forward, inside) < 1e-12);
  const backwards = makeFlow(W, H);
  backwards.u.fill(-2);
  assert.ok(pairWarpError(a, b, backwards, inside) > 0.01, 'the other direction does not align the frames');
  assert.ok(
    pairWarpError(a, b, forward, nothingOccluded) > 0,
    'border pixels read the clamped edge, as Resample2d does',
  );
});

test('E_warp is the mean over visible pixels and the three channels (Lai et al. divide by the 3-channel mask sum)', () => {
  const a = frame(() => 0.5);
  const b = frame((x, _y, c) => (c === 1 && x < 4 ? 0.7 : 0.5)); // only green differs, by 0.2, on the left half
  const still = makeFlow(W, H);
  const leftVisible = mask((x) => x >= 4 && x < 6); // 2 of the 4 right columns occluded; left half visible
  // Visible: 4 left columns (error 0.04 in green) + 2 right columns (no error) = 6 columns × 4 rows.
  const expected = (4 * H * 0.04) / (3 * 6 * H);
  assert.ok(
    Math.abs(pairWarpError(a, b, still, leftVisible) - expected) < 1e-6,
    `${pairWarpError(a, b, still, leftVisible)} vs ${expected}`,
  ); // float32 frames
  // Everything occluded: the reference divides a zero sum by H·W·3, so 0.
  assert.equal(
    pairWarpError(
      a,
      b,
      still,
      mask(() => true),
    ),
    0,
  );
});

test('flicker is the mean absolute difference over all pixels and channels', () => {
  const a = frame(() => 0.25);
  const b = frame((_x, _y, c) => (c === 0 ? 0.55 : 0.25));
  assert.ok(Math.abs(pairFlicker(a, b) - 0.3 / 3) < 1e-7);
});
