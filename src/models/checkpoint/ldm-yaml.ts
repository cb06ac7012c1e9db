/**
 * The original implementation's model `.yaml` (v1-inference.yaml and its fine-tunes' copies), which A1111
 * users keep beside a checkpoint under the same name. Only the fields vidprior needs are read: UNet heads
 * (`num_heads`, or `num_head_channels` per level), the latent `scale_factor`, `parameterization: v`, the noise
 * schedule, and the targets that say what the model is (SD 2.x's OpenCLIP, inpainting, SDXL's `sgm`).
 */
import { readFile } from 'node:fs/promises';
import { load } from 'js-yaml';
import { VidpriorError } from '../../errors.js';
import type { ConfigOverride } from './overrides.js';

export interface LdmYaml {
  override: ConfigOverride;
  /** scheduler_config.json keys the yaml sets (betas, prediction type). */
  scheduler: Record<string, unknown>;
}

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {};
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function nums(v: unknown): number[] | undefined {
  return Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as number[]) : undefined;
}

export async function readLdmYaml(path: string): Promise<LdmYaml> {
  let doc: unknown;
  try {
    // The default schema builds plain data only (no tags that construct objects).
    doc = load(await readFile(path, 'utf8'));
  } catch (err) {
    throw new VidpriorError('E_MODEL_INPUT', `${path} is not a readable YAML file: ${(err as Error).message}`, {
      file: path,
    });
  }
  const model = obj(obj(doc).model);
  const target = String(model.target ?? '');
  const p = obj(model.params);
  const refuse = (what: string) =>
    new VidpriorError('E_MODEL_INPUT', `${path} describes ${what}: vidprior runs SD 1.x models`, { file: path });
  if (target.startsWith('sgm.')) throw refuse('an SDXL-family model (sgm.*)');
  if (/Inpaint/i.test(target)) throw refuse('an inpainting model');
  const cond = String(obj(p.cond_stage_config).target ?? '');
  if (/OpenCLIP/.test(cond)) throw refuse('an SD 2.x model (OpenCLIP text encoder)');

  const override: ConfigOverride = { source: path, unet: {}, vae: {} };
  const u = obj(obj(p.unet_config).params);
  const modelChannels = num(u.model_channels);
  const mult = nums(u.channel_mult);
  if (modelChannels && mult) override.unet!.block_out_channels = mult.map((m) => m * modelChannels);
  if (num(u.num_res_blocks)) override.unet!.layers_per_block = num(u.num_res_blocks);
  if (num(u.context_dim)) override.unet!.cross_attention_dim = num(u.context_dim);
  if (num(u.in_channels)) override.unet!.in_channels = num(u.in_channels);
  if (num(u.out_channels)) override.unet!.out_channels = num(u.out_channels);
  if (num(u.transformer_depth)) override.unet!.transformer_layers_per_block = num(u.transformer_depth);
  if (typeof u.use_linear_in_transformer === 'boolean')
    override.unet!.use_linear_projection = u.use_linear_in_transformer;
  const heads = num(u.num_heads);
  const headWidth = num(u.num_head_channels);
  if (heads && heads > 0) override.unet!.attention_head_dim = heads;
  else if (headWidth && headWidth > 0 && modelChannels && mult)
    override.unet!.attention_head_dim = mult.map((m) => (m * modelChannels) / headWidth);
  // openaimodel.py's and the autoencoder's normalization() are GroupNorm(32, …), whatever the yaml.
  override.unet!.norm_num_groups = 32;
  override.vae!.norm_num_groups = 32;
  if (num(p.scale_factor)) override.vae!.scaling_factor = num(p.scale_factor);
  const dd = obj(obj(obj(p.first_stage_config).params).ddconfig);
  const ch = num(dd.ch);
  const chMult = nums(dd.ch_mult);
  if (ch && chMult) override.vae!.block_out_channels = chMult.map((m) => m * ch);
  if (num(dd.num_res_blocks)) override.vae!.layers_per_block = num(dd.num_res_blocks);
  if (num(dd.z_channels)) override.vae!.latent_channels = num(dd.z_channels);

  const scheduler: Record<string, unknown> = {};
  if (num(p.linear_start) !== undefined) scheduler.beta_start = num(p.linear_start);
  if (num(p.linear_end) !== undefined) scheduler.beta_end = num(p.linear_end);
  if (num(p.timesteps) !== undefined) scheduler.num_train_timesteps = num(p.timesteps);
  const param = p.parameterization;
  if (param === 'v') scheduler.prediction_type = 'v_prediction';
  else if (param === 'x0') scheduler.prediction_type = 'sample';
  else if (param !== undefined && param !== 'eps')
    throw new VidpriorError('E_MODEL_INPUT', `${path}: parameterization ${JSON.stringify(param)} is not eps, v or x0`, {
      file: path,
    });
  return { override, scheduler };
}
