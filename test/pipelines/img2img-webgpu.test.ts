/**
 * The pipeline on the WebGPU provider (run with VIDPRIOR_TEST_WEBGPU=1 and a Vulkan driver; CI uses Mesa's
 * software lavapipe): with the UNet's output kept on the GPU, the latents stay there between steps (the step
 * graph), and the result agrees with the CPU provider's host loop (float16: GPU half arithmetic vs the CPU's
 * kernels differ by a few hundredths after a few steps of a random-weight model, hence the looser bound).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { loadModelFolder } from '../../src/models/loader.js';
import { img2img, stylizeFrames } from '../../src/pipelines/img2img.js';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { type TinySetup, testFrame, tinySetup } from './tiny-model.js';
import { maxAbsDiff } from '../assert-close.js';

const SKIP =
  process.env.VIDPRIOR_TEST_WEBGPU === '1'
    ? false
    : 'WebGPU tests run with VIDPRIOR_TEST_WEBGPU=1 (and a Vulkan driver, e.g. lavapipe)';
let setup: TinySetup;
let gpu: Runtime;

before(async () => {
  if (SKIP) return;
  setup = await tinySetup();
  gpu = await openRuntime({ ep: 'webgpu' });
});
after(async () => {
  await gpu?.close();
  await setup?.close();
});

test('webgpu: GPU-resident latents agree with the CPU host loop (float32 and float16)', { skip: SKIP }, async () => {
  const frames = [testFrame(64, 64, 1), testFrame(64, 64, 2)];
  const opts = { prompt: 'a charcoal drawing', steps: 8, strength: 0.5, batch: 2 };
  for (const [name, dtype, tol] of [
    ['fp32', 'float32', 1e-3],
    ['fp16', 'float16', 0.1],
  ] as const) {
    const cpuModel = await setup.model(name, { dtype });
    const want = await img2img(cpuModel, setup.runtime, frames, { ...opts, latentsOnDevice: false });
    const model = await loadModelFolder(setup.folder(name), gpu, {
      sessionOptions: { unet: { keepOutputsOnGpu: true } },
    });
    try {
      const source = { count: 2, width: 64, height: 64, read: (i: number) => frames[i]! };
      const got: Float32Array[] = [];
      const summary = await stylizeFrames(
        model,
        gpu,
        source,
        (i, img) => {
          got[i] = img.data;
        },
        opts,
      );
      assert.equal(summary.loop, 'device');
      for (let i = 0; i < 2; i++)
        assert.ok(
          maxAbsDiff(got[i]!, want[i]!.data) < tol,
          `${name} frame ${i}: ${maxAbsDiff(got[i]!, want[i]!.data)}`,
        );
    } finally {
      await model.release();
    }
  }
});
