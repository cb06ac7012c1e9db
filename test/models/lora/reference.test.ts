/**
 * The shared kohya LoRA (../shared/fixtures/sd1-checkpoint-d/lora-kohya.safetensors: rank 4, alpha 2, float16,
 * UNet attention/proj_in/proj_out 1×1 convs/feed-forward and text encoder attention/MLP) on model D reproduces
 * the reference implementation's img2img with the LoRA at multiplier 1.0 (img2img_reference_lora.json), and the
 * same model without it reproduces the plain reference (img2img_reference.json, the same case) — on model D
 * built here from its diffusers weights, and as vidprior's own loaders make it from the diffusers folder and
 * from the single-file LDM checkpoint. Skips when ../shared is absent.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readStyleLoras, openStyledSession } from '../../../src/models/lora/styled.js';
import { loadModelFolder } from '../../../src/models/loader.js';
import { resolveModel } from '../../../src/models/resolve/resolve.js';
import { config, overrideConfig } from '../../../src/config.js';
import { img2img } from '../../../src/pipelines/img2img.js';
import { openRuntime, type Runtime } from '../../../src/runtime/index.js';
import type { Session } from '../../../src/runtime/types.js';
import { float32 } from '../../../src/tensor.js';
import { MODEL_D, writeModelD } from './model-d.js';

const skip = existsSync(join(MODEL_D, 'img2img_reference_lora.json'))
  ? false
  : `${MODEL_D} is absent (needs ../shared)`;

interface Case {
  prompt: string;
  negative_prompt: string;
  strength: number;
  steps: number;
  guidance: number;
  output: number[];
}
interface Reference {
  image_chw_01: number[];
  image_shape: number[];
  noise: number[];
  noise_shape: number[];
  cases: Case[];
}

let runtime: Runtime;
let dir: string;

before(async () => {
  if (skip) return;
  runtime = await openRuntime({ ep: 'cpu' });
  dir = await writeModelD(await mkdtemp(join(tmpdir(), 'vidprior-model-d-')));
});
after(async () => {
  await runtime?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** img2img of the reference case with the given sessions; returns the max |difference| to the reference (0–1 scale). */
async function run(
  ref: Reference,
  c: Case,
  sessions: { unet?: Session; textEncoder?: Session },
  folder = dir,
): Promise<number> {
  const model = await loadModelFolder(folder, runtime, sessions);
  try {
    const image = float32(
      ref.image_shape,
      Float32Array.from(ref.image_chw_01, (v) => v * 2 - 1),
    );
    const [out] = await img2img(model, runtime, [image], {
      prompt: c.prompt,
      negativePrompt: c.negative_prompt,
      strength: c.strength,
      steps: c.steps,
      guidance: c.guidance,
      noise: float32(ref.noise_shape, Float32Array.from(ref.noise)),
    });
    let worst = 0;
    for (let i = 0; i < c.output.length; i++) worst = Math.max(worst, Math.abs((out!.data[i]! + 1) / 2 - c.output[i]!));
    return worst;
  } finally {
    await model.release();
  }
}

test('model D without a LoRA reproduces the reference img2img (checks the test model itself)', { skip }, async (t) => {
  const ref = JSON.parse(readFileSync(join(MODEL_D, 'img2img_reference.json'), 'utf8')) as Reference;
  const worst = await run(ref, ref.cases[0]!, {});
  t.diagnostic(`max |Δ| to the reference: ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-3, `max |Δ| ${worst}`);
});

test('the shared kohya LoRA on UNet and text encoder reproduces img2img_reference_lora.json', { skip }, async (t) => {
  const ref = JSON.parse(readFileSync(join(MODEL_D, 'img2img_reference_lora.json'), 'utf8')) as Reference;
  const styles = await readStyleLoras([{ path: join(MODEL_D, 'lora-kohya.safetensors'), weight: 1 }]);
  assert.equal(styles.loras[0]!.file.layout, 'kohya');
  const unet = await openStyledSession(runtime, dir, 'unet', styles);
  const textEncoder = await openStyledSession(runtime, dir, 'text_encoder', styles);
  try {
    const worst = await run(ref, ref.cases[0]!, { unet, textEncoder });
    t.diagnostic(`max |Δ| to the reference: ${worst.toExponential(2)}`);
    // The acceptance bound is 3/255; float32 on both sides agrees far closer.
    assert.ok(worst < 1e-3, `max |Δ| ${worst}`);
    // And the LoRA matters: without it the output is far from this reference.
    const plain = await run(ref, ref.cases[0]!, {});
    t.diagnostic(`without the LoRA: max |Δ| ${plain.toExponential(2)}`);
    assert.ok(plain > 0.01, `without the LoRA max |Δ| is only ${plain}`);
  } finally {
    await unet.release();
    await textEncoder.release();
  }
});

test('the same through the model loaders: a diffusers folder and a single-file LDM checkpoint of model D', {
  skip,
}, async (t) => {
  const ref = JSON.parse(readFileSync(join(MODEL_D, 'img2img_reference_lora.json'), 'utf8')) as Reference;
  const styles = await readStyleLoras([{ path: join(MODEL_D, 'lora-kohya.safetensors'), weight: 1 }]);
  const cache = await mkdtemp(join(tmpdir(), 'vidprior-lora-cache-'));
  const before = config().cacheDir;
  overrideConfig({ cacheDir: cache });
  try {
    for (const [what, input, o] of [
      ['diffusers folder', join(MODEL_D, 'diffusers'), {}],
      ['single-file checkpoint', join(MODEL_D, 'model.safetensors'), { modelConfig: join(MODEL_D, 'diffusers') }],
    ] as const) {
      const folder = (await resolveModel(input, o)).dir;
      const unet = await openStyledSession(runtime, folder, 'unet', styles);
      const textEncoder = await openStyledSession(runtime, folder, 'text_encoder', styles);
      try {
        const worst = await run(ref, ref.cases[0]!, { unet, textEncoder }, folder);
        t.diagnostic(`${what}: max |Δ| to the reference: ${worst.toExponential(2)}`);
        assert.ok(worst < 1e-3, `${what}: max |Δ| ${worst}`);
      } finally {
        await unet.release();
        await textEncoder.release();
      }
    }
  } finally {
    overrideConfig({ cacheDir: before });
    await rm(cache, { recursive: true, force: true });
  }
});
