/**
 * Models of several sizes written by the builder in the layouts users have (single-file LDM in float32 with
 * training extras, float16 and bfloat16; a yaml beside it; diffusers folders, plain and fp16-variant only),
 * converted by the resolver and compared with the same weights built directly as an ONNX folder: text
 * encoder, UNet and VAE outputs to 1e-5 in float32. The half-precision files widen exactly.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { config, overrideConfig } from '../../../src/config.js';
import { createModelFolder, resolveConfig } from '../../../src/models/builder/folder.js';
import type { PartialSdConfig, SdConfig } from '../../../src/models/builder/index.js';
import { syntheticTokenizer } from '../../../src/models/builder/tokenizer-files.js';
import { writeDiffusersFolder, writeLdmCheckpoint } from '../../../src/models/builder/write-checkpoint.js';
import { openSafetensors } from '../../../src/models/checkpoint/tensor-source.js';
import { loadModelFolder } from '../../../src/models/loader.js';
import { loadModel } from '../../../src/onnx/external-data.js';
import { resolveModel } from '../../../src/models/resolve/resolve.js';
import { type Runtime, openRuntime } from '../../../src/runtime/index.js';
import { fromFloat16 } from '../../../src/tensor.js';
import { type ModuleInputs, assertOutputsClose, outputsOf, randomInputs } from './helpers.js';
import { maxAbsDiff } from '../../assert-close.js';

/** SD 1.x conventions fit: GroupNorm 32, 8 UNet heads, CLIP heads 64 wide. Two UNet levels, three VAE levels. */
const A: PartialSdConfig = {
  base: 'tiny',
  text_encoder: {
    vocab_size: 1024,
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 1,
    bos_token_id: 0,
    eos_token_id: 2,
    pad_token_id: 1,
  },
  unet: {
    block_out_channels: [32, 64],
    layers_per_block: 1,
    down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
    cross_attention_dim: 64,
    attention_head_dim: 8,
    norm_num_groups: 32,
  },
  vae: { block_out_channels: [32, 32, 64], layers_per_block: 1, norm_num_groups: 32 },
};

/** What only a yaml can say: per-level heads of width 16, linear projections, depth 2, another scale factor. */
const B: PartialSdConfig = {
  ...A,
  text_encoder: { ...A.text_encoder, num_hidden_layers: 3 },
  unet: {
    block_out_channels: [32, 64, 64],
    layers_per_block: 2,
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    cross_attention_dim: 64,
    attention_head_dim: [2, 4, 4],
    norm_num_groups: 32,
    transformer_layers_per_block: 2,
    use_linear_projection: true,
  },
  vae: { block_out_channels: [32, 64], layers_per_block: 2, norm_num_groups: 32, scaling_factor: 0.13025 },
};

const B_YAML = `model:
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.00085
    linear_end: 0.012
    timesteps: 1000
    scale_factor: 0.13025
    parameterization: "v"
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        in_channels: 4
        out_channels: 4
        model_channels: 32
        attention_resolutions: [4, 2]
        num_res_blocks: 2
        channel_mult: [1, 2, 2]
        num_head_channels: 16
        use_linear_in_transformer: true
        transformer_depth: 2
        context_dim: 64
    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        ddconfig: { double_z: true, z_channels: 4, ch: 32, ch_mult: [1, 2], num_res_blocks: 2 }
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
`;

/** The tiny preset: GroupNorm 8 in the VAE, 4 heads, a 32-wide CLIP with 4 heads: only its configs say so. */
const C: PartialSdConfig = { base: 'tiny' };

let work: string;
let runtime: Runtime;
const savedCache = config().cacheDir;
const reference: Record<string, { dir: string; cfg: SdConfig; inputs: ModuleInputs }> = {};

async function makeReference(name: string, partial: PartialSdConfig, seed: number): Promise<void> {
  const cfg = resolveConfig(partial);
  const dir = join(work, `ref-${name}`);
  await createModelFolder(dir, cfg, { seed, externalData: false });
  const factor = 2 ** (cfg.vae.block_out_channels.length - 1);
  reference[name] = { dir, cfg, inputs: randomInputs({ vocab: cfg.text_encoder.vocab_size, factor }) };
}

/** A folder holding the checkpoint file and, beside it, the tokenizer a single file lacks. */
function checkpointDir(name: string, cfg: SdConfig): string {
  const dir = join(work, name);
  mkdirSync(join(dir, 'tokenizer'), { recursive: true });
  const tok = syntheticTokenizer(cfg.text_encoder.vocab_size);
  writeFileSync(join(dir, 'tokenizer', 'vocab.json'), JSON.stringify(tok.vocab));
  writeFileSync(join(dir, 'tokenizer', 'merges.txt'), tok.merges);
  return dir;
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'vidprior-ckpt-layouts-'));
  overrideConfig({ cacheDir: join(work, 'cache') });
  runtime = await openRuntime({ ep: 'cpu' });
  await makeReference('A', A, 3);
  await makeReference('B', B, 4);
  await makeReference('C', C, 5);
});

after(async () => {
  await runtime?.close();
  overrideConfig({ cacheDir: savedCache });
  rmSync(work, { recursive: true, force: true });
});

