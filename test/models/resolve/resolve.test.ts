/**
 * The model resolver: what a `--model` value names (paths, repo ids in the Hugging Face cache), the cache of
 * converted models (keyed by content: a renamed copy finds the same folder, a changed byte does not), the
 * recent list, and the refusals that name what a file is.
 */
import assert from 'node:assert/strict';
import {
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  writeSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { config, overrideConfig } from '../../../src/config.js';
import { resolveConfig } from '../../../src/models/builder/folder.js';
import type { SdConfig } from '../../../src/models/builder/index.js';
import { writeDiffusersFolder, writeLdmCheckpoint } from '../../../src/models/builder/write-checkpoint.js';
import { recentModels } from '../../../src/models/resolve/model-cache.js';
import { identifyModel, resolveModel } from '../../../src/models/resolve/resolve.js';
import { encodeSafetensors } from '../../../src/training/safetensors.js';

let work: string;
let cfg: SdConfig;
let diffusers: string;
const saved = { cacheDir: config().cacheDir, hfHubCache: config().hfHubCache };

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'vidprior-resolve-'));
  overrideConfig({ cacheDir: join(work, 'cache'), hfHubCache: join(work, 'hf', 'hub') });
  cfg = resolveConfig('tiny');
  diffusers = join(work, 'tiny-diffusers');
  await writeDiffusersFolder(diffusers, cfg, { seed: 1 });
});

after(() => {
  overrideConfig(saved);
  rmSync(work, { recursive: true, force: true });
});

function code(c: string, re: RegExp) {
  return (err: Error & { code?: string }) => {
    assert.equal(err.code, c, err.message);
    assert.match(err.message, re);
    return true;
  };
}

test('identifyModel tells the kinds apart and names what is missing', async () => {
  assert.equal(identifyModel(undefined).kind, 'embedded');
  assert.equal(identifyModel(diffusers).kind, 'diffusers');
  const empty = join(work, 'empty');
  mkdirSync(empty);
  assert.throws(
    () => identifyModel(empty),
    code('E_MODEL_MISSING', /neither an ONNX model folder.*nor a diffusers folder/),
  );
  assert.throws(() => identifyModel(join(work, 'nope.safetensors')), code('E_MODEL_MISSING', /does not exist/));
  assert.throws(
    () => identifyModel('someone/not-cached'),
    code('E_NOT_FOUND', /not-cached.*Hugging Face cache.*models pull/),
  );
  const converted = await resolveModel(diffusers);
  assert.equal(identifyModel(converted.dir).kind, 'onnx', 'a converted folder is an ONNX folder');
});

test('converted models are cached by content: reused, found from a renamed copy, rebuilt when a byte changes', async () => {
  const file = join(work, 'ckpt', 'model.safetensors');
  mkdirSync(join(work, 'ckpt'));
  cpSync(join(diffusers, 'tokenizer'), join(work, 'ckpt', 'tokenizer'), { recursive: true });
  // The tiny preset breaks SD 1.x conventions (VAE GroupNorm 8): its configs come with --model-config.
  await writeLdmCheckpoint(file, cfg, { seed: 1 });
  const first = await resolveModel(file, { modelConfig: diffusers });
  assert.equal(first.converted, true);
  const again = await resolveModel(file, { modelConfig: diffusers });
  assert.equal(again.converted, false);
  assert.equal(again.dir, first.dir);
  const copy = join(work, 'ckpt', 'renamed.safetensors');
  copyFileSync(file, copy);
  const moved = await resolveModel(copy, { modelConfig: diffusers });
  assert.equal(moved.dir, first.dir, 'same bytes, same folder');
  assert.equal(moved.converted, false);
  const fd = openSync(copy, 'r+');
  const size = (await import('node:fs')).statSync(copy).size;
  writeSync(fd, Buffer.from([0x3f]), 0, 1, size - 2); // one byte of the last tensor
  closeSync(fd);
  const changed = await resolveModel(copy, { modelConfig: diffusers });
  assert.notEqual(changed.dir, first.dir);
  assert.equal(changed.converted, true);
  const half = await resolveModel(file, { modelConfig: diffusers, dtype: 'float16' });
  assert.notEqual(half.dir, first.dir, 'float16 is another folder');
  const recent = (await recentModels()).map((r) => r.ref);
  assert.ok(recent.includes(file) && recent.includes(copy), recent.join(', '));
});

