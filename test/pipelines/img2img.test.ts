/**
 * The img2img / txt2img pipeline on builder-made models (CPU provider): sizes, the same noise for every frame,
 * strength and guidance semantics, the diffusers loop written out step by step, batching, the GPU-resident
 * step graph (run on the CPU provider, where it must give the host loop's numbers), float16, progress,
 * cancellation and errors that name the bad value.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { StableDiffusionModel } from '../../src/models/types.js';
import { img2img, stylizeFrames, txt2img, type StylizeProgress } from '../../src/pipelines/img2img.js';
import { Rng } from '../../src/random.js';
import type { Session } from '../../src/runtime/types.js';
import { type Tensor, float32 } from '../../src/tensor.js';
import { diffusersLoop } from './reference-loop.js';
import { type TinySetup, testFrame, tinySetup } from './tiny-model.js';
import { maxAbsDiff } from '../assert-close.js';
import { rejectsWith } from '../assert-close.js';

let setup: TinySetup;
let model: StableDiffusionModel;

before(async () => {
  setup = await tinySetup();
  model = await setup.model('tiny-fp32');
});
after(async () => {
  await setup?.close();
});

const FAST = { steps: 8, strength: 0.5, prompt: 'a watercolour painting' };

/** The UNet with a record of the batch size of each run (the real session underneath). */
function countingUnet(unet: Session, batches: number[]): Session {
  return {
    get label() {
      return unet.label;
    },
    get inputs() {
      return unet.inputs;
    },
    get outputs() {
      return unet.outputs;
    },
    get ep() {
      return unet.ep;
    },
    run: (feeds, names, opts) => {
      batches.push((feeds.sample as Tensor).dims[0]!);
      return unet.run(feeds, names, opts);
    },
    release: () => unet.release(),
  };
}

test('the output has the input size, also for sizes that are not multiples of 64', async () => {
  for (const [w, h] of [
    [64, 64],
    [70, 50],
    [128, 64],
  ] as const) {
    const [out] = await img2img(model, setup.runtime, [testFrame(w, h)], { ...FAST, steps: 4 });
    assert.deepEqual(out!.dims, [3, h, w]);
    assert.ok(out!.data.every((v) => v >= -1 && v <= 1 && Number.isFinite(v)));
  }
});

test('the same noise gives identical outputs for identical frames, whatever the batch', async () => {
  const frame = testFrame(64, 64, 1);
  const other = testFrame(64, 64, 7);
  const frames = [frame, other, frame, frame, other];
  const one = await img2img(model, setup.runtime, frames, { ...FAST, batch: 1 });
  const two = await img2img(model, setup.runtime, frames, { ...FAST, batch: 2 });
  assert.deepEqual(one[0]!.data, one[2]!.data);
  assert.deepEqual(one[0]!.data, one[3]!.data);
  assert.deepEqual(one[1]!.data, one[4]!.data);
  assert.ok(maxAbsDiff(one[0]!.data, one[1]!.data) > 1e-3, 'different frames give different outputs');
  for (let i = 0; i < frames.length; i++)
    assert.ok(maxAbsDiff(one[i]!.data, two[i]!.data) < 1e-5, `frame ${i}: batch 1 vs 2`);
});

test('explicit noise is the seeded noise when equal, and changes the result when different', async () => {
  const frame = testFrame(64, 64, 2);
  const shape = [1, 4, 8, 8];
  const seeded = await img2img(model, setup.runtime, [frame], { ...FAST, seed: 5 });
  const explicit = await img2img(model, setup.runtime, [frame], {
    ...FAST,
    noise: float32(shape, new Rng(5).normalArray(256)),
  });
  assert.deepEqual(seeded[0]!.data, explicit[0]!.data);
  const other = await img2img(model, setup.runtime, [frame], {
    ...FAST,
    noise: float32(shape, new Rng(6).normalArray(256)),
  });
  assert.ok(maxAbsDiff(seeded[0]!.data, other[0]!.data) > 1e-4);
});

