/**
 * Full-UNet fine-tuning against LoRA at equal iterations, on a real clip (examples/clip, 12 frames, read at
 * 32×24): after training on the clip, img2img at strength 0.45 with the same noise for every frame
 * reconstructs the clip; lower error to the VAE round trip is better (see reconstruction.test.ts for why the
 * round trip is the reference with a random-weight model). Each method at its own learning rate for the
 * budget (LoRA 1e-2 as reconstruction.test.ts; the whole UNet, with 300× more trained values, 1e-3).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listFrameFiles, readFrame } from '../../src/io/frames.js';
import { createModelFolder } from '../../src/models/builder/folder.js';
import { loadModelFolder } from '../../src/models/loader.js';
import { img2img } from '../../src/pipelines/img2img.js';
import { decodeLatents, encodeImages } from '../../src/pipelines/vae.js';
import { openRuntime } from '../../src/runtime/index.js';
import { float32, type Tensor } from '../../src/tensor.js';
import { createAdaptedUnet } from '../../src/training/adapted-unet.js';
import { type FinetuneOptions, finetune } from '../../src/training/finetune.js';

function mse(a: readonly Tensor<'float32'>[], b: readonly Tensor<'float32'>[]): number {
  let s = 0,
    n = 0;
  a.forEach((x, k) => {
    for (let i = 0; i < x.data.length; i++) {
      s += (x.data[i]! - b[k]!.data[i]!) ** 2;
      n++;
    }
  });
  return s / n;
}

test('on a real clip, a full fine-tune reconstructs it better than a LoRA at equal iterations', {
  timeout: 900_000,
}, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'full-recon-'));
  const dir = join(root, 'model');
  await createModelFolder(dir, { base: 'tiny-sd-torch', vae: { scaling_factor: 1.6 } }, { seed: 0 });
  const rt = await openRuntime({ ep: 'cpu' });
  const model = await loadModelFolder(dir, rt);
  try {
    const files = await listFrameFiles('examples/clip');
    const frames: Tensor<'float32'>[] = [];
    for (const f of files) frames.push(await readFrame(f.path, { resize: { width: 32, height: 24 } }));
    const common: FinetuneOptions = {
      prompt: '',
      iterations: 120,
      lr: 1e-2,
      rank: 4,
      maxTimestep: 500,
      conditionalShare: 0.25,
      seed: 1,
      checkpointEvery: 0,
    };
    const lora = await finetune(rt, model, { frames, edits: [] }, common);
    const full = await finetune(rt, model, { frames, edits: [] }, { ...common, full: true, lr: 1e-3 });
    const settings = { prompt: '', strength: 0.45, steps: 20, guidance: 1, seed: 3 };
    const roundTrip: Tensor<'float32'>[] = [];
    for (const f of frames) {
      const img = await decodeLatents(model, await encodeImages(model, float32([1, ...f.dims], f.data)));
      roundTrip.push(float32(f.dims, img.data));
    }
    const errorWith = async (adapter: typeof lora.adapter | null): Promise<number> => {
      if (!adapter) return mse(await img2img(model, rt, frames, settings), roundTrip);
      const adapted = await createAdaptedUnet(rt, model.dir, adapter);
      try {
        return mse(await img2img(model, rt, frames, { ...settings, unet: adapted.session }), roundTrip);
      } finally {
        await adapted.session.release();
      }
    };
    const [base, withLora, withFull] = [
      await errorWith(null),
      await errorWith(lora.adapter),
      await errorWith(full.adapter),
    ];
    t.diagnostic(
      `MSE to the VAE round trip after ${common.iterations} iterations: base ${base.toFixed(4)}, LoRA ${withLora.toFixed(4)} ` +
        `(${(100 * (1 - withLora / base)).toFixed(1)}% below base), full ${withFull.toFixed(4)} ` +
        `(${(100 * (1 - withFull / base)).toFixed(1)}% below base, ${(100 * (1 - withFull / withLora)).toFixed(1)}% below LoRA); ` +
        `validation loss LoRA ${lora.validationBefore.toFixed(3)} → ${lora.validationAfter.toFixed(3)}, ` +
        `full ${full.validationBefore.toFixed(3)} → ${full.validationAfter.toFixed(3)}; ` +
        `ms/iteration LoRA ${(lora.secondsPerIteration * 1000).toFixed(0)}, full ${(full.secondsPerIteration * 1000).toFixed(0)} (2-core CPU, shared)`,
    );
    assert.ok(withFull < withLora, `full ${withFull} vs LoRA ${withLora}`);
  } finally {
    await model.release();
    await rt.close();
    rmSync(root, { recursive: true, force: true });
  }
});
