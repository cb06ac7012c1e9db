/**
 * Fine-tuning end to end on the shared real export (tiny-sd-torch): the loss on a fixed validation set goes
 * down, the adapter fits the model, a checkpointed and resumed run gives the uninterrupted run's adapter bit
 * for bit, and cancellation stops with E_CANCELLED after writing a checkpoint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelFolder } from '../../src/models/loader.js';
import { openRuntime } from '../../src/runtime/index.js';
import { float32, type Tensor } from '../../src/tensor.js';
import { type FinetuneData, type FinetuneOptions, finetune, sampleFrameIndices } from '../../src/training/finetune.js';
import { VidpriorError } from '../../src/errors.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch';
const skip = existsSync(FIXTURE) ? false : `${FIXTURE} not found (needs ../shared)`;

/** A smooth synthetic clip: a gradient that drifts, 16×16, [3,H,W] in [-1,1]. */
function clip(frames: number): Tensor<'float32'>[] {
  return Array.from({ length: frames }, (_, t) => {
    const d = new Float32Array(3 * 16 * 16);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 16; y++)
        for (let x = 0; x < 16; x++) {
          d[c * 256 + y * 16 + x] = Math.sin((x + t) * 0.4 + c) * 0.6 + Math.cos(y * 0.3 - c) * 0.3;
        }
    return float32([3, 16, 16], d);
  });
}

function edited(frame: Tensor<'float32'>): Tensor<'float32'> {
  return float32(
    frame.dims,
    frame.data.map((v, i) => (i < 256 ? Math.min(1, v + 0.5) : v * 0.5)),
  );
}

const base: FinetuneOptions = {
  prompt: 'a red painting',
  iterations: 24,
  lr: 1e-2,
  rank: 4,
  maxTimestep: 500,
  conditionalShare: 0.25,
  seed: 7,
  checkpointEvery: 0,
};

test('sampleFrameIndices spreads frames evenly over the clip', () => {
  assert.deepEqual(sampleFrameIndices(100, 5), [0, 25, 50, 74, 99]);
  assert.deepEqual(sampleFrameIndices(3, 30), [0, 1, 2]);
  assert.deepEqual(sampleFrameIndices(9, 1), [4]);
});

test('fine-tuning lowers the validation loss and gives an adapter for every attention projection', {
  skip,
  timeout: 300_000,
}, async (t) => {
  const rt = await openRuntime({ ep: 'cpu' });
  const model = await loadModelFolder(FIXTURE, rt);
  try {
    const frames = clip(6);
    const data: FinetuneData = { frames, edits: [{ original: frames[2]!, edited: edited(frames[2]!) }] };
    const result = await finetune(rt, model, data, { ...base, iterations: 120 });
    assert.equal(result.losses.length, 120);
    t.diagnostic(
      `validation loss ${result.validationBefore.toFixed(4)} → ${result.validationAfter.toFixed(4)}, ${(result.secondsPerIteration * 1000).toFixed(1)} ms/iteration (CPU)`,
    );
    assert.ok(
      result.validationAfter < result.validationBefore * 0.97,
      `validation loss ${result.validationBefore.toFixed(4)} → ${result.validationAfter.toFixed(4)}`,
    );
    assert.ok(result.adapter.weights.size > 0 && result.adapter.weights.size % 8 === 0);
    assert.equal(result.adapter.record.prompt, 'a red painting');
    assert.equal(result.adapter.record.maxTimestep, 500);
  } finally {
    await model.release();
    await rt.close();
  }
});

