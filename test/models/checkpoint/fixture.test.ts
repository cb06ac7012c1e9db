/**
 * Model D of ../shared/fixtures/sd1-checkpoint-d, saved by the reference implementation in the layouts users
 * have (diffusers folder with fp16 variants, single-file LDM fp32 / fp16 / with training extras), converted
 * by vidprior and checked against the reference's own outputs: module outputs to 1e-4 (reference.json), the
 * single files equal to the diffusers folder to 1e-5, and img2img within 1/255 of img2img_reference*.json.
 * Skips with a reason when ../shared is absent.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { config, overrideConfig } from '../../../src/config.js';
import { loadModelFolder } from '../../../src/models/loader.js';
import { resolveModel } from '../../../src/models/resolve/resolve.js';
import { img2img } from '../../../src/pipelines/img2img.js';
import { type Runtime, openRuntime } from '../../../src/runtime/index.js';
import { asFloat32, float32, int32, int64, type Tensor } from '../../../src/tensor.js';
import { maxAbsDiff } from '../../assert-close.js';

const FIXTURE = '../shared/fixtures/sd1-checkpoint-d';
const skip = existsSync(join(FIXTURE, 'reference.json'))
  ? false
  : `${FIXTURE} is absent (shared fixtures live beside the repo)`;
const CONFIG = join(FIXTURE, 'diffusers');

interface Ref {
  shape: number[];
  data: number[];
}
let work: string;
let runtime: Runtime;
let ref: Record<string, Ref>;
let img: {
  image_chw_01: number[];
  noise: number[];
  cases: {
    prompt: string;
    negative_prompt: string;
    strength: number;
    steps: number;
    guidance: number;
    output: number[];
  }[];
};
const savedCache = config().cacheDir;
/** Converted folders by layout name. */
const dirs: Record<string, string> = {};

const LAYOUTS: Record<string, { model: string; modelConfig?: string; variant?: string }> = {
  diffusers: { model: CONFIG },
  single: { model: join(FIXTURE, 'model.safetensors'), modelConfig: CONFIG },
  ema: { model: join(FIXTURE, 'model-ema.safetensors'), modelConfig: CONFIG },
  fp16: { model: join(FIXTURE, 'model-fp16.safetensors'), modelConfig: CONFIG },
};

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'vidprior-ckpt-fixture-'));
  overrideConfig({ cacheDir: join(work, 'cache') });
  ref = JSON.parse(readFileSync(join(FIXTURE, 'reference.json'), 'utf8'));
  img = JSON.parse(readFileSync(join(FIXTURE, 'img2img_reference.json'), 'utf8'));
  runtime = await openRuntime({ ep: 'cpu' });
  for (const [name, l] of Object.entries(LAYOUTS))
    dirs[name] = (await resolveModel(l.model, { modelConfig: l.modelConfig })).dir;
});

after(async () => {
  await runtime?.close();
  overrideConfig({ cacheDir: savedCache });
  if (work) rmSync(work, { recursive: true, force: true });
});

function host(t: unknown): Float32Array {
  return asFloat32(t as Tensor).data;
}

async function modules(dir: string) {
  const model = await loadModelFolder(dir, runtime);
  try {
    const { io } = model;
    const ids = ref.input_ids!;
    const te = host(
      (await model.textEncoder.run({ [io.textIds]: int32(ids.shape, ids.data) }, [io.textHidden]))[io.textHidden],
    );
    const unet = host(
      (
        await model.unet.run(
          {
            [io.unetSample]: float32(ref.unet_x!.shape, ref.unet_x!.data),
            [io.unetTimestep]: int64([1], [501]),
            [io.unetText]: float32(ref.te_hidden!.shape, ref.te_hidden!.data),
          },
          [io.unetOut],
        )
      )[io.unetOut],
    );
    const image = Float32Array.from(img.image_chw_01, (v) => v * 2 - 1);
    const mean = host(
      (await model.vaeEncoder.run({ [io.vaeEncoderIn]: float32([1, 3, 64, 64], image) }, [io.vaeEncoderOut]))[
        io.vaeEncoderOut
      ],
    );
    const dec = host(
      (
        await model.vaeDecoder.run({ [io.vaeDecoderIn]: float32(ref.vae_dec_in!.shape, ref.vae_dec_in!.data) }, [
          io.vaeDecoderOut,
        ])
      )[io.vaeDecoderOut],
    );
    return { te, unet, mean, dec };
  } finally {
    await model.release();
  }
}

