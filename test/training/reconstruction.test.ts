/**
 * The method's premise, measured: after fine-tuning on a clip, img2img at strength 0.45 with the same noise
 * for every frame reconstructs the clip's own frames better than the base model does.
 *
 * The model is built by the project (tiny-sd-torch architecture, random weights) with the VAE's
 * scaling_factor set so that latents have about unit variance, as SD's 0.18215 does for real weights. (The
 * shared fixture's random VAE gives latents of std ≈ 0.05: there the noise swamps the picture at any
 * strength and no denoiser could bring frames back.) Because the VAE is random too, the reference is the VAE
 * round trip decode(encode(frame)), the best any denoiser can give back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModelFolder } from '../../src/models/builder/folder.js';
import { loadModelFolder } from '../../src/models/loader.js';
import { img2img } from '../../src/pipelines/img2img.js';
import { decodeLatents, encodeImages } from '../../src/pipelines/vae.js';
import { openRuntime } from '../../src/runtime/index.js';
import { float32, type Tensor } from '../../src/tensor.js';
import { createAdaptedUnet } from '../../src/training/adapted-unet.js';
import { finetune } from '../../src/training/finetune.js';

function clip(frames: number): Tensor<'float32'>[] {
  return Array.from({ length: frames }, (_, t) => {
    const d = new Float32Array(3 * 16 * 16);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 16; y++)
        for (let x = 0; x < 16; x++) {
          d[c * 256 + y * 16 + x] = Math.sin((x + 0.5 * t) * 0.5 + c) * 0.5 + Math.cos((y - 0.3 * t) * 0.4 - c) * 0.3;
        }
    return float32([3, 16, 16], d);
  });
}

function mse(a: readonly Tensor<'float32'>[], b: readonly Tensor<'float32'>[]): number {
  let s = 0,
    n = 0;
  a.forEach((x, k) => {
    for (let i = 0; i < x.data.length; i++) {
      const d = x.data[i]! - b[k]!.data[i]!;
      s += d * d;
      n++;
    }
  });
  return s / n;
}

test('a LoRA fine-tuned on the clip reconstructs it better at strength 0.45 than the base model', {
  timeout: 600_000,
}, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'recon-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const dir = join(work, 'model');
  await createModelFolder(dir, { base: 'tiny-sd-torch', vae: { scaling_factor: 1.6 } }, { seed: 0 });
  const rt = await openRuntime({ ep: 'cpu' });
  const model = await loadModelFolder(dir, rt);
  try {
    const frames = clip(8);
    const trained = await finetune(
      rt,
      model,
      { frames, edits: [] },
      {
        prompt: '',
        iterations: 200,
        lr: 1e-2,
        rank: 4,
        maxTimestep: 500,
        conditionalShare: 0.25,
        seed: 1,
        checkpointEvery: 0,
      },
    );
    const settings = { prompt: '', strength: 0.45, steps: 20, guidance: 1, seed: 3 };
    const baseOut = await img2img(model, rt, frames, settings);
    const adapted = await createAdaptedUnet(rt, model.dir, trained.adapter);
    const tunedOut = await img2img(model, rt, frames, { ...settings, unet: adapted.session });
    await adapted.session.release();
    const roundTrip: Tensor<'float32'>[] = [];
    for (const f of frames) {
      const img = await decodeLatents(model, await encodeImages(model, float32([1, 3, 16, 16], f.data)));
      roundTrip.push(float32([3, 16, 16], img.data));
    }
    const before = mse(baseOut, roundTrip),
      after = mse(tunedOut, roundTrip);
    t.diagnostic(
      `MSE to the VAE round trip: base ${before.toFixed(4)} → fine-tuned ${after.toFixed(4)} (${(100 * (1 - after / before)).toFixed(1)}% lower); ` +
        `validation loss ${trained.validationBefore.toFixed(3)} → ${trained.validationAfter.toFixed(3)}`,
    );
    assert.ok(after < before * 0.95, `fine-tuned ${after} vs base ${before}`);
  } finally {
    await model.release();
    await rt.close();
  }
});
