/**
 * The pipeline on the reference implementation's own export (../shared/fixtures/tiny-sd-torch, VAE factor 2,
 * int32 ids, int64 timestep, opset 14): the output keeps the input size and equals diffusers' loop written
 * out with the same sessions. Skips with a message when ../shared is absent.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { loadModelFolder } from '../../src/models/loader.js';
import type { StableDiffusionModel } from '../../src/models/types.js';
import { img2img, noiseShapeFor, sizeMultiple } from '../../src/pipelines/img2img.js';
import { Rng } from '../../src/random.js';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { float32 } from '../../src/tensor.js';
import { diffusersLoop } from './reference-loop.js';
import { testFrame } from './tiny-model.js';
import { maxAbsDiff } from '../assert-close.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch';
const skip = existsSync(`${FIXTURE}/reference.json`)
  ? false
  : `${FIXTURE} is absent (the shared fixtures live beside the repo)`;
let runtime: Runtime;
let model: StableDiffusionModel;

before(async () => {
  if (skip) return;
  runtime = await openRuntime({ ep: 'cpu' });
  model = await loadModelFolder(FIXTURE, runtime);
});
after(async () => {
  await model?.release();
  await runtime?.close();
});

test('the fixture takes multiples of 16 (factor 2 × 8) and noise [1,4,H/2,W/2]', { skip }, () => {
  assert.equal(sizeMultiple(model), 16);
  assert.deepEqual(noiseShapeFor(model, 48, 32), [1, 4, 16, 24]);
});

test('img2img on the reference export equals the diffusers loop and keeps the input size', { skip }, async () => {
  const frame = testFrame(32, 32, 9);
  const noise = new Rng(1).normalArray(4 * 16 * 16);
  const o = {
    prompt: 'an oil painting of a harbour',
    negative: 'low quality',
    strength: 0.6,
    steps: 10,
    guidance: 7.5,
    noise,
  };
  const want = await diffusersLoop(model, frame, o);
  const [got] = await img2img(model, runtime, [frame], {
    prompt: o.prompt,
    negativePrompt: o.negative,
    strength: o.strength,
    steps: o.steps,
    guidance: o.guidance,
    noise: float32([1, 4, 16, 16], noise),
  });
  assert.ok(maxAbsDiff(got!.data, want) < 1e-5, `${maxAbsDiff(got!.data, want)}`);
  const [odd] = await img2img(model, runtime, [testFrame(37, 21)], { prompt: 'x', steps: 4 });
  assert.deepEqual(odd!.dims, [3, 21, 37]);
});
