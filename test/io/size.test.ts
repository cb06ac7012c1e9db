import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planFit, padFrame, cropFrame, reflectIndex, fitIsIdentity } from '../../src/io/size.js';
import { float32 } from '../../src/tensor.js';
import { VidpriorError } from '../../src/errors.js';

test('resize plans go to the nearest multiple (at least one), pad plans up to the next multiple', () => {
  const r = planFit(1920, 1080, 64);
  assert.deepEqual(r.working, { width: 1920, height: 1088 });
  assert.deepEqual(planFit(540, 30, 64).working, { width: 512, height: 64 });
  assert.ok(fitIsIdentity(planFit(512, 256, 64)));
  // rounding 'down' is diffusers' VaeImageProcessor choice (x − x mod multiple), at least one multiple
  assert.deepEqual(planFit(1920, 1080, 8, 'resize', 'reflect', 'down').working, { width: 1920, height: 1080 });
  assert.deepEqual(planFit(1079, 5, 8, 'resize', 'reflect', 'down').working, { width: 1072, height: 8 });
  const p = planFit(100, 50, 16, 'pad', 'edge');
  assert.deepEqual(p.working, { width: 112, height: 64 });
  assert.deepEqual(p.pad, { left: 6, right: 6, top: 7, bottom: 7 });
  assert.deepEqual(planFit(101, 64, 16, 'pad').pad, { left: 5, right: 6, top: 0, bottom: 0 });
  assert.throws(
    () => planFit(0, 10, 8),
    (e: unknown) => e instanceof VidpriorError && /width/.test(e.message),
  );
  assert.throws(
    () => planFit(10, 10, 8, 'stretch' as never),
    (e: unknown) => e instanceof VidpriorError && /stretch/.test(e.message),
  );
});

test('reflect indices follow numpy.pad(mode="reflect"), even past one reflection', () => {
  // np.pad(np.arange(4), 6, mode='reflect') → [2 1 0 1 2 3 2 1 | 0 1 2 3 | 2 1 0 1 2 3]
  const idx = Array.from({ length: 16 }, (_, i) => reflectIndex(i - 6, 4));
  assert.deepEqual(idx, [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2, 3]);
  assert.equal(reflectIndex(-3, 1), 0);
});

test('pad then crop gives the frame back; the padding mirrors or repeats the edge', () => {
  const w = 3;
  const h = 2;
  const img = float32(
    [3, h, w],
    Array.from({ length: 3 * h * w }, (_, i) => i / 10),
  );
  for (const mode of ['reflect', 'edge'] as const) {
    const plan = planFit(w, h, 4, 'pad', mode);
    const padded = padFrame(img, plan);
    assert.deepEqual(padded.dims, [3, 4, 4]);
    assert.deepEqual(cropFrame(padded, plan), img);
    // row 1 of the padded frame is source row 0 (pad.top = 1); its last column is past the right edge
    const row = [...padded.data.subarray(4, 8)];
    const src = [...img.data.subarray(0, 3)];
    assert.deepEqual(row.slice(0, 3), src);
    assert.equal(row[3], mode === 'reflect' ? src[1] : src[2]);
  }
  assert.throws(
    () => cropFrame(img, planFit(w, h, 4, 'pad')),
    (e: unknown) => e instanceof VidpriorError && e.code === 'E_SHAPE',
  );
});
