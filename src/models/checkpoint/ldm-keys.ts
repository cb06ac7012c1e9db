/**
 * The original Stable Diffusion (LDM / CompVis) key layout of single-file checkpoints, mapped onto diffusers
 * parameter names (the names the model builder gives its initializers):
 *
 *   model.diffusion_model.*                      → unet: input_blocks/middle_block/output_blocks become
 *                                                  down_blocks/mid_block/up_blocks (openaimodel.py's flat lists)
 *   first_stage_model.*                          → vae: encoder.down.i / decoder.up.i (decoder levels in reverse
 *                                                  order), mid.attn_1 as 1×1 convs → linear layers
 *   cond_stage_model.transformer[.text_model].*  → text_encoder: transformers' CLIPTextModel, text_model.*
 *
 * The UNet's flat lists need two numbers the keys carry implicitly: resnets per level and the number of
 * levels (`unetLayout`). Keys that belong to none of the three (EMA copies, schedule buffers, the VAE's
 * training loss) are not mapped: the caller ignores them.
 */
import { VidpriorError } from '../../errors.js';

export const LDM_UNET = 'model.diffusion_model.';
export const LDM_VAE = 'first_stage_model.';
export const LDM_CLIP = 'cond_stage_model.transformer.';

export type Part = 'unet' | 'vae' | 'text_encoder';

export interface UnetLayout {
  levels: number;
  layersPerBlock: number;
}

export interface MappedKey {
  part: Part;
  /** The diffusers parameter name. */
  name: string;
  /** The VAE attention's 1×1 conv weights become linear weights: [out, in, 1, 1] → [out, in]. */
  squeeze?: boolean;
}

function ints(s: string): number {
  return Number.parseInt(s, 10);
}

/** openaimodel.py's ResBlock submodule names → diffusers' ResnetBlock2D. */
const UNET_RESNET: [string, string][] = [
  ['in_layers.0.', 'norm1.'],
  ['in_layers.2.', 'conv1.'],
  ['out_layers.0.', 'norm2.'],
  ['out_layers.3.', 'conv2.'],
  ['emb_layers.1.', 'time_emb_proj.'],
  ['skip_connection.', 'conv_shortcut.'],
];

function renamePrefix(rest: string, table: [string, string][]): string | null {
  for (const [from, to] of table) if (rest.startsWith(from)) return to + rest.slice(from.length);
  return null;
}

/**
 * Resnets per level and levels, from the UNet keys: `input_blocks.N.0.op` are the downsamplers (one after each
 * level but the last), input block 0 is conv_in, and each level holds `layers` resnets plus its downsampler.
 */
export function unetLayout(keys: Iterable<string>): UnetLayout {
  const downsamplers: number[] = [];
  let maxInput = -1;
  let outputs = -1;
  for (const k of keys) {
    if (!k.startsWith(LDM_UNET)) continue;
    const m = /^input_blocks\.(\d+)\.(\d+)\.(.*)$/.exec(k.slice(LDM_UNET.length));
    if (m) {
      const i = ints(m[1]!);
      maxInput = Math.max(maxInput, i);
      if (m[2] === '0' && m[3]!.startsWith('op.') && !downsamplers.includes(i)) downsamplers.push(i);
      continue;
    }
    const o = /^output_blocks\.(\d+)\./.exec(k.slice(LDM_UNET.length));
    if (o) outputs = Math.max(outputs, ints(o[1]!));
  }
  if (maxInput < 1)
    throw new VidpriorError(
      'E_MODEL_INPUT',
      'the checkpoint has no UNet input blocks (model.diffusion_model.input_blocks.*)',
    );
  downsamplers.sort((a, b) => a - b);
  const levels = downsamplers.length + 1;
  const layersPerBlock = downsamplers.length ? downsamplers[0]! - 1 : maxInput;
  const expectedInputs = levels * (layersPerBlock + 1) - 1;
  const regular = downsamplers.every((d, i) => d === (i + 1) * (layersPerBlock + 1));
  if (layersPerBlock < 1 || !regular || maxInput !== expectedInputs || outputs !== levels * (layersPerBlock + 1) - 1) {
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `the UNet's blocks do not form an SD UNet: ${maxInput + 1} input blocks with downsamplers at ` +
        `[${downsamplers.join(', ')}] and ${outputs + 1} output blocks`,
      { inputBlocks: maxInput + 1, outputBlocks: outputs + 1 },
    );
  }
  return { levels, layersPerBlock };
}

