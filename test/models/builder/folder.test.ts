/**
 * createModelFolder writes a complete diffusers ONNX folder that vidprior's own loader and tokenizer accept,
 * atomically, deterministically, inline or with external data; and the synthetic tokenizer fits the text
 * encoder's vocabulary exactly.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VidpriorError } from '../../../src/errors.js';
import { createModelFolder } from '../../../src/models/builder/folder.js';
import { syntheticTokenizer } from '../../../src/models/builder/tokenizer-files.js';
import { loadModelFolder } from '../../../src/models/loader.js';
import { openRuntime, type Runtime } from '../../../src/runtime/index.js';
import { parseMerges } from '../../../src/tokenizer/bpe.js';
import { Rng } from '../../../src/random.js';
import { asFloat32, float32, int64, type Tensor } from '../../../src/tensor.js';
import { maxAbsDiff } from '../../assert-close.js';

let root: string;
let runtime: Runtime;
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'vidprior-builder-'));
  runtime = await openRuntime({ ep: 'cpu' });
});
after(async () => {
  await runtime?.close();
  rmSync(root, { recursive: true, force: true });
});

async function unetOut(dir: string): Promise<Float32Array> {
  const model = await loadModelFolder(dir, runtime);
  try {
    const rng = new Rng(5);
    const out = await model.unet.run({
      sample: float32([1, 4, 8, 8], rng.normalArray(256)),
      timestep: int64([1], [300]),
      encoder_hidden_states: float32([1, 77, 32], rng.normalArray(77 * 32)),
    });
    return asFloat32(out.out_sample as Tensor).data;
  } finally {
    await model.release();
  }
}

test('a tiny folder has every file of the diffusers ONNX layout and loads with the facts of its config', async () => {
  const dir = join(root, 'tiny');
  const made = await createModelFolder(dir, 'tiny', { seed: 0 });
  for (const f of [
    'text_encoder/model.onnx',
    'unet/model.onnx',
    'vae_encoder/model.onnx',
    'vae_decoder/model.onnx',
    'unet/config.json',
    'vae_decoder/config.json',
    'tokenizer/vocab.json',
    'tokenizer/merges.txt',
    'scheduler/scheduler_config.json',
    'model_index.json',
    'vidprior-model.json',
  ]) {
    assert.ok(existsSync(join(dir, f)), f);
  }
  assert.equal(made.vaeScaleFactor, 8);
  assert.deepEqual(readdirSync(root), ['tiny'], 'no temporary folder left behind');
  const sched = JSON.parse(readFileSync(join(dir, 'scheduler/scheduler_config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  assert.deepEqual(
    [
      sched.beta_schedule,
      sched.beta_start,
      sched.beta_end,
      sched.steps_offset,
      sched.set_alpha_to_one,
      sched.prediction_type,
    ],
    ['scaled_linear', 0.00085, 0.012, 1, false, 'epsilon'],
  );
  const model = await loadModelFolder(dir, runtime);
  try {
    assert.equal(model.facts.vaeScaleFactor, 8);
    assert.equal(model.facts.latentChannels, 4);
    assert.equal(model.facts.textWidth, 32);
    const enc = model.tokenizer.encode('a watercolor painting of a fox');
    assert.equal(enc.ids[0], 1022);
    assert.ok(enc.tokens.length < 'a watercolor painting of a fox'.length, 'merges shorten ordinary words');
    assert.ok([...enc.ids].every((id) => id >= 0 && id < 1024));
    assert.equal(enc.ids[enc.tokens.length + 1], 1023);
  } finally {
    await model.release();
  }
});

test('an existing folder is refused unless overwriting; the same seed rebuilds the same bytes', async () => {
  const dir = join(root, 'tiny');
  await assert.rejects(
    createModelFolder(dir, 'tiny'),
    (e: unknown) => e instanceof VidpriorError && e.code === 'E_BAD_REQUEST' && e.message.includes(dir),
  );
  const before = readFileSync(join(dir, 'unet/model.onnx'));
  await createModelFolder(dir, 'tiny', { seed: 0, overwrite: true });
  assert.deepEqual(readFileSync(join(dir, 'unet/model.onnx')), before);
  assert.deepEqual(readdirSync(root).sort(), ['tiny']);
});

test('external data: weights in model.onnx.data, same function as the inline folder', async () => {
  const dir = join(root, 'tiny-ext');
  await createModelFolder(dir, 'tiny', { seed: 0, externalData: true });
  for (const c of ['text_encoder', 'unet', 'vae_encoder', 'vae_decoder'])
    assert.ok(existsSync(join(dir, c, 'model.onnx.data')), c);
  assert.ok(readFileSync(join(dir, 'unet/model.onnx')).length < 200_000, 'the .onnx holds references, not weights');
  assert.ok(maxAbsDiff(await unetOut(dir), await unetOut(join(root, 'tiny'))) === 0);
});

test('bad options fail before anything is written', async () => {
  await assert.rejects(
    createModelFolder(join(root, 'x'), 'tiny', { opset: 9 }),
    /opset must be an integer from 14 to 21, got 9/,
  );
  await assert.rejects(createModelFolder(join(root, 'x'), 'sd2'), /unknown model preset "sd2"/);
  await assert.rejects(
    createModelFolder(join(root, 'x'), 'sd15', { externalData: false }),
    /unet has 859520964 parameters, over protobuf's 2 GB limit/,
  );
  assert.ok(!existsSync(join(root, 'x')));
  assert.deepEqual(
    readdirSync(root).filter((f) => f.startsWith('.')),
    [],
    'no temporary folder',
  );
});

test("the synthetic tokenizer has exactly vocab_size tokens, CLIP's layout and valid merges", () => {
  for (const size of [514, 1024, 49408]) {
    const tok = syntheticTokenizer(size);
    const ids = Object.values(tok.vocab).sort((a, b) => a - b);
    assert.equal(ids.length, size);
    assert.equal(ids[size - 1], size - 1, 'ids 0..V-1');
    assert.equal(tok.vocab['<|startoftext|>'], size - 2);
    assert.equal(tok.vocab['<|endoftext|>'], size - 1);
    assert.equal(tok.vocab['!'], 0, 'bytes_to_unicode order');
    assert.equal(tok.vocab['!</w>'], 256);
    const merges = parseMerges(tok.merges);
    assert.equal(merges.length, size - 514);
    for (const m of merges)
      assert.ok(
        m && tok.vocab[m[0]] !== undefined && tok.vocab[m[1]] !== undefined && tok.vocab[m[0] + m[1]] !== undefined,
      );
  }
});
