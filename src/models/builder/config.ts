/**
 * Configurations of the three networks of a Stable Diffusion 1.x model, with the same keys as diffusers'
 * config.json files (CLIPTextConfig, UNet2DConditionModel, AutoencoderKL), and their validation.
 *
 * A config file given to `vidprior models create-tiny --config` is a JSON object with optional
 * `text_encoder`, `unet` and `vae` sections (partial: missing keys come from the `base` preset, `tiny` by
 * default), e.g. `{ "base": "tiny", "unet": { "block_out_channels": [64, 128] } }`.
 */
import { VidpriorError } from '../../errors.js';

export interface ClipTextConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  hidden_act: 'quick_gelu' | 'gelu';
  layer_norm_eps: number;
  bos_token_id: number;
  eos_token_id: number;
  pad_token_id: number;
}

export type DownBlockType = 'DownBlock2D' | 'CrossAttnDownBlock2D';
export type UpBlockType = 'UpBlock2D' | 'CrossAttnUpBlock2D';

export interface UNetConfig {
  sample_size: number;
  in_channels: number;
  out_channels: number;
  block_out_channels: number[];
  layers_per_block: number;
  down_block_types: DownBlockType[];
  up_block_types: UpBlockType[];
  mid_block_type: 'UNetMidBlock2DCrossAttn';
  cross_attention_dim: number;
  /** SD 1.x quirk kept by diffusers: this is the number of heads (one value, or one per block). */
  attention_head_dim: number | number[];
  norm_num_groups: number;
  norm_eps: number;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  act_fn: 'silu';
  transformer_layers_per_block: number;
  use_linear_projection: boolean;
}

export interface VaeConfig {
  sample_size: number;
  in_channels: number;
  out_channels: number;
  latent_channels: number;
  block_out_channels: number[];
  layers_per_block: number;
  norm_num_groups: number;
  scaling_factor: number;
  act_fn: 'silu';
  down_block_types: 'DownEncoderBlock2D'[];
  up_block_types: 'UpDecoderBlock2D'[];
}

export interface SdConfig {
  text_encoder: ClipTextConfig;
  unet: UNetConfig;
  vae: VaeConfig;
}

/** A config as written in a file: any section and key may be left out. */
export interface PartialSdConfig {
  base?: string;
  text_encoder?: Partial<ClipTextConfig>;
  unet?: Partial<UNetConfig>;
  vae?: Partial<VaeConfig>;
}

function bad(what: string, value: unknown, expected: string): VidpriorError {
  return new VidpriorError('E_BAD_REQUEST', `model config ${what} must be ${expected}, got ${JSON.stringify(value)}`, {
    [what]: value,
  });
}

function posInt(what: string, v: unknown): void {
  if (!Number.isInteger(v) || (v as number) <= 0) throw bad(what, v, 'a positive integer');
}

function posInts(what: string, v: unknown): void {
  if (!Array.isArray(v) || v.length === 0) throw bad(what, v, 'a non-empty list of positive integers');
  v.forEach((x, i) => {
    posInt(`${what}[${i}]`, x);
  });
}

function posNumber(what: string, v: unknown): void {
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw bad(what, v, 'a positive number');
}

/** The number of attention heads of down block `i` (diffusers' attention_head_dim for SD 1.x). */
export function headsOf(unet: UNetConfig, i: number): number {
  const h = unet.attention_head_dim;
  return Array.isArray(h) ? h[i]! : h;
}