test('a repo id finds its snapshot in the Hugging Face cache (refs/main, or a revision)', async () => {
  const repo = join(work, 'hf', 'hub', 'models--someone--tiny-sd');
  const rev = 'a'.repeat(40);
  cpSync(diffusers, join(repo, 'snapshots', rev), { recursive: true });
  mkdirSync(join(repo, 'refs'), { recursive: true });
  writeFileSync(join(repo, 'refs', 'main'), rev);
  const ref = identifyModel('someone/tiny-sd');
  assert.equal(ref.kind, 'diffusers');
  assert.equal(ref.repo, 'someone/tiny-sd');
  assert.equal(ref.path, join(repo, 'snapshots', rev));
  assert.equal(identifyModel(`someone/tiny-sd@${rev}`).path, ref.path);
  assert.throws(() => identifyModel('someone/tiny-sd@v2'), code('E_NOT_FOUND', /tiny-sd@v2/));
  const resolved = await resolveModel('someone/tiny-sd');
  assert.equal(resolved.dir, (await resolveModel(diffusers)).dir, 'the same content as the folder it was copied from');
});

test('a single file finds its tokenizer in a cached SD pipeline when none is beside it', async () => {
  const alone = join(work, 'alone');
  mkdirSync(alone);
  const file = join(alone, 'model.safetensors');
  await writeLdmCheckpoint(file, cfg, { seed: 2 });
  // --model-config without a tokenizer: configs from one place, the tokenizer from the cache (someone/tiny-sd).
  const configs = join(work, 'configs-only');
  for (const c of ['unet', 'vae', 'text_encoder'])
    cpSync(join(diffusers, c, 'config.json'), join(configs, c, 'config.json'));
  const notes: string[] = [];
  const resolved = await resolveModel(file, { modelConfig: configs, onNote: (n) => notes.push(n) });
  assert.equal(resolved.converted, true);
});

function writeKeys(name: string, tensors: Record<string, number[]>): string {
  const path = join(work, name);
  const entries = Object.fromEntries(
    Object.entries(tensors).map(([k, dims]) => [
      k,
      { type: 'float32' as const, dims, data: new Float32Array(dims.reduce((a, b) => a * b, 1)) },
    ]),
  );
  writeFileSync(path, encodeSafetensors(entries));
  return path;
}

test('other models are recognised and refused by name', async () => {
  const cases: [string, Record<string, number[]>, RegExp][] = [
    ['sdxl.safetensors', { 'conditioner.embedders.0.transformer.text_model.final_layer_norm.weight': [4] }, /SDXL/],
    [
      'sd2.safetensors',
      { 'cond_stage_model.model.ln_final.weight': [4], 'model.diffusion_model.input_blocks.0.0.weight': [4, 4, 3, 3] },
      /SD 2\.x/,
    ],
    ['inpaint.safetensors', { 'model.diffusion_model.input_blocks.0.0.weight': [32, 9, 3, 3] }, /inpainting/],
    ['lora.safetensors', { 'lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight': [4, 4] }, /LoRA.*--lora/],
    ['vae.safetensors', { 'encoder.conv_in.weight': [8, 3, 3, 3] }, /VAE on its own/],
    ['other.safetensors', { 'fc.weight': [2, 2] }, /not a Stable Diffusion checkpoint/],
  ];
  for (const [name, keys, re] of cases)
    await assert.rejects(resolveModel(writeKeys(name, keys)), code('E_MODEL_INPUT', re));
  const legacy = join(work, 'legacy.ckpt');
  writeFileSync(legacy, Buffer.from([0x80, 0x02, 0x8a, 0x0a]));
  await assert.rejects(resolveModel(legacy), code('E_MODEL_INPUT', /legacy.*PyTorch/));
});

test('a config for another model, and a checkpoint missing a tensor, are named', async () => {
  const file = join(work, 'ckpt', 'model.safetensors');
  const other = join(work, 'other-config');
  await writeDiffusersFolder(other, resolveConfig({ base: 'tiny', unet: { block_out_channels: [32, 32] } }), {
    seed: 1,
  });
  await assert.rejects(
    resolveModel(file, { modelConfig: other }),
    code('E_MODEL_INPUT', /block_out_channels.*another model/),
  );
  const broken = join(work, 'broken');
  cpSync(diffusers, broken, { recursive: true });
  const { openSafetensors } = await import('../../../src/models/checkpoint/tensor-source.js');
  const src = await openSafetensors(join(broken, 'unet', 'diffusion_pytorch_model.safetensors'));
  const kept: Record<string, { type: 'float32'; dims: number[]; data: Float32Array }> = {};
  for (const n of src.names()) {
    if (n === 'mid_block.attentions.0.proj_out.bias') continue;
    kept[n] = { type: 'float32', dims: src.info(n)!.dims, data: (await src.read(n)) as Float32Array };
  }
  await src.close();
  writeFileSync(join(broken, 'unet', 'diffusion_pytorch_model.safetensors'), encodeSafetensors(kept));
  await assert.rejects(resolveModel(broken), code('E_MODEL_INPUT', /mid_block\.attentions\.0\.proj_out\.bias/));
});
