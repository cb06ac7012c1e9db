/**
 * finetune({ full: true }) end to end on the shared real export (tiny-sd-torch): the validation loss goes down,
 * a cancelled and resumed run gives the uninterrupted run's delta bit for bit, the delta file loads like an
 * adapter (stylize's createAdaptedUnet) and changes the UNet exactly as the in-memory delta does, and a step
 * that would not fit the memory limit is refused before anything is loaded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VidpriorError } from '../../src/errors.js';
import { loadModelFolder } from '../../src/models/loader.js';
import { Rng } from '../../src/random.js';
import { openRuntime } from '../../src/runtime/index.js';
import type { Runtime } from '../../src/runtime/types.js';
import { float32, int64, type Tensor } from '../../src/tensor.js';
import { createAdaptedUnet } from '../../src/training/adapted-unet.js';
import { type FinetuneData, type FinetuneOptions, finetune } from '../../src/training/finetune.js';
import { type FullDeltaAdapter, saveFinetuned } from '../../src/training/full-delta.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch';
const skip = existsSync(FIXTURE) ? false : `${FIXTURE} not found (needs ../shared)`;

function clip(frames: number): Tensor<'float32'>[] {
  return Array.from({ length: frames }, (_, t) => {
    const d = new Float32Array(3 * 16 * 16);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 16; y++)
        for (let x = 0; x < 16; x++)
          d[c * 256 + y * 16 + x] = Math.sin((x + t) * 0.4 + c) * 0.6 + Math.cos(y * 0.3 - c) * 0.3;
    return float32([3, 16, 16], d);
  });
}

const base: FinetuneOptions = {
  prompt: 'a red painting',
  iterations: 10,
  lr: 1e-4,
  rank: 4,
  maxTimestep: 500,
  conditionalShare: 0.25,
  seed: 5,
  checkpointEvery: 0,
  full: true,
};

async function withFixture<T>(fn: (rt: Runtime, model: Awaited<ReturnType<typeof loadModelFolder>>) => Promise<T>) {
  const rt = await openRuntime({ ep: 'cpu' });
  const model = await loadModelFolder(FIXTURE, rt);
  try {
    return await fn(rt, model);
  } finally {
    await model.release();
    await rt.close();
  }
}

test('full fine-tuning: loss goes down, cancel + resume gives the same delta bit for bit', {
  skip,
  timeout: 600_000,
}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'full-ft-'));
  try {
    await withFixture(async (rt, model) => {
      const frames = clip(4);
      const data: FinetuneData = {
        frames,
        edits: [
          {
            original: frames[1]!,
            edited: float32(
              frames[1]!.dims,
              frames[1]!.data.map((v) => -v),
            ),
          },
        ],
      };
      const whole = await finetune(rt, model, data, base);
      const delta = whole.adapter as FullDeltaAdapter;
      assert.equal(delta.kind, 'full');
      assert.equal(delta.deltas.size, 304);
      t.diagnostic(
        `validation loss ${whole.validationBefore.toFixed(4)} → ${whole.validationAfter.toFixed(4)}; ${(whole.secondsPerIteration * 1000).toFixed(0)} ms/iteration (CPU); estimate ${(whole.memory.total / 2 ** 20).toFixed(1)} MiB`,
      );
      assert.ok(whole.validationAfter < whole.validationBefore, 'validation loss goes down');

      const ckpt = join(dir, 'full.ckpt.safetensors');
      const controller = new AbortController();
      await assert.rejects(
        finetune(rt, model, data, {
          ...base,
          checkpointEvery: 4,
          checkpointPath: ckpt,
          signal: controller.signal,
          onProgress: (p) => {
            if (p.stage === 'training' && p.iteration === 6) controller.abort();
          },
        }),
        (e: unknown) => e instanceof VidpriorError && e.code === 'E_CANCELLED',
      );
      const resumed = await finetune(rt, model, data, {
        ...base,
        checkpointEvery: 4,
        checkpointPath: ckpt,
        resume: true,
      });
      assert.equal(resumed.startIteration, 6);
      for (const [name, d] of delta.deltas) {
        const r = (resumed.adapter as FullDeltaAdapter).deltas.get(name)!;
        assert.deepEqual(
          Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength),
          Buffer.from(d.data.buffer, d.data.byteOffset, d.data.byteLength),
          name,
        );
      }

      // The delta file loads like an adapter and changes the UNet as the in-memory delta does.
      const file = join(dir, 'full.safetensors');
      await saveFinetuned(file, delta);
      t.diagnostic(
        `delta file: ${statSync(file).size} bytes for ${[...delta.deltas.values()].reduce((s, d) => s + d.data.length, 0)} weights`,
      );
      const rng = new Rng(2);
      const feeds = {
        sample: float32([1, 4, 8, 8], rng.normalArray(256)),
        timestep: int64([1], [200]),
        encoder_hidden_states: float32([1, 77, 32], rng.normalArray(77 * 32)),
      };
      const outputOf = async (adapter: string | FullDeltaAdapter | null) => {
        const session = adapter
          ? (await createAdaptedUnet(rt, FIXTURE, adapter)).session
          : await rt.createSession(join(FIXTURE, 'unet', 'model.onnx'));
        try {
          return ((await session.run(feeds)).out_sample as Tensor<'float32'>).data;
        } finally {
          await session.release();
        }
      };
      const fromFile = await outputOf(file);
      assert.deepEqual(fromFile, await outputOf(delta));
      const plain = await outputOf(null);
      assert.ok(
        fromFile.some((v, i) => v !== plain[i]),
        'the delta changes the output',
      );
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a full fine-tune that would not fit the memory limit is refused with E_TOO_LARGE', { skip }, async () => {
  await withFixture(async (rt, model) => {
    await assert.rejects(
      finetune(rt, model, { frames: clip(1), edits: [] }, { ...base, memoryLimit: 2 ** 20, memoryLimitSource: 'test' }),
      (e: unknown) =>
        e instanceof VidpriorError &&
        e.code === 'E_TOO_LARGE' &&
        /^full-UNet fine-tuning needs about 0\.\d+ GiB \(base weights 0\.005, .*activations 0\.\d+\), but the limit is 0\.0 GiB \(test\): use LoRA instead \(drop --full\)/.test(
          e.message,
        ),
    );
  });
});

test('full fine-tuning on WebGPU (lavapipe) follows the CPU run', {
  skip: skip || (process.env.VIDPRIOR_TEST_WEBGPU === '1' ? false : 'WebGPU tests run with VIDPRIOR_TEST_WEBGPU=1'),
  timeout: 900_000,
}, async () => {
  const frames = clip(2);
  const data: FinetuneData = {
    frames,
    edits: [
      {
        original: frames[0]!,
        edited: float32(
          frames[0]!.dims,
          frames[0]!.data.map((v) => v * 0.5),
        ),
      },
    ],
  };
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
  for (const [i, l] of cpu.losses.entries())
    assert.ok(Math.abs(l - gpu.losses[i]!) < 1e-3, `loss ${i}: cpu ${l} webgpu ${gpu.losses[i]}`);
  // Adam's first steps are ±lr wherever the gradient is not ~0: compare the deltas where both moved a lot.
  let agree = 0;
  let total = 0;
  for (const [name, d] of (cpu.adapter as FullDeltaAdapter).deltas) {
    const g = (gpu.adapter as FullDeltaAdapter).deltas.get(name)!;
    for (let i = 0; i < d.data.length; i++) {
      if (Math.abs(d.data[i]!) < 1e-3) continue;
      total++;
      if (Math.abs(d.data[i]! - g.data[i]!) < 1e-4) agree++;
    }
  }
  assert.ok(total > 0 && agree / total > 0.99, `${agree} of ${total} clearly moved weights agree`);
});
