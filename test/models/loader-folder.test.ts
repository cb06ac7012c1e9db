/**
 * The loader's folder checks and the export variants it accepts, on copies of the tiny reference export
 * (../shared/fixtures/tiny-sd-torch) rewritten with the project's ONNX toolkit: a missing file is named, a
 * UNet whose text width differs from the text encoder's is named, `latent_parameters` encoders (mean and
 * log-variance) give the mean, and weights stored as external data load.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadModelFolder } from '../../src/models/loader.js';
import { readModelFolder } from '../../src/models/folder.js';
import { readOnnxHeader } from '../../src/models/onnx-header.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { loadModel, saveModel } from '../../src/onnx/external-data.js';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { asFloat32, float32, int64 } from '../../src/tensor.js';
import { encodeImages } from '../../src/pipelines/vae.js';
import { encodeText } from '../../src/pipelines/text.js';
import { img2img } from '../../src/pipelines/img2img.js';
import { rejectsWith } from '../assert-close.js';

const FIXTURE = resolve('../shared/fixtures/tiny-sd-torch');
const present = existsSync(join(FIXTURE, 'reference.json'));
const skip = present ? false : '../shared/fixtures/tiny-sd-torch is absent (the shared fixtures live beside the repo)';
const FILES = [
  'text_encoder/model.onnx',
  'unet/model.onnx',
  'vae_encoder/model.onnx',
  'vae_decoder/model.onnx',
  'tokenizer/vocab.json',
  'tokenizer/merges.txt',
  'scheduler/scheduler_config.json',
];

let tmp: string;
let runtime: Runtime;

/** A copy of the fixture made of symlinks, leaving out `omit` and replacing nothing else. */
function linkedCopy(name: string, omit: string[] = []): string {
  const dir = join(tmp, name);
  for (const f of FILES) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    if (omit.includes(f)) continue;
    symlinkSync(join(FIXTURE, f), join(dir, f));
  }
  return dir;
}

before(async () => {
  if (!present) return;
  tmp = mkdtempSync(join(tmpdir(), 'vidprior-loader-'));
  runtime = await openRuntime({ ep: 'cpu' });
});

