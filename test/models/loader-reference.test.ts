/**
 * The loader + runtime on CPU against the reference implementation's own outputs for the tiny export in
 * ../shared/fixtures/tiny-sd-torch (random weights; see its README): text encoder, UNet and VAE must agree to
 * 1e-4. Skips with a message when ../shared is absent.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { loadModelFolder } from '../../src/models/loader.js';
import type { StableDiffusionModel } from '../../src/models/types.js';
import { openRuntime } from '../../src/runtime/index.js';
import type { Runtime } from '../../src/runtime/index.js';
import { type Tensor, asFloat32, float32, int32, int64 } from '../../src/tensor.js';
import { decodeLatents, encodeImages } from '../../src/pipelines/vae.js';
import { maxAbsDiff } from '../assert-close.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch';
const present = existsSync(`${FIXTURE}/reference.json`);
const skip = present ? false : `${FIXTURE} is absent (the shared fixtures live beside the repo)`;

interface Ref {
  shape: number[];
  data: number[];
}
let ref: Record<string, Ref>;
let runtime: Runtime;
let model: StableDiffusionModel;

function host(t: unknown): Tensor<'float32'> {
  return asFloat32(t as Tensor);
}

before(async () => {
  if (!present) return;
  ref = JSON.parse(readFileSync(`${FIXTURE}/reference.json`, 'utf8')) as Record<string, Ref>;
  runtime = await openRuntime({ ep: 'cpu' });
  model = await loadModelFolder(FIXTURE, runtime);
});

after(async () => {
  await model?.release();
  await runtime?.close();
});

test("loader derives the tiny export's facts from the model files", { skip }, () => {
  const f = model.facts;
  assert.equal(f.vaeScaleFactor, 2);
  assert.equal(f.latentChannels, 4);
  assert.equal(f.textWidth, 32);
  assert.equal(f.textLength, 77);
  assert.equal(f.unetType, 'float32');
  assert.equal(f.timestepType, 'int64');
  assert.equal(f.encoderOutput, 'latent_sample');
  assert.equal(f.scalingFactor, 0.18215);
  assert.deepEqual(f.opsets, { text_encoder: 14, unet: 14, vae_encoder: 14, vae_decoder: 14 });
  assert.equal(model.schedulerConfig.beta_schedule, 'scaled_linear');
});

test('text encoder agrees with the reference to 1e-4', { skip }, async () => {
  const ids = ref.input_ids!;
  const out = await model.textEncoder.run({ [model.io.textIds]: int32(ids.shape, ids.data) }, [model.io.textHidden]);
  const err = maxAbsDiff(host(out[model.io.textHidden]).data, ref.te_hidden!.data);
  console.log(`text encoder max abs error ${err.toExponential(2)}`);
  assert.ok(err < 1e-4, `text encoder max abs error ${err}`);
});

test("tokenizer + text encoder of the reference ids agree (the ids are the tokenizer's own)", { skip }, async () => {
  // The reference ids start with BOS and are padded with EOS like every CLIP prompt.
  const ids = ref.input_ids!.data;
  assert.equal(ids[0], model.tokenizer.bosId);
  assert.equal(ids[ids.length - 1], model.tokenizer.padId);
});

test('UNet agrees with the reference to 1e-4 (t = 500)', { skip }, async () => {
  const { io } = model;
  const out = await model.unet.run(
    {
      [io.unetSample]: float32(ref.unet_x!.shape, ref.unet_x!.data),
      [io.unetTimestep]: int64([1], [500]),
      [io.unetText]: float32(ref.te_hidden!.shape, ref.te_hidden!.data),
    },
    [io.unetOut],
  );
  const err = maxAbsDiff(host(out[io.unetOut]).data, ref.unet_eps!.data);
  console.log(`unet max abs error ${err.toExponential(2)}`);
  assert.ok(err < 1e-4, `unet max abs error ${err}`);
});

test('VAE encoder and decoder agree with the reference to 1e-4', { skip }, async () => {
  const { io } = model;
  const enc = await model.vaeEncoder.run({ [io.vaeEncoderIn]: float32(ref.vae_img!.shape, ref.vae_img!.data) }, [
    io.vaeEncoderOut,
  ]);
  const encErr = maxAbsDiff(host(enc[io.vaeEncoderOut]).data, ref.vae_lat!.data);
  const dec = await model.vaeDecoder.run({ [io.vaeDecoderIn]: float32(ref.vae_lat!.shape, ref.vae_lat!.data) }, [
    io.vaeDecoderOut,
  ]);
  const decErr = maxAbsDiff(host(dec[io.vaeDecoderOut]).data, ref.vae_dec!.data);
  console.log(`vae encoder max abs error ${encErr.toExponential(2)}, decoder ${decErr.toExponential(2)}`);
  assert.ok(encErr < 1e-4, `vae encoder max abs error ${encErr}`);
  assert.ok(decErr < 1e-4, `vae decoder max abs error ${decErr}`);
});

test('pipeline VAE helpers scale by scaling_factor like diffusers (images in [-1,1])', { skip }, async () => {
  const img = ref.vae_img!;
  const lat = await encodeImages(model, float32(img.shape, img.data));
  const s = model.facts.scalingFactor;
  const encErr = maxAbsDiff(
    lat.data,
    ref.vae_lat!.data.map((v) => v * s),
  );
  assert.ok(encErr < 1e-4 * s + 1e-6, `scaled latent error ${encErr}`);
  const scaled = float32(
    ref.vae_lat!.shape,
    ref.vae_lat!.data.map((v) => Math.fround(v * s)),
  );
  const images = await decodeLatents(model, scaled);
  const want = ref.vae_dec!.data.map((v) => Math.min(1, Math.max(-1, v)));
  const decErr = maxAbsDiff(images.data, want);
  assert.ok(decErr < 1e-4, `decoded image error ${decErr}`);
});
