import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  makeFlow,
  makePlane,
  pyrDown,
  resizeRgb,
  sampleBilinear,
  upsampleFlow,
  warpPlane,
  warpPlaneBicubic,
} from '../../src/metrics/image.js';

function ramp(w: number, h: number) {
  const p = makePlane(w, h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) p.data[y * w + x] = (x + 10 * y) / 1000;
  return p;
}

test('bilinear sampling is exact on a linear ramp and clamps like Resample2d at the border', () => {
  const p = ramp(8, 6);
  assert.ok(Math.abs(sampleBilinear(p.data, 8, 6, 2.25, 3.5) - (2.25 + 35) / 1000) < 1e-7);
  // Outside the frame both neighbours clamp to the edge pixel: the edge value, whatever the fraction.
  assert.equal(sampleBilinear(p.data, 8, 6, -3.7, 0), p.data[0]);
  assert.ok(Math.abs(sampleBilinear(p.data, 8, 6, 9.5, 2) - p.data[2 * 8 + 7]) < 1e-7);
});

test('warping by a constant flow reads the source at x + flow (backward warp)', () => {
  const p = ramp(16, 12);
  const f = makeFlow(16, 12);
  f.u.fill(2);
  f.v.fill(-1);
  for (const warped of [warpPlane(p, f), warpPlaneBicubic(p, f)]) {
    for (const [x, y] of [
      [3, 5],
      [10, 2],
      [0, 11],
    ]) {
      assert.ok(Math.abs(warped.data[y * 16 + x] - p.data[(y - 1) * 16 + x + 2]) < 1e-6, `at ${x},${y}`);
    }
  }
});

test('pyramid halves with ceil and flow upsampling doubles the vectors', () => {
  const p = ramp(33, 20);
  const d = pyrDown(p);
  assert.deepEqual([d.width, d.height], [17, 10]);
  const f = makeFlow(17, 10);
  f.u.fill(1.5);
  const up = upsampleFlow(f, 33, 20);
  assert.ok(up.u.every((v) => Math.abs(v - 3) < 1e-6));
  assert.ok(up.v.every((v) => v === 0));
});

test('resize keeps a constant image constant and changes the size', () => {
  const img = { width: 40, height: 30, data: new Float32Array(3 * 40 * 30).fill(0.25) };
  const small = resizeRgb(img, 13, 7);
  assert.deepEqual([small.width, small.height], [13, 7]);
  assert.ok(small.data.every((v) => Math.abs(v - 0.25) < 1e-6));
  const big = resizeRgb(img, 97, 61);
  assert.ok(big.data.every((v) => Math.abs(v - 0.25) < 1e-6));
});