test('resuming from a checkpoint reproduces the uninterrupted run; cancel checkpoints and stops', {
  skip,
  timeout: 300_000,
}, async () => {
  const rt = await openRuntime({ ep: 'cpu' });
  const model = await loadModelFolder(FIXTURE, rt);
  const dir = mkdtempSync(join(tmpdir(), 'ft-'));
  try {
    const frames = clip(4);
    const data: FinetuneData = { frames, edits: [{ original: frames[1]!, edited: edited(frames[1]!) }] };
    const whole = await finetune(rt, model, data, base);

    const ckpt = join(dir, 'run.ckpt.safetensors');
    const controller = new AbortController();
    await assert.rejects(
      finetune(rt, model, data, {
        ...base,
        checkpointEvery: 5,
        checkpointPath: ckpt,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.stage === 'training' && p.iteration === 13) controller.abort();
        },
      }),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_CANCELLED',
    );
    const resumed = await finetune(rt, model, data, {
      ...base,
      checkpointEvery: 5,
      checkpointPath: ckpt,
      resume: true,
    });
    assert.equal(resumed.startIteration, 13, 'cancel at iteration 13 writes a checkpoint there');
    for (const [module, w] of whole.adapter.weights) {
      const r = resumed.adapter.weights.get(module)!;
      assert.deepEqual(
        Buffer.from(r.a.buffer, r.a.byteOffset, r.a.byteLength),
        Buffer.from(w.a.buffer, w.a.byteOffset, w.a.byteLength),
        `${module} A`,
      );
      assert.deepEqual(
        Buffer.from(r.b.buffer, r.b.byteOffset, r.b.byteLength),
        Buffer.from(w.b.buffer, w.b.byteOffset, w.b.byteLength),
        `${module} B`,
      );
    }
    // A checkpoint from other settings is refused, naming the file.
    await assert.rejects(
      finetune(rt, model, data, { ...base, seed: 8, checkpointEvery: 5, checkpointPath: ckpt, resume: true }),
      /other settings/,
    );
  } finally {
    await model.release();
    await rt.close();
  }
});

test('bad options name the value', { skip }, async () => {
  const rt = await openRuntime({ ep: 'cpu' });
  const model = await loadModelFolder(FIXTURE, rt);
  try {
    const data: FinetuneData = { frames: clip(2), edits: [] };
    await assert.rejects(
      finetune(rt, model, data, { ...base, rank: 0 }),
      /rank must be an integer from 1 to 256, got 0/,
    );
    await assert.rejects(
      finetune(rt, model, data, { ...base, maxTimestep: 5000 }),
      /max_timestep must be an integer from 1 to 1000, got 5000/,
    );
    await assert.rejects(finetune(rt, model, { frames: [], edits: [] }, base), /at least one frame/);
  } finally {
    await model.release();
    await rt.close();
  }
});

test('fine-tuning on WebGPU (lavapipe) follows the CPU run', {
  skip: skip || (process.env.VIDPRIOR_TEST_WEBGPU === '1' ? false : 'WebGPU tests run with VIDPRIOR_TEST_WEBGPU=1'),
  timeout: 600_000,
}, async () => {
  const frames = clip(2);
  const data: FinetuneData = { frames, edits: [{ original: frames[0]!, edited: edited(frames[0]!) }] };
  const results = [];
  for (const ep of ['cpu', 'webgpu'] as const) {
    const rt = await openRuntime({ ep });
    const model = await loadModelFolder(FIXTURE, rt);
    try {
      results.push(await finetune(rt, model, data, { ...base, iterations: 3, lr: 1e-3 }));
    } finally {
      await model.release();
      await rt.close();
    }
  }
  const [cpu, gpu] = results as [Awaited<ReturnType<typeof finetune>>, Awaited<ReturnType<typeof finetune>>];
  cpu.losses.forEach((l, i) => {
    assert.ok(Math.abs(l - gpu.losses[i]!) < 1e-3, `loss ${i}: cpu ${l} webgpu ${gpu.losses[i]}`);
  });
  let diff = 0;
  for (const [module, w] of cpu.adapter.weights) {
    const g = gpu.adapter.weights.get(module)!;
    for (let i = 0; i < w.b.length; i++) diff = Math.max(diff, Math.abs(w.b[i]! - g.b[i]!));
  }
  assert.ok(diff < 1e-3, `LoRA B differs by ${diff}`);
});