test('img2img equals the diffusers loop written out (guidance, negative prompt, strength slicing)', async () => {
  const frame = testFrame(64, 64, 3);
  const noise = new Rng(11).normalArray(256);
  for (const strength of [0.45, 1]) {
    const o = { prompt: 'a red fox', negative: 'blurry', strength, steps: 10, guidance: 7.5, noise };
    const want = await diffusersLoop(model, frame, o);
    const [got] = await img2img(model, setup.runtime, [frame], {
      prompt: o.prompt,
      negativePrompt: o.negative,
      strength,
      steps: 10,
      guidance: 7.5,
      noise: float32([1, 4, 8, 8], noise),
      batch: 1,
    });
    assert.ok(maxAbsDiff(got!.data, want) < 1e-5, `strength ${strength}: ${maxAbsDiff(got!.data, want)}`);
  }
});

test('txt2img is the whole schedule from the noise alone', async () => {
  const noise = new Rng(3).normalArray(256);
  const want = await diffusersLoop(model, null, {
    prompt: 'a castle',
    negative: '',
    strength: 1,
    steps: 6,
    guidance: 4,
    noise,
  });
  const [got] = await txt2img(
    model,
    setup.runtime,
    { width: 64, height: 64 },
    { prompt: 'a castle', steps: 6, guidance: 4, noise: float32([1, 4, 8, 8], noise) },
  );
  assert.ok(maxAbsDiff(got!.data, want) < 1e-5);
});