test("every layout of model D gives the reference module outputs (1e-4) and the diffusers folder's (1e-5)", {
  skip,
  timeout: 120_000,
}, async () => {
  const base = await modules(dirs.diffusers!);
  assert.ok(maxAbsDiff(base.te, ref.te_hidden!.data) < 1e-4, 'text encoder vs reference');
  assert.ok(maxAbsDiff(base.unet, ref.unet_eps!.data) < 1e-4, 'unet vs reference');
  assert.ok(maxAbsDiff(base.mean, ref.vae_mean!.data) < 1e-4, 'vae encoder vs reference');
  assert.ok(maxAbsDiff(base.dec, ref.vae_dec!.data) < 1e-4, 'vae decoder vs reference');
  for (const name of ['single', 'ema']) {
    const got = await modules(dirs[name]!);
    for (const k of ['te', 'unet', 'mean', 'dec'] as const)
      assert.ok(
        maxAbsDiff(got[k], base[k]) <= 1e-5,
        `${name}: ${k} differs from the diffusers folder's by ${maxAbsDiff(got[k], base[k])}`,
      );
  }
});

test('the single file with training extras converts to the same folder content as the plain one', { skip }, () => {
  const read = (d: string) => JSON.parse(readFileSync(join(d, 'vidprior-model.json'), 'utf8'));
  assert.deepEqual(read(dirs.ema!).config, read(dirs.single!).config);
  assert.deepEqual(read(dirs.ema!).unused, []);
  assert.equal(read(dirs.single!).sources['unet.norm_num_groups'], CONFIG);
  assert.equal(read(dirs.single!).sources['unet.block_out_channels'], 'tensor shapes');
});

async function runCase(dir: string, c: (typeof img.cases)[number]): Promise<Float32Array> {
  const model = await loadModelFolder(dir, runtime);
  try {
    const image = float32(
      [3, 64, 64],
      Float32Array.from(img.image_chw_01, (v) => v * 2 - 1),
    );
    const [out] = await img2img(model, runtime, [image], {
      prompt: c.prompt,
      negativePrompt: c.negative_prompt,
      strength: c.strength,
      steps: c.steps,
      guidance: c.guidance,
      noise: float32([1, 4, 8, 8], img.noise),
    });
    return Float32Array.from(out!.data, (v) => (v + 1) / 2);
  } finally {
    await model.release();
  }
}

test('img2img of the diffusers folder and the single file matches the reference within 1/255', {
  skip,
  timeout: 300_000,
}, async () => {
  for (const name of ['diffusers', 'single']) {
    for (const [i, c] of img.cases.entries()) {
      const err = maxAbsDiff(await runCase(dirs[name]!, c), c.output);
      console.log(`${name} case ${i}: max abs error ${(err * 255).toFixed(3)}/255`);
      assert.ok(err <= 1 / 255, `${name} case ${i}: ${err * 255}/255`);
    }
  }
});

test('the fp16 single file and the fp16 variant folder match the fp16 reference within 1/255', {
  skip,
  timeout: 300_000,
}, async () => {
  const fp16 = JSON.parse(readFileSync(join(FIXTURE, 'img2img_reference_fp16.json'), 'utf8')) as typeof img;
  const variant = (await resolveModel(CONFIG, { variant: 'fp16' })).dir;
  assert.notEqual(variant, dirs.diffusers, 'the fp16 variant has its own cache entry');
  for (const [name, dir] of [
    ['fp16 single file', dirs.fp16!],
    ['fp16 variant', variant],
  ] as const) {
    const c = fp16.cases[0]!;
    const err = maxAbsDiff(await runCase(dir, { ...c, output: c.output }), c.output);
    console.log(`${name}: max abs error ${(err * 255).toFixed(3)}/255`);
    assert.ok(err <= 1 / 255, `${name}: ${err * 255}/255`);
  }
});

test('the single file alone is refused with what to give (its GroupNorm groups break the SD 1.x convention)', {
  skip,
}, async () => {
  await assert.rejects(resolveModel(join(FIXTURE, 'model.safetensors')), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'E_MODEL_INPUT');
    assert.match(err.message, /norm_num_groups/);
    assert.match(err.message, /--model-config/);
    return true;
  });
});
