import { test } from 'node:test';
import assert from 'node:assert/strict';
import { disFlow } from '../../src/metrics/flow-dis.js';
import { makeFlow, rgbToGray } from '../../src/metrics/image.js';
import { detectOcclusion } from '../../src/metrics/occlusion.js';
import { renderWithSquare, smoothTexture } from '../../src/metrics/synthetic.js';

const W = 112;
const H = 96;

test('a consistent constant flow pair is not occluded; inconsistent vectors are', () => {
  const f = makeFlow(32, 32);
  const b = makeFlow(32, 32);
  f.u.fill(3);
  b.u.fill(-3);
  assert.equal(detectOcclusion(f, b).fraction, 0);
  b.u.fill(0); // B̂ = 0: |F + B̂|² = 9 > 0.01·9 + 0.5
  assert.equal(detectOcclusion(f, b).fraction, 1);
});

test('a motion boundary in the forward flow is flagged on its forward-difference side', () => {
  const f = makeFlow(16, 8);
  const b = makeFlow(16, 8);
  for (let y = 0; y < 8; y++) {
    for (let x = 8; x < 16; x++) {
      f.u[y * 16 + x] = 0.05; // tiny motion: the forward–backward check passes (|F + B̂|² ≪ 0.5)
      b.u[y * 16 + x] = 0; // …but F jumps at x = 7 → 8: |∇F|² = 0.0025 > 0.01·|F|² + 0.002
    }
  }
  const m = detectOcclusion(f, b);
  for (let y = 0; y < 8; y++) {
    assert.equal(m.data[y * 16 + 7], 1, `row ${y}`);
    assert.equal(m.data[y * 16 + 6], 0);
    assert.equal(m.data[y * 16 + 8], 0);
  }
});

test('a square moving over a still background: the background it covers is flagged, far pixels are not', () => {
  const background = smoothTexture(3, 5, 40);
  const square = { size: 32, texture: smoothTexture(4, 4, 20) };
  const [x0, y0, dx] = [36, 32, 6];
  const a = rgbToGray(renderWithSquare(background, W, H, { ...square, x: x0, y: y0 }));
  const b = rgbToGray(renderWithSquare(background, W, H, { ...square, x: x0 + dx, y: y0 }));
  const mask = detectOcclusion(disFlow(a, b), disFlow(b, a));
  // Frame t's background just right of the square disappears under it at t+1 (x in [x0+32, x0+32+dx)).
  let covered = 0;
  let coveredFlagged = 0;
  let far = 0;
  let farFlagged = 0;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const flagged = mask.data[y * W + x] === 1;
      if (x >= x0 + 32 + 1 && x < x0 + 32 + dx - 1 && y >= y0 + 3 && y < y0 + 29) {
        covered++;
        if (flagged) coveredFlagged++;
      }
      const dist = Math.max(x0 - 12 - x, x - (x0 + 32 + dx + 12), y0 - 12 - y, y - (y0 + 32 + 12));
      if (dist > 0) {
        far++;
        if (flagged) farFlagged++;
      }
    }
  }
  assert.ok(coveredFlagged / covered > 0.9, `covered background flagged: ${coveredFlagged}/${covered}`);
  assert.ok(farFlagged / far < 0.02, `far background flagged: ${farFlagged}/${far}`);
});
