/**
 * The guidance + DDIM step graph (what keeps latents on the GPU) against the host arithmetic: guidance on the
 * two halves of the batch and DDIMScheduler.step, for every prediction type, with and without guidance, for
 * float32 and float16 UNet outputs, at the first, a middle and the last timestep (ᾱ_prev = final ᾱ).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { applyGuidance } from '../../src/pipelines/denoise.js';
import { STEP_IO, buildStepGraph, stepScalars } from '../../src/pipelines/step-graph.js';
import { Rng } from '../../src/random.js';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import type { PredictionType } from '../../src/schedulers/config.js';
import { DdimScheduler } from '../../src/schedulers/ddim.js';
import { type Tensor, asFloat32, castFloat, float32, fromFloat16, toFloat16 } from '../../src/tensor.js';
import { maxAbsDiff } from '../assert-close.js';

let runtime: Runtime;
before(async () => {
  runtime = await openRuntime({ ep: 'cpu' });
});
after(async () => {
  await runtime?.close();
});

test('guidance takes the unconditional half first: u + g·(c − u)', () => {
  const pred = Float32Array.from([1, 2, 3, 5, 7, 11]); // u = [1,2,3], c = [5,7,11]
  assert.deepEqual([...applyGuidance(pred, 0)], [1, 2, 3]);
  assert.deepEqual([...applyGuidance(pred, 1)], [5, 7, 11]);
  assert.deepEqual([...applyGuidance(pred, 2)], [9, 12, 19]);
});

for (const prediction of ['epsilon', 'v_prediction', 'sample'] as PredictionType[]) {
  test(`step graph = host guidance + DDIM step (${prediction})`, async () => {
    const scheduler = new DdimScheduler({
      beta_schedule: 'scaled_linear',
      beta_start: 0.00085,
      beta_end: 0.012,
      set_alpha_to_one: false,
      steps_offset: 1,
      clip_sample: false,
      prediction_type: prediction,
    });
    const schedule = scheduler.setTimesteps(20);
    const rng = new Rng(42);
    const dims = [2, 4, 8, 8];
    const n = 2 * 4 * 8 * 8;
    const x = rng.normalArray(n);
    for (const guidance of [null, 7.5]) {
      for (const unetType of ['float32', 'float16'] as const) {
        const session = await runtime.createSession(
          buildStepGraph({ guidance: guidance !== null, prediction, unetType }),
          { label: 'step' },
        );
        try {
          for (const t of [schedule[0]!, schedule[10]!, schedule[schedule.length - 1]!]) {
            let out = rng.normalArray(guidance !== null ? 2 * n : n);
            if (unetType === 'float16') out = fromFloat16(toFloat16(out)); // what the host sees of a half output
            const modelOutput: Tensor = castFloat(float32([guidance !== null ? 4 : 2, 4, 8, 8], out), unetType);
            const got = await session.run({
              [STEP_IO.latents]: float32(dims, x),
              [STEP_IO.modelOutput]: modelOutput,
              ...stepScalars(scheduler, t, guidance),
            });
            const eps = guidance !== null ? applyGuidance(out, guidance) : out;
            const want = scheduler.step(eps, t, x).prevSample;
            const next = asFloat32(got[STEP_IO.nextLatents] as Tensor).data;
            assert.ok(
              maxAbsDiff(next, want) <= 1e-6,
              `${prediction} ${unetType} g=${guidance} t=${t}: ${maxAbsDiff(next, want)}`,
            );
            const unetIn = got[STEP_IO.nextUnetSample] as Tensor;
            assert.equal(unetIn.type, unetType);
            assert.deepEqual(unetIn.dims, guidance !== null ? [4, 4, 8, 8] : dims);
            const asF32 = asFloat32(unetIn).data;
            const tol = unetType === 'float16' ? 4e-3 * Math.max(...want.map(Math.abs)) : 0;
            assert.ok(maxAbsDiff(asF32.subarray(0, n), want) <= tol);
            if (guidance !== null) assert.deepEqual(asF32.subarray(n), asF32.subarray(0, n));
          }
        } finally {
          await session.release();
        }
      }
    }
  });
}
