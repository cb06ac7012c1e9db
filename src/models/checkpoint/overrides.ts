/**
 * Configs laid over what the tensors say: a diffusers folder's unet/vae/text_encoder config.json (the folder
 * itself, or `--model-config DIR` for a single file, as diffusers' `from_single_file(config=…)`), or an LDM
 * `.yaml` beside the checkpoint (ldm-yaml.ts). They decide what shapes cannot (GroupNorm groups, heads, eps,
 * the latent scaling factor); where they state a shape fact too, it must agree with the tensors.
 *
 * diffusers UNet features the builder does not make (SDXL's added embeddings, LCM's time condition, …) are
 * refused here with the config key that asks for them.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VidpriorError } from '../../errors.js';
import type { ClipTextConfig, UNetConfig, VaeConfig } from '../builder/config.js';
import { SHAPE_FACTS, type SourcedConfig } from './architecture.js';

export interface ConfigOverride {
  /** The file or folder the values come from. */
  source: string;
  unet?: Partial<UNetConfig>;
  vae?: Partial<VaeConfig>;
  text_encoder?: Partial<ClipTextConfig>;
}

type Section = 'unet' | 'vae' | 'text_encoder';

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Lays `o` over `sc` (in place); a shape fact that disagrees with the tensors is E_MODEL_INPUT. */
export function applyOverride(sc: SourcedConfig, o: ConfigOverride): void {
  for (const section of ['unet', 'vae', 'text_encoder'] as Section[]) {
    const values = o[section] as Record<string, unknown> | undefined;
    if (!values) continue;
    const target = sc.config[section] as unknown as Record<string, unknown>;
    const shapeFacts = SHAPE_FACTS[section] as readonly string[];
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined) continue;
      if (shapeFacts.includes(key)) {
        if (!same(target[key], value)) {
          throw new VidpriorError(
            'E_MODEL_INPUT',
            `${o.source} says ${section}.${key} is ${JSON.stringify(value)} but the weights have ${JSON.stringify(target[key])}: the config is for another model`,
            { config: o.source, key: `${section}.${key}` },
          );
        }
        continue;
      }
      target[key] = value;
      sc.sources[`${section}.${key}`] = o.source;
    }
  }
}

export async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new VidpriorError(
      'E_MODEL_MISSING',
      `cannot read ${path}: ${(err as Error).message}`,
      { file: path },
      {
        cause: err,
      },
    );
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new VidpriorError('E_MODEL_INPUT', `${path} is not JSON: ${(err as Error).message}`, { file: path });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new VidpriorError('E_MODEL_INPUT', `${path} is not a JSON object`, { file: path });
  return v as Record<string, unknown>;
}

function refuse(path: string, key: string, value: unknown, what: string): VidpriorError {
  return new VidpriorError(
    'E_MODEL_INPUT',
    `${path}: ${key} ${JSON.stringify(value)} (${what}) is not supported: vidprior runs SD 1.x-style UNets`,
    { file: path, key },
  );
}

/** UNet2DConditionModel keys whose non-default values ask for something the builder does not build. */
const UNET_DEFAULTS: [string, unknown, string][] = [
  ['addition_embed_type', null, 'SDXL-style added text/time embeddings'],
  ['class_embed_type', null, 'class embeddings'],
  ['num_class_embeds', null, 'class embeddings'],
  ['encoder_hid_dim', null, 'an encoder projection'],
  ['encoder_hid_dim_type', null, 'an encoder projection'],
  ['time_cond_proj_dim', null, 'a timestep condition (LCM)'],
  ['time_embedding_type', 'positional', 'another time embedding'],
  ['time_embedding_dim', null, 'another time embedding width'],
  ['time_embedding_act_fn', null, 'a time embedding activation'],
  ['timestep_post_act', null, 'a time embedding activation'],
  ['resnet_time_scale_shift', 'default', 'scale-shift time conditioning'],
  ['resnet_skip_time_act', false, 'resnet time activation skipping'],
  ['resnet_out_scale_factor', 1, 'scaled resnet outputs'],
  ['mid_block_scale_factor', 1, 'a scaled mid block'],
  ['only_cross_attention', false, 'cross-attention only'],
  ['dual_cross_attention', false, 'dual cross-attention'],
  ['mid_block_only_cross_attention', null, 'cross-attention only'],
  ['cross_attention_norm', null, 'normed cross-attention'],
  ['attention_type', 'default', 'gated attention'],
  ['center_input_sample', false, 'centred inputs'],
  ['conv_in_kernel', 3, 'another conv_in kernel'],
  ['conv_out_kernel', 3, 'another conv_out kernel'],
  ['downsample_padding', 1, 'another downsample padding'],
  ['act_fn', 'silu', 'another activation'],
  ['mid_block_type', 'UNetMidBlock2DCrossAttn', 'another mid block'],
  ['reverse_transformer_layers_per_block', null, 'per-block transformer depths'],
  ['class_embeddings_concat', false, 'class embeddings'],
  ['addition_time_embed_dim', null, 'SDXL-style time embeddings'],
  ['projection_class_embeddings_input_dim', null, 'class embeddings'],
];