after(async () => {
  await runtime?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('a missing model file is named (E_MODEL_MISSING)', { skip }, async () => {
  for (const f of FILES) {
    const dir = linkedCopy(`missing-${f.replace(/\W/g, '_')}`, [f]);
    await rejectsWith(loadModelFolder(dir, runtime), 'E_MODEL_MISSING', new RegExp(f.replace('.', '\\.')));
  }
  await rejectsWith(loadModelFolder(join(tmp, 'no-such-folder'), runtime), 'E_MODEL_MISSING', /no-such-folder/);
});

test('model_index.json stands in for the scheduler config; scaling_factor is read from vae_decoder/config.json', {
  skip,
}, async () => {
  const dir = linkedCopy('index-only', ['scheduler/scheduler_config.json']);
  writeFileSync(
    join(dir, 'model_index.json'),
    JSON.stringify({ _class_name: 'OnnxStableDiffusionPipeline', scheduler: ['diffusers', 'PNDMScheduler'] }),
  );
  writeFileSync(join(dir, 'vae_decoder', 'config.json'), JSON.stringify({ scaling_factor: 0.13025 }));
  const folder = await readModelFolder(dir);
  assert.equal(folder.schedulerConfig.beta_schedule, 'scaled_linear');
  assert.equal(folder.schedulerConfig.steps_offset, 1);
  assert.equal(folder.scalingFactor, 0.13025);
  writeFileSync(join(dir, 'vae_decoder', 'config.json'), '{ not json');
  await rejectsWith(readModelFolder(dir), 'E_MODEL_INPUT', /config\.json/);
});

test('the ONNX header peek reads opsets without loading weights, and names a file that is not ONNX', {
  skip,
}, async () => {
  const h = await readOnnxHeader(join(FIXTURE, 'unet', 'model.onnx'));
  assert.equal(h.opsets[''], 14);
  assert.ok(h.irVersion >= 7);
  const dir = linkedCopy('garbage-unet', ['unet/model.onnx']);
  writeFileSync(join(dir, 'unet', 'model.onnx'), 'this is not a model\n'.repeat(10));
  await rejectsWith(loadModelFolder(dir, runtime), 'E_ONNX', /unet/);
});

test('a UNet whose encoder_hidden_states width differs from the text encoder is named (E_MODEL_INPUT)', {
  skip,
}, async () => {
  const dir = linkedCopy('wide-unet', ['unet/model.onnx']);
  // A UNet-shaped graph with the wrong text width (48 instead of 32): the loader must stop before running it.
  const b = new GraphBuilder('unet', { opset: 14 });
  const sample = b.input('sample', 'float32', ['batch', 4, 'height', 'width']);
  b.input('timestep', 'int64', ['steps']);
  b.input('encoder_hidden_states', 'float32', ['batch', 'sequence', 48]);
  b.output(b.op('Identity', [sample]), 'out_sample', 'float32', ['batch', 4, 'height', 'width']);
  await saveModel(b.build(), join(dir, 'unet', 'model.onnx'));
  await rejectsWith(
    loadModelFolder(dir, runtime),
    'E_MODEL_INPUT',
    /encoder_hidden_states width is 48 but the text encoder outputs 32/,
  );
});

test('a VAE encoder that outputs latent_parameters (mean, log-variance) gives the mean', { skip }, async () => {
  const dir = linkedCopy('params-encoder', ['vae_encoder/model.onnx']);
  const enc = await loadModel(join(FIXTURE, 'vae_encoder', 'model.onnx'));
  const b = new GraphBuilder(enc);
  const mean = enc.graph.outputs[0]!.name;
  enc.graph.outputs = [];
  const logvar = b.op('Add', [mean, b.scalar(100)]); // distinct from the mean, so taking the wrong half shows
  b.output(b.op('Concat', [mean, logvar], { axis: 1 }), 'latent_parameters', 'float32', ['batch', 8, 'h', 'w']);
  await saveModel(enc, join(dir, 'vae_encoder', 'model.onnx'));
  const model = await loadModelFolder(dir, runtime);
  try {
    assert.equal(model.facts.encoderOutput, 'latent_parameters');
    assert.equal(model.io.vaeEncoderOut, 'latent_parameters');
    assert.equal(model.facts.latentChannels, 4);
    const ref = JSON.parse(readFileSync(join(FIXTURE, 'reference.json'), 'utf8')) as Record<
      string,
      { shape: number[]; data: number[] }
    >;
    const lat = await encodeImages(model, float32(ref.vae_img!.shape, ref.vae_img!.data));
    assert.deepEqual(lat.dims, [1, 4, 32, 32]);
    let err = 0;
    ref.vae_lat!.data.forEach((v, i) => {
      err = Math.max(err, Math.abs(lat.data[i]! - v * 0.18215));
    });
    assert.ok(err < 1e-5, `latent error ${err}`);
  } finally {
    await model.release();
  }
});

test('weights stored as external data beside model.onnx load and give the same UNet output', { skip }, async () => {
  const dir = linkedCopy('external-unet', ['unet/model.onnx']);
  const unet = await loadModel(join(FIXTURE, 'unet', 'model.onnx'));
  await saveModel(unet, join(dir, 'unet', 'model.onnx'), { externalData: { threshold: 1024, fileName: 'weights.pb' } });
  assert.ok(existsSync(join(dir, 'unet', 'weights.pb')));
  const model = await loadModelFolder(dir, runtime);
  try {
    const ref = JSON.parse(readFileSync(join(FIXTURE, 'reference.json'), 'utf8')) as Record<
      string,
      { shape: number[]; data: number[] }
    >;
    const { io } = model;
    const out = await model.unet.run(
      {
        [io.unetSample]: float32(ref.unet_x!.shape, ref.unet_x!.data),
        [io.unetTimestep]: int64([1], [500]),
        [io.unetText]: float32(ref.te_hidden!.shape, ref.te_hidden!.data),
      },
      [io.unetOut],
    );
    const got = asFloat32(out[io.unetOut] as never).data;
    let err = 0;
    ref.unet_eps!.data.forEach((v, i) => {
      err = Math.max(err, Math.abs(got[i]! - v));
    });
    assert.ok(err < 1e-4, `unet error ${err}`);
  } finally {
    await model.release();
  }
});

test('a text encoder with an attention_mask input gets all ones (diffusers passes none for SD 1.x); other extra inputs are named', {
  skip,
}, async () => {
  const dir = linkedCopy('mask-text-encoder', ['text_encoder/model.onnx']);
  const te = await loadModel(join(FIXTURE, 'text_encoder', 'model.onnx'));
  te.graph.inputs.push({ name: 'attention_mask', type: 'int32', shape: ['batch', 'sequence'] });
  await saveModel(te, join(dir, 'text_encoder', 'model.onnx'));
  const plain = await loadModelFolder(FIXTURE, runtime);
  const masked = await loadModelFolder(dir, runtime);
  try {
    assert.equal(masked.io.textMask, 'attention_mask');
    assert.equal(plain.io.textMask, null);
    const a = await encodeText(plain, 'a photo of a cat');
    const b = await encodeText(masked, 'a photo of a cat');
    assert.deepEqual(a.hidden.data, b.hidden.data);
  } finally {
    await plain.release();
    await masked.release();
  }
  te.graph.inputs.push({ name: 'position_ids', type: 'int64', shape: ['batch', 'sequence'] });
  await saveModel(te, join(dir, 'text_encoder', 'model.onnx'));
  await rejectsWith(
    loadModelFolder(dir, runtime),
    'E_MODEL_INPUT',
    /text_encoder\/model\.onnx: has inputs vidprior cannot feed: position_ids/,
  );
});

test("a UNet that takes a float32 timestep gets one (and gives the int64 export's result)", { skip }, async () => {
  const dir = linkedCopy('float-timestep', ['unet/model.onnx']);
  const unet = await loadModel(join(FIXTURE, 'unet', 'model.onnx'));
  // Rename the int64 input and feed it from a new float32 `timestep` input through a Cast.
  for (const n of unet.graph.nodes) n.inputs = n.inputs.map((v) => (v === 'timestep' ? 'timestep_int64' : v));
  unet.graph.inputs = unet.graph.inputs.map((v) =>
    v.name === 'timestep' ? { name: 'timestep', type: 'float32' as const, shape: [1] } : v,
  );
  unet.graph.nodes.unshift({
    name: 'timestep_cast',
    opType: 'Cast',
    domain: '',
    inputs: ['timestep'],
    outputs: ['timestep_int64'],
    attributes: { to: { type: 'int', value: 7 } },
  });
  await saveModel(unet, join(dir, 'unet', 'model.onnx'));
  const plain = await loadModelFolder(FIXTURE, runtime);
  const floaty = await loadModelFolder(dir, runtime);
  try {
    assert.equal(floaty.facts.timestepType, 'float32');
    assert.deepEqual(floaty.facts.timestepDims, [1]);
    const frame = float32(
      [3, 32, 32],
      Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.sin(i / 7)),
    );
    const opts = { prompt: 'a cat', steps: 6, strength: 0.7, seed: 3 };
    const [a] = await img2img(plain, runtime, [frame], opts);
    const [b] = await img2img(floaty, runtime, [frame], opts);
    assert.deepEqual(a!.data, b!.data);
  } finally {
    await plain.release();
    await floaty.release();
  }
});