/** Checks a whole config; throws E_BAD_REQUEST naming the first bad key. */
export function validateConfig(c: SdConfig): SdConfig {
  const t = c.text_encoder;
  for (const k of [
    'vocab_size',
    'hidden_size',
    'intermediate_size',
    'num_hidden_layers',
    'num_attention_heads',
    'max_position_embeddings',
  ] as const)
    posInt(`text_encoder.${k}`, t[k]);
  if (t.hidden_size % t.num_attention_heads !== 0)
    throw bad('text_encoder.num_attention_heads', t.num_attention_heads, `a divisor of hidden_size ${t.hidden_size}`);
  if (t.hidden_act !== 'quick_gelu' && t.hidden_act !== 'gelu')
    throw bad('text_encoder.hidden_act', t.hidden_act, '"quick_gelu" or "gelu"');
  posNumber('text_encoder.layer_norm_eps', t.layer_norm_eps);
  // The synthetic tokenizer needs room for 512 byte tokens and the two special tokens.
  if (t.vocab_size < 514)
    throw bad('text_encoder.vocab_size', t.vocab_size, 'at least 514 (256 bytes, their </w> forms, 2 special tokens)');
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    if (!Number.isInteger(t[k]) || t[k] < 0 || t[k] >= t.vocab_size)
      throw bad(`text_encoder.${k}`, t[k], `an id below vocab_size ${t.vocab_size}`);
  }
  if (t.max_position_embeddings < 77)
    throw bad(
      'text_encoder.max_position_embeddings',
      t.max_position_embeddings,
      'at least 77 (the CLIP prompt length)',
    );

  const u = c.unet;
  for (const k of [
    'sample_size',
    'in_channels',
    'out_channels',
    'layers_per_block',
    'cross_attention_dim',
    'norm_num_groups',
    'transformer_layers_per_block',
  ] as const)
    posInt(`unet.${k}`, u[k]);
  posInts('unet.block_out_channels', u.block_out_channels);
  posNumber('unet.norm_eps', u.norm_eps);
  const levels = u.block_out_channels.length;
  if (!Array.isArray(u.down_block_types) || u.down_block_types.length !== levels)
    throw bad(
      'unet.down_block_types',
      u.down_block_types,
      `a list of ${levels} block types (one per block_out_channels)`,
    );
  if (!Array.isArray(u.up_block_types) || u.up_block_types.length !== levels)
    throw bad('unet.up_block_types', u.up_block_types, `a list of ${levels} block types`);
  u.down_block_types.forEach((d, i) => {
    if (d !== 'DownBlock2D' && d !== 'CrossAttnDownBlock2D')
      throw bad(`unet.down_block_types[${i}]`, d, '"DownBlock2D" or "CrossAttnDownBlock2D"');
  });
  u.up_block_types.forEach((d, i) => {
    if (d !== 'UpBlock2D' && d !== 'CrossAttnUpBlock2D')
      throw bad(`unet.up_block_types[${i}]`, d, '"UpBlock2D" or "CrossAttnUpBlock2D"');
  });
  if (u.mid_block_type !== 'UNetMidBlock2DCrossAttn')
    throw bad('unet.mid_block_type', u.mid_block_type, '"UNetMidBlock2DCrossAttn"');
  if (u.act_fn !== 'silu') throw bad('unet.act_fn', u.act_fn, '"silu"');
  if (
    Array.isArray(u.attention_head_dim)
      ? u.attention_head_dim.length !== levels
      : !Number.isInteger(u.attention_head_dim)
  ) {
    throw bad('unet.attention_head_dim', u.attention_head_dim, `a positive integer or a list of ${levels}`);
  }
  u.block_out_channels.forEach((ch, i) => {
    if (ch % u.norm_num_groups !== 0)
      throw bad(`unet.block_out_channels[${i}]`, ch, `a multiple of norm_num_groups ${u.norm_num_groups}`);
    // Heads matter where there is attention: cross-attention levels (down and up) and the mid block (last level).
    const attends =
      u.down_block_types[i] === 'CrossAttnDownBlock2D' ||
      u.up_block_types[levels - 1 - i] === 'CrossAttnUpBlock2D' ||
      i === levels - 1;
    const heads = headsOf(u, i);
    posInt(`unet.attention_head_dim[${i}]`, heads);
    if (attends && ch % heads !== 0)
      throw bad(`unet.attention_head_dim[${i}]`, heads, `a divisor of block_out_channels[${i}] ${ch}`);
  });
  if (u.cross_attention_dim !== t.hidden_size)
    throw bad('unet.cross_attention_dim', u.cross_attention_dim, `the text encoder's hidden_size ${t.hidden_size}`);

  const v = c.vae;
  for (const k of [
    'sample_size',
    'in_channels',
    'out_channels',
    'latent_channels',
    'layers_per_block',
    'norm_num_groups',
  ] as const)
    posInt(`vae.${k}`, v[k]);
  posInts('vae.block_out_channels', v.block_out_channels);
  posNumber('vae.scaling_factor', v.scaling_factor);
  v.block_out_channels.forEach((ch, i) => {
    if (ch % v.norm_num_groups !== 0)
      throw bad(`vae.block_out_channels[${i}]`, ch, `a multiple of norm_num_groups ${v.norm_num_groups}`);
  });
  if (
    !Array.isArray(v.down_block_types) ||
    v.down_block_types.length !== v.block_out_channels.length ||
    v.down_block_types.some((d) => d !== 'DownEncoderBlock2D')
  ) {
    throw bad(
      'vae.down_block_types',
      v.down_block_types,
      `a list of ${v.block_out_channels.length} "DownEncoderBlock2D"`,
    );
  }
  if (
    !Array.isArray(v.up_block_types) ||
    v.up_block_types.length !== v.block_out_channels.length ||
    v.up_block_types.some((d) => d !== 'UpDecoderBlock2D')
  ) {
    throw bad('vae.up_block_types', v.up_block_types, `a list of ${v.block_out_channels.length} "UpDecoderBlock2D"`);
  }
  if (u.in_channels !== v.latent_channels)
    throw bad('unet.in_channels', u.in_channels, `the VAE's latent_channels ${v.latent_channels}`);
  if (u.out_channels !== v.latent_channels)
    throw bad('unet.out_channels', u.out_channels, `the VAE's latent_channels ${v.latent_channels}`);
  return c;
}