test('a float32 single file with training extras equals the builder folder of the same weights (1e-5)', async () => {
  const r = reference.A!;
  const path = join(checkpointDir('a32', r.cfg), 'model.safetensors');
  await writeLdmCheckpoint(path, r.cfg, { seed: 3, extraKeys: true });
  const notes: string[] = [];
  const resolved = await resolveModel(path, { onNote: (n) => notes.push(n) });
  assert.equal(resolved.converted, true);
  assert.ok(
    notes.some((n) => /EMA/.test(n)),
    notes.join('\n'),
  );
  assertOutputsClose(
    await outputsOf(resolved.dir, runtime, r.inputs),
    await outputsOf(r.dir, runtime, r.inputs),
    1e-5,
    'A fp32',
  );
});

test('float16 and bfloat16 single files widen exactly and run close to float32', async () => {
  const r = reference.A!;
  const want = await outputsOf(r.dir, runtime, r.inputs);
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const path = join(checkpointDir(`a-${dtype}`, r.cfg), 'model.safetensors');
    await writeLdmCheckpoint(path, r.cfg, { seed: 3, dtype });
    const resolved = await resolveModel(path);
    // One linear weight (stored transposed) and one conv weight, against the file's values widened here.
    const src = await openSafetensors(path);
    const unet = await loadModel(join(resolved.dir, 'unet', 'model.onnx'));
    const widen = (bits: Uint16Array) =>
      dtype === 'float16' ? fromFloat16(bits) : new Float32Array(Uint32Array.from(bits, (b) => b << 16).buffer);
    const init = (n: string) => unet.graph.initializers.find((t) => t.name === n)!.data as Float32Array;
    const q = widen(
      (await src.read('model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight')) as Uint16Array,
    );
    const qT = init('down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight');
    for (let o = 0; o < 32; o++) for (let i = 0; i < 32; i++) assert.equal(qT[i * 32 + o], q[o * 32 + i]);
    const conv = widen((await src.read('model.diffusion_model.input_blocks.0.0.weight')) as Uint16Array);
    assert.deepEqual(init('conv_in.weight'), conv);
    await src.close();
    const got = await outputsOf(resolved.dir, runtime, r.inputs);
    assertOutputsClose(got, want, dtype === 'float16' ? 2e-2 : 1e-1, `A ${dtype}`);
  }
});

test('a yaml beside the checkpoint supplies heads, scale factor and v-prediction (1e-5)', async () => {
  const r = reference.B!;
  const dir = checkpointDir('b', r.cfg);
  const path = join(dir, 'fine-tune.safetensors');
  await writeLdmCheckpoint(path, r.cfg, { seed: 4 });
  writeFileSync(join(dir, 'fine-tune.yaml'), B_YAML);
  const resolved = await resolveModel(path);
  const meta = JSON.parse(readFileSync(join(resolved.dir, 'vidprior-model.json'), 'utf8'));
  assert.deepEqual(meta.config.unet.attention_head_dim, [2, 4, 4]);
  assert.equal(meta.sources['unet.attention_head_dim'], join(dir, 'fine-tune.yaml'));
  assert.equal(meta.sources['unet.use_linear_projection'], 'tensor shapes');
  const model = await loadModelFolder(resolved.dir, runtime);
  assert.equal(model.schedulerConfig.prediction_type, 'v_prediction');
  assert.equal(model.facts.scalingFactor, 0.13025);
  await model.release();
  assertOutputsClose(
    await outputsOf(resolved.dir, runtime, r.inputs),
    await outputsOf(r.dir, runtime, r.inputs),
    1e-5,
    'B yaml',
  );
});

test('diffusers folders (plain, and fp16 variant only) convert with their own configs', async () => {
  const r = reference.C!;
  const plain = join(work, 'c-diffusers');
  await writeDiffusersFolder(plain, r.cfg, { seed: 5 });
  const want = await outputsOf(r.dir, runtime, r.inputs);
  assertOutputsClose(await outputsOf((await resolveModel(plain)).dir, runtime, r.inputs), want, 1e-5, 'C diffusers');
  const half = join(work, 'c-fp16');
  await writeDiffusersFolder(half, r.cfg, { seed: 5, dtype: 'float16', variant: 'fp16' });
  const notes: string[] = [];
  const resolved = await resolveModel(half, { onNote: (n) => notes.push(n) });
  assert.ok(
    notes.some((n) => /fp16 variant/.test(n)),
    notes.join('\n'),
  );
  assertOutputsClose(await outputsOf(resolved.dir, runtime, r.inputs), want, 2e-2, 'C fp16 variant');
});

test('--dtype float16 keeps half-precision weights and inputs', async () => {
  const r = reference.C!;
  const plain = join(work, 'c-diffusers');
  const resolved = await resolveModel(plain, { dtype: 'float16' });
  const model = await loadModelFolder(resolved.dir, runtime);
  try {
    assert.equal(model.facts.unetType, 'float16');
    assert.equal(model.facts.vaeDecoderType, 'float16');
  } finally {
    await model.release();
  }
  const unet = await loadModel(join(resolved.dir, 'unet', 'model.onnx'));
  assert.equal(unet.graph.initializers.find((t) => t.name === 'conv_in.weight')!.type, 'float16');
  const got = await outputsOf(resolved.dir, runtime, r.inputs);
  const want = await outputsOf(r.dir, runtime, r.inputs);
  assert.ok(maxAbsDiff(got.unet, want.unet) < 5e-2, `float16 UNet differs by ${maxAbsDiff(got.unet, want.unet)}`);
});
