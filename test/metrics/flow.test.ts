import { test } from 'node:test';
import assert from 'node:assert/strict';
import { disFlow } from '../../src/metrics/flow-dis.js';
import { rgbToGray, type Flow } from '../../src/metrics/image.js';
import { renderShifted, smoothTexture } from '../../src/metrics/synthetic.js';

const SIZE = 96;
const MARGIN = 8;
const tex = smoothTexture(11, 5, 40);

/** Mean and max end-point error against a constant flow (du, dv), away from the border. */
function endPointError(f: Flow, du: number, dv: number) {
  let sum = 0;
  let max = 0;
  let n = 0;
  for (let y = MARGIN; y < f.height - MARGIN; y++) {
    for (let x = MARGIN; x < f.width - MARGIN; x++) {
      const i = y * f.width + x;
      const e = Math.hypot(f.u[i] - du, f.v[i] - dv);
      sum += e;
      max = Math.max(max, e);
      n++;
    }
  }
  return { mean: sum / n, max };
}

test('identical frames give zero flow', () => {
  const a = rgbToGray(renderShifted(tex, 64, 64, 0, 0));
  const f = disFlow(a, a);
  assert.ok(f.u.every((v) => v === 0) && f.v.every((v) => v === 0));
});

for (const [dx, dy] of [
  [0.3, -0.7],
  [2.25, 1.6],
  [-3.4, 2.8],
  [6.5, -0.25],
]) {
  test(`DIS recovers a (${dx}, ${dy}) px translation both ways within a fraction of a pixel`, () => {
    const a = rgbToGray(renderShifted(tex, SIZE, SIZE, 0, 0));
    const b = rgbToGray(renderShifted(tex, SIZE, SIZE, dx, dy));
    const forward = endPointError(disFlow(a, b), dx, dy);
    const backward = endPointError(disFlow(b, a), -dx, -dy);
    for (const [name, e] of [
      ['forward', forward],
      ['backward', backward],
    ] as const) {
      assert.ok(e.mean < 0.1, `${name} mean EPE ${e.mean.toFixed(4)} px`);
      assert.ok(e.max < 0.5, `${name} max EPE ${e.max.toFixed(4)} px`);
    }
  });
}

test('DIS without variational refinement is also sub-pixel accurate', () => {
  const a = rgbToGray(renderShifted(tex, SIZE, SIZE, 0, 0));
  const b = rgbToGray(renderShifted(tex, SIZE, SIZE, 1.4, -2.3));
  const e = endPointError(disFlow(a, b, { refineIterations: 0 }), 1.4, -2.3);
  assert.ok(e.mean < 0.1, `mean EPE ${e.mean.toFixed(4)} px`);
});

test('an exposure change between the frames does not throw the flow off', () => {
  const a = rgbToGray(renderShifted(tex, SIZE, SIZE, 0, 0));
  const b = rgbToGray(renderShifted(tex, SIZE, SIZE, 2.6, 1.2));
  for (let i = 0; i < b.data.length; i++) b.data[i] = 0.85 * b.data[i] + 0.02; // 15% darker, slight lift
  const e = endPointError(disFlow(a, b), 2.6, 1.2);
  assert.ok(e.mean < 0.1, `mean EPE ${e.mean.toFixed(4)} px`);
});