test('strength 1 runs the full schedule; strength slices it as int(n·strength)', async () => {
  const source = { count: 1, width: 64, height: 64, read: () => testFrame(64, 64) };
  const full = await stylizeFrames(model, setup.runtime, source, () => {}, { ...FAST, steps: 10, strength: 1 });
  assert.deepEqual(full.timesteps, [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
  const part = await stylizeFrames(model, setup.runtime, source, () => {}, { ...FAST, steps: 10, strength: 0.45 });
  assert.deepEqual(part.timesteps, [301, 201, 101, 1]);
});

test('guidance ≤ 1 runs one UNet batch and equals guidance with negative prompt = prompt', async () => {
  const frame = testFrame(64, 64, 4);
  const batches: number[] = [];
  const plain = await img2img(model, setup.runtime, [frame, frame], {
    ...FAST,
    guidance: 1,
    batch: 2,
    unet: countingUnet(model.unet, batches),
  });
  assert.deepEqual(new Set(batches), new Set([2]), 'no guidance: the UNet batch is the frame batch');
  batches.length = 0;
  const same = await img2img(model, setup.runtime, [frame, frame], {
    ...FAST,
    guidance: 7.5,
    negativePrompt: FAST.prompt,
    batch: 2,
    unet: countingUnet(model.unet, batches),
  });
  assert.deepEqual(new Set(batches), new Set([4]), 'guidance doubles the UNet batch');
  assert.ok(maxAbsDiff(plain[0]!.data, same[0]!.data) < 1e-5);
  const half = await img2img(model, setup.runtime, [frame], { ...FAST, guidance: 0.5 });
  assert.deepEqual(half[0]!.data, plain[0]!.data);
});

test("the GPU-resident step graph gives the host loop's numbers (run here on the CPU provider)", async () => {
  const frames = [testFrame(64, 64, 5), testFrame(64, 64, 6)];
  for (const guidance of [1, 7.5]) {
    const host = await img2img(model, setup.runtime, frames, { ...FAST, guidance, batch: 2, latentsOnDevice: false });
    const device = await img2img(model, setup.runtime, frames, { ...FAST, guidance, batch: 2, latentsOnDevice: true });
    for (let i = 0; i < 2; i++)
      assert.ok(maxAbsDiff(host[i]!.data, device[i]!.data) < 1e-6, `guidance ${guidance} frame ${i}`);
  }
});

test('a float16 model runs (inputs cast, scheduler in float32) and stays close to its float32 twin', async () => {
  const half = await setup.model('tiny-fp16', { dtype: 'float16' });
  assert.equal(half.facts.unetType, 'float16');
  const frame = testFrame(64, 64, 8);
  const [a] = await img2img(half, setup.runtime, [frame], FAST);
  const [b] = await img2img(model, setup.runtime, [frame], FAST);
  const [c] = await img2img(half, setup.runtime, [frame], { ...FAST, latentsOnDevice: true });
  assert.ok(maxAbsDiff(a!.data, b!.data) < 0.05, `fp16 vs fp32 ${maxAbsDiff(a!.data, b!.data)}`);
  assert.ok(maxAbsDiff(a!.data, c!.data) < 1e-3);
});

test('progress comes per step and per frame; an abort between steps cancels', async () => {
  const events: StylizeProgress[] = [];
  const frames = [testFrame(64, 64), testFrame(64, 64, 1), testFrame(64, 64, 2)];
  await img2img(model, setup.runtime, frames, { ...FAST, batch: 2, onProgress: (p) => events.push(p) });
  assert.equal(events.filter((e) => e.phase === 'denoise').length, 2 * 4);
  assert.deepEqual(
    events.filter((e) => e.phase === 'frame').map((e) => e.frame),
    [1, 2, 3],
  );
  assert.ok(events.every((e) => e.frames === 3 && e.steps === 4));
  const abort = new AbortController();
  await rejectsWith(
    img2img(model, setup.runtime, frames, {
      ...FAST,
      signal: abort.signal,
      onProgress: (p) => {
        if (p.phase === 'denoise' && p.step === 1) abort.abort();
      },
    }),
    'E_CANCELLED',
    /cancelled/,
  );
});

test('bad values are named: noise shape, strength, steps, guidance, batch, frames', async () => {
  const frame = testFrame(64, 64);
  const rt = setup.runtime;
  await rejectsWith(
    img2img(model, rt, [frame], { ...FAST, noise: float32([1, 4, 16, 16]) }),
    'E_BAD_INPUT',
    /\[1, 4, 16, 16\].*need \[1, 4, 8, 8\]/,
  );
  await rejectsWith(
    img2img(model, rt, [frame], { ...FAST, noise: float32([4, 8, 8]) }),
    'E_BAD_INPUT',
    /noise has shape \[4, 8, 8\]/,
  );
  for (const strength of [0, -0.5, 1.5, Number.NaN]) {
    await rejectsWith(
      img2img(model, rt, [frame], { ...FAST, strength }),
      'E_BAD_REQUEST',
      /strength must be a number in \(0, 1\]/,
    );
  }
  await rejectsWith(
    img2img(model, rt, [frame], { ...FAST, strength: 0.05, steps: 10 }),
    'E_BAD_REQUEST',
    /strength 0.05 with 10 steps leaves no denoising step/,
  );
  await rejectsWith(img2img(model, rt, [frame], { ...FAST, steps: 0 }), 'E_BAD_REQUEST', /steps must be/);
  await rejectsWith(
    img2img(model, rt, [frame], { ...FAST, guidance: Number.POSITIVE_INFINITY }),
    'E_BAD_REQUEST',
    /guidance/,
  );
  await rejectsWith(img2img(model, rt, [frame], { ...FAST, batch: 0 }), 'E_BAD_REQUEST', /batch/);
  await rejectsWith(img2img(model, rt, [float32([64, 64])], FAST), 'E_BAD_INPUT', /image 1 has dims \[64, 64\]/);
  await rejectsWith(
    img2img(model, rt, [frame, testFrame(32, 64)], FAST),
    'E_BAD_INPUT',
    /frame 2 .*expected float32 \[3, 64, 64\]/,
  );
  await rejectsWith(img2img(model, rt, [], FAST), 'E_BAD_INPUT', /no images/);
  const source = { count: 1, width: 70, height: 64, read: () => testFrame(70, 64) };
  await rejectsWith(
    stylizeFrames(model, rt, source, () => {}, FAST),
    'E_BAD_INPUT',
    /70×64 is not a multiple of 64/,
  );
});