/** The VAE's spatial scale factor: 2 per downsampling level. */
export function vaeScaleFactor(vae: VaeConfig): number {
  return 2 ** (vae.block_out_channels.length - 1);
}

/** `base` with the sections of `over` laid over it (block type lists follow block_out_channels' length). */
export function mergeConfig(base: SdConfig, over: PartialSdConfig): SdConfig {
  for (const key of Object.keys(over)) {
    if (!['base', 'text_encoder', 'unet', 'vae'].includes(key))
      throw bad(
        key,
        (over as Record<string, unknown>)[key],
        'one of base, text_encoder, unet, vae (an unknown section)',
      );
  }
  const unet = { ...base.unet, ...over.unet } as UNetConfig;
  const vae = { ...base.vae, ...over.vae } as VaeConfig;
  // A new channel list without new block types: keep the base's pattern (last level plain, others attention).
  if (over.unet?.block_out_channels && !over.unet.down_block_types) {
    const n = unet.block_out_channels.length;
    unet.down_block_types = Array.from({ length: n }, (_, i) => (i === n - 1 ? 'DownBlock2D' : 'CrossAttnDownBlock2D'));
    if (n === base.unet.block_out_channels.length) unet.down_block_types = [...base.unet.down_block_types];
  }
  if (over.unet?.block_out_channels && !over.unet.up_block_types) {
    unet.up_block_types = [...unet.down_block_types]
      .reverse()
      .map((d) => (d === 'DownBlock2D' ? 'UpBlock2D' : 'CrossAttnUpBlock2D'));
  }
  if (over.vae?.block_out_channels) {
    const n = vae.block_out_channels.length;
    if (!over.vae.down_block_types) vae.down_block_types = new Array(n).fill('DownEncoderBlock2D');
    if (!over.vae.up_block_types) vae.up_block_types = new Array(n).fill('UpDecoderBlock2D');
  }
  return { text_encoder: { ...base.text_encoder, ...over.text_encoder }, unet, vae };
}
