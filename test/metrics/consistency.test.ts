import { test } from 'node:test';
import assert from 'node:assert/strict';
import { measureConsistency, memorySequence, type FlowEstimator } from '../../src/metrics/consistency.js';
import { makeFlow } from '../../src/metrics/image.js';
import { VidpriorError } from '../../src/errors.js';
import { Rng } from '../../src/random.js';
import { consistentStyle, renderShifted, resizeRgbFrames, scaleBrightness, smoothTexture } from './helpers.js';

const SIZE = 80;
const tex = smoothTexture(21, 8, 40);
/** Five frames of a texture drifting by a sub-pixel amount per frame. */
const moving = Array.from({ length: 5 }, (_, t) => renderShifted(tex, SIZE, SIZE, 0.7 * t, -0.45 * t));

test('a still video measures exactly zero everywhere', async () => {
  const still = Array.from({ length: 3 }, () => renderShifted(tex, 48, 48, 0, 0));
  const r = await measureConsistency(memorySequence('orig', still), [
    memorySequence('styl', still.map(consistentStyle)),
  ]);
  assert.equal(r.original.warpError, 0);
  assert.equal(r.original.flicker, 0);
  assert.equal(r.stylized[0].warpError, 0);
  assert.equal(r.stylized[0].flicker, 0);
  assert.deepEqual(r.occludedFraction, [0, 0]);
});

test('translated texture: a consistent stylization scores near 0, per-frame random brightness scores high', async () => {
  const rng = new Rng(5);
  const consistent = moving.map(consistentStyle);
  const flickering = consistent.map((f) => scaleBrightness(f, 0.75 + 0.5 * rng.uniform()));
  const r = await measureConsistency(
    memorySequence('orig', moving),
    [memorySequence('good', consistent), memorySequence('bad', flickering)],
    { labels: ['good', 'bad'] },
  );
  const [good, bad] = r.stylized;
  assert.equal(r.frames, 5);
  assert.equal(good.pairWarpError.length, 4);
  assert.ok(good.warpError < 2e-4, `consistent E_warp ${good.warpError}`);
  assert.ok(r.original.warpError < 2e-4, `original E_warp ${r.original.warpError}`);
  assert.ok(
    bad.warpError > 50 * good.warpError && bad.warpError > 2e-3,
    `flickering E_warp ${bad.warpError} vs ${good.warpError}`,
  );
  // The texture moves, so plain flicker is not small even for the consistent version: that is why E_warp exists.
  assert.ok(good.flicker > 0.01, `flicker ${good.flicker}`);
  for (const f of r.occludedFraction) assert.ok(f < 0.1, `occluded fraction ${f}`);
  assert.match(r.flowMethod, /DIS/);
  // The same measure with the exact flow: what is left (≈7e-5) is bilinear resampling of the texture, and the
  // flow the project computes must not change the answer much.
  let call = 0; // measureConsistency asks for the forward flow, then the backward one, for every pair
  const exact: FlowEstimator = {
    name: 'exact',
    flow: (a) => constantFlow(a.width, a.height, call++ % 2 === 0 ? 1 : -1),
  };
  const truth = await measureConsistency(
    memorySequence('orig', moving),
    [memorySequence('good', consistent), memorySequence('bad', flickering)],
    { flow: exact },
  );
  for (const k of [0, 1]) {
    const rel = Math.abs(r.stylized[k].warpError - truth.stylized[k].warpError) / truth.stylized[k].warpError;
    assert.ok(
      rel < 0.3,
      `version ${k}: E_warp with DIS ${r.stylized[k].warpError}, with the exact flow ${truth.stylized[k].warpError}`,
    );
  }
});

function constantFlow(width: number, height: number, sign: number) {
  const f = makeFlow(width, height);
  f.u.fill(0.7 * sign);
  f.v.fill(-0.45 * sign);
  return f;
}

test('frame count mismatch is a clear E_BAD_INPUT naming both paths and counts', async () => {
  await assert.rejects(
    measureConsistency(memorySequence('/clips/orig', moving), [memorySequence('/clips/styl', moving.slice(0, 4))]),
    (e: unknown) =>
      e instanceof VidpriorError &&
      e.code === 'E_BAD_INPUT' &&
      /\/clips\/orig has 5 frames/.test(e.message) &&
      /\/clips\/styl has 4/.test(e.message),
  );
});

test('stylized frames of another size are resized to the original and said so', async () => {
  const notes: string[] = [];
  const big = resizeRgbFrames(moving.map(consistentStyle), 120, 100);
  const r = await measureConsistency(memorySequence('orig', moving), [memorySequence('big', big)], {
    onNote: (m) => notes.push(m),
  });
  assert.deepEqual(r.stylized[0].resizedFrom, { width: 120, height: 100 });
  assert.match(notes.join('\n'), /big: frames are 120x100, resized to the original's 80x80/);
  assert.ok(r.stylized[0].warpError < 2e-3, `resized E_warp ${r.stylized[0].warpError}`);
});