/** A UNet key without its `model.diffusion_model.` prefix → the diffusers name, or null. */
export function unetName(key: string, layout: UnetLayout): string | null {
  const per = layout.layersPerBlock + 1;
  const fixed: [string, string][] = [
    ['time_embed.0.', 'time_embedding.linear_1.'],
    ['time_embed.2.', 'time_embedding.linear_2.'],
    ['input_blocks.0.0.', 'conv_in.'],
    ['out.0.', 'conv_norm_out.'],
    ['out.2.', 'conv_out.'],
  ];
  const f = renamePrefix(key, fixed);
  if (f) return f;
  let m = /^input_blocks\.(\d+)\.(\d+)\.(.*)$/.exec(key);
  if (m) {
    const i = ints(m[1]!) - 1;
    const level = Math.floor(i / per);
    const j = i % per;
    const rest = m[3]!;
    if (j === layout.layersPerBlock)
      return rest.startsWith('op.') ? `down_blocks.${level}.downsamplers.0.conv.${rest.slice(3)}` : null;
    if (m[2] === '0') {
      const r = renamePrefix(rest, UNET_RESNET);
      return r && `down_blocks.${level}.resnets.${j}.${r}`;
    }
    return m[2] === '1' ? `down_blocks.${level}.attentions.${j}.${rest}` : null;
  }
  m = /^middle_block\.(\d)\.(.*)$/.exec(key);
  if (m) {
    if (m[1] === '1') return `mid_block.attentions.0.${m[2]}`;
    const r = renamePrefix(m[2]!, UNET_RESNET);
    return r && `mid_block.resnets.${m[1] === '0' ? 0 : 1}.${r}`;
  }
  m = /^output_blocks\.(\d+)\.(\d)\.(.*)$/.exec(key);
  if (m) {
    const i = ints(m[1]!);
    const level = Math.floor(i / per);
    const j = i % per;
    const rest = m[3]!;
    if (m[2] === '0') {
      const r = renamePrefix(rest, UNET_RESNET);
      return r && `up_blocks.${level}.resnets.${j}.${r}`;
    }
    // The upsampler follows the resnet (levels without attention) or the attention (levels with it).
    if (rest.startsWith('conv.')) return `up_blocks.${level}.upsamplers.0.conv.${rest.slice(5)}`;
    return m[2] === '1' ? `up_blocks.${level}.attentions.${j}.${rest}` : null;
  }
  return null;
}

const VAE_ATTENTION: [string, string][] = [
  ['norm.', 'group_norm.'],
  ['q.', 'to_q.'],
  ['k.', 'to_k.'],
  ['v.', 'to_v.'],
  ['proj_out.', 'to_out.0.'],
];

function vaeResnet(rest: string): string {
  return rest.startsWith('nin_shortcut.') ? `conv_shortcut.${rest.slice('nin_shortcut.'.length)}` : rest;
}

/** Levels of the VAE: the encoder's `down.N` blocks. */
export function vaeLevels(keys: Iterable<string>): number {
  let max = -1;
  for (const k of keys) {
    const m = /^first_stage_model\.encoder\.down\.(\d+)\./.exec(k);
    if (m) max = Math.max(max, ints(m[1]!));
  }
  if (max < 0)
    throw new VidpriorError('E_MODEL_INPUT', 'the checkpoint has no VAE encoder (first_stage_model.encoder.down.*)');
  return max + 1;
}

/** A VAE key without its `first_stage_model.` prefix → the diffusers name (and whether to squeeze), or null. */
export function vaeName(key: string, levels: number): { name: string; squeeze?: boolean } | null {
  if (/^(quant_conv|post_quant_conv)\./.test(key)) return { name: key };
  const m = /^(encoder|decoder)\.(.*)$/.exec(key);
  if (!m) return null; // e.g. loss.* (the discriminator of VAE training)
  const side = m[1]!;
  const rest = m[2]!;
  if (/^conv_(in|out)\./.test(rest)) return { name: `${side}.${rest}` };
  if (rest.startsWith('norm_out.')) return { name: `${side}.conv_norm_out.${rest.slice(9)}` };
  let b = /^mid\.block_([12])\.(.*)$/.exec(rest);
  if (b) return { name: `${side}.mid_block.resnets.${ints(b[1]!) - 1}.${vaeResnet(b[2]!)}` };
  b = /^mid\.attn_1\.(.*)$/.exec(rest);
  if (b) {
    const r = renamePrefix(b[1]!, VAE_ATTENTION);
    if (!r) return null;
    return { name: `${side}.mid_block.attentions.0.${r}`, squeeze: /^(to_q|to_k|to_v|to_out\.0)\.weight$/.test(r) };
  }
  b = /^(down|up)\.(\d+)\.(block\.(\d+)|downsample|upsample)\.(.*)$/.exec(rest);
  if (!b) return null;
  // diffusers numbers the decoder's up blocks from the bottom (LDM's up.N runs from the top).
  const level = b[1] === 'down' ? ints(b[2]!) : levels - 1 - ints(b[2]!);
  const block = `${side}.${b[1]}_blocks.${level}`;
  if (b[4] !== undefined) return { name: `${block}.resnets.${b[4]}.${vaeResnet(b[5]!)}` };
  return { name: `${block}.${b[3]}rs.0.${b[5]}` };
}

/** A CLIP key without `cond_stage_model.transformer.` → transformers' CLIPTextModel name, or null. */
export function clipName(key: string): string | null {
  if (key.startsWith('text_model.')) return key;
  // Checkpoints saved with transformers < 4.18 have no text_model level.
  if (/^(embeddings|encoder|final_layer_norm)\./.test(key)) return `text_model.${key}`;
  return null;
}

/** Maps one LDM key; null for keys of no part (EMA, schedule buffers, loss) or not of a known module. */
export function mapLdmKey(key: string, unet: UnetLayout, vaeLevelCount: number): MappedKey | null {
  if (key.startsWith(LDM_UNET)) {
    const name = unetName(key.slice(LDM_UNET.length), unet);
    return name ? { part: 'unet', name } : null;
  }
  if (key.startsWith(LDM_VAE)) {
    const v = vaeName(key.slice(LDM_VAE.length), vaeLevelCount);
    return v ? { part: 'vae', name: v.name, ...(v.squeeze ? { squeeze: true } : {}) } : null;
  }
  if (key.startsWith(LDM_CLIP)) {
    const name = clipName(key.slice(LDM_CLIP.length));
    return name ? { part: 'text_encoder', name } : null;
  }
  return null;
}
