/**
 * The deflicker training graph on the WebGPU provider (lavapipe in CI): a few steps give the CPU run's losses
 * and weights, with and without IRT. Runs only with VIDPRIOR_TEST_WEBGPU=1 (a Vulkan driver is needed, e.g.
 * VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type DeflickerTrainOptions,
  TRAIN_DEFAULTS,
  type TrainResult,
  trainDeflicker,
} from '../../src/deflicker/train.js';
import { openRuntime } from '../../src/runtime/index.js';

const SKIP =
  process.env.VIDPRIOR_TEST_WEBGPU === '1'
    ? false
    : 'WebGPU tests run with VIDPRIOR_TEST_WEBGPU=1 (and a Vulkan driver, e.g. lavapipe)';

function frames(n: number, w = 32, h = 16) {
  const make = (t: number, k: number) =>
    Float32Array.from({ length: 3 * w * h }, (_, i) => Math.tanh(Math.sin(i / 7 + t) * k + 0.1 * ((i * 13) % 5)));
  return {
    original: Array.from({ length: n }, (_, t) => make(t, 1)),
    processed: Array.from({ length: n }, (_, t) => make(t, 0.7 + 0.1 * (t % 2))),
    width: w,
    height: h,
  };
}

test('the deflicker training step on WebGPU follows the CPU run', { skip: SKIP, timeout: 600_000 }, async () => {
  for (const irt of [false, true]) {
    const o: DeflickerTrainOptions = {
      ...TRAIN_DEFAULTS,
      width: 4,
      scales: 3,
      epochs: 3,
      irt,
      irtInitEpochs: 1,
      lr: 1e-3,
      earlyStop: null,
    };
    const results: TrainResult[] = [];
    const eps: string[] = [];
    for (const ep of ['cpu', 'webgpu'] as const) {
      const rt = await openRuntime({ ep });
      eps.push(rt.decision.ep);
      try {
        results.push(await trainDeflicker(rt, frames(3), o));
      } finally {
        await rt.close();
      }
    }
    assert.deepEqual(eps, ['cpu', 'webgpu']);
    const [cpu, gpu] = results as [TrainResult, TrainResult];
    for (const [i, l] of cpu.epochLosses.entries()) {
      const g = gpu.epochLosses[i]!;
      assert.ok(Math.abs(l - g) < 1e-3, `irt ${irt}, epoch ${i}: cpu ${l}, webgpu ${g}`);
    }
    let diff = 0;
    for (const [name, w] of cpu.weights) {
      const g = gpu.weights.get(name)!.data;
      for (let i = 0; i < w.data.length; i++) diff = Math.max(diff, Math.abs(w.data[i]! - g[i]!));
    }
    assert.ok(diff < 1e-3, `irt ${irt}: weights differ by ${diff}`);
  }
});