/** Reads a diffusers UNet config.json into builder keys, refusing what the builder cannot make. */
export function unetOverride(j: Record<string, unknown>, path: string): Partial<UNetConfig> {
  for (const [key, def, what] of UNET_DEFAULTS) {
    if (key in j && j[key] !== null && !same(j[key], def)) {
      if (key === 'addition_embed_type' && j[key] === 'text_time')
        throw new VidpriorError(
          'E_MODEL_INPUT',
          `${path}: this is an SDXL UNet (addition_embed_type "text_time"): vidprior runs SD 1.x`,
          {
            file: path,
          },
        );
      throw refuse(path, key, j[key], what);
    }
  }
  if (j.in_channels === 9)
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `${path}: an inpainting UNet (9 input channels): vidprior runs SD 1.x img2img models (4 channels)`,
      {
        file: path,
      },
    );
  if (Array.isArray(j.transformer_layers_per_block))
    throw refuse(
      path,
      'transformer_layers_per_block',
      j.transformer_layers_per_block,
      'per-block transformer depths (SDXL)',
    );
  const out: Partial<UNetConfig> = {};
  const copy = [
    'sample_size',
    'in_channels',
    'out_channels',
    'block_out_channels',
    'layers_per_block',
    'down_block_types',
    'up_block_types',
    'cross_attention_dim',
    'norm_num_groups',
    'norm_eps',
    'flip_sin_to_cos',
    'freq_shift',
    'transformer_layers_per_block',
    'use_linear_projection',
  ] as const;
  for (const k of copy) if (j[k] !== undefined && j[k] !== null) (out as Record<string, unknown>)[k] = j[k];
  // diffusers' SD quirk: attention_head_dim is the number of heads; num_attention_heads, when set, wins.
  const heads = j.num_attention_heads ?? j.attention_head_dim;
  if (heads !== undefined && heads !== null) out.attention_head_dim = heads as number | number[];
  return out;
}

export function vaeOverride(j: Record<string, unknown>, path: string): Partial<VaeConfig> {
  for (const [key, def] of [
    ['use_quant_conv', true],
    ['use_post_quant_conv', true],
    ['mid_block_add_attention', true],
    ['act_fn', 'silu'],
  ] as const) {
    if (key in j && j[key] !== null && j[key] !== def) throw refuse(path, key, j[key], 'another VAE layout');
  }
  if (Array.isArray(j.latents_mean) || Array.isArray(j.latents_std))
    throw refuse(path, 'latents_mean', j.latents_mean, 'per-channel latent statistics');
  const out: Partial<VaeConfig> = {};
  for (const k of [
    'sample_size',
    'in_channels',
    'out_channels',
    'latent_channels',
    'block_out_channels',
    'layers_per_block',
    'norm_num_groups',
    'scaling_factor',
  ] as const)
    if (j[k] !== undefined && j[k] !== null) (out as Record<string, unknown>)[k] = j[k];
  return out;
}

export function clipOverride(j: Record<string, unknown>): Partial<ClipTextConfig> {
  const out: Partial<ClipTextConfig> = {};
  for (const k of [
    'vocab_size',
    'hidden_size',
    'intermediate_size',
    'num_hidden_layers',
    'num_attention_heads',
    'max_position_embeddings',
    'hidden_act',
    'layer_norm_eps',
    'bos_token_id',
    'eos_token_id',
    'pad_token_id',
  ] as const)
    if (j[k] !== undefined && j[k] !== null) (out as Record<string, unknown>)[k] = j[k];
  return out;
}

/** The configs of a diffusers folder (those present) as one override. */
export async function diffusersConfigOverride(dir: string): Promise<ConfigOverride> {
  const o: ConfigOverride = { source: dir };
  const read = async (sub: string) => {
    const p = join(dir, sub, 'config.json');
    return existsSync(p) ? { json: await readJsonObject(p), path: p } : null;
  };
  const unet = await read('unet');
  const vae = await read('vae');
  const te = await read('text_encoder');
  if (!unet && !vae && !te) {
    throw new VidpriorError(
      'E_MODEL_MISSING',
      `${dir} has no unet/, vae/ or text_encoder/ config.json: --model-config wants a diffusers model folder`,
      { dir },
    );
  }
  if (unet) o.unet = unetOverride(unet.json, unet.path);
  if (vae) o.vae = vaeOverride(vae.json, vae.path);
  if (te) o.text_encoder = clipOverride(te.json);
  return o;
}
