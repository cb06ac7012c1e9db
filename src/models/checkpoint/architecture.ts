/**
 * A model's architecture read from its tensors' names and shapes (diffusers names, PyTorch layouts):
 * channels per level, resnets per level, which levels attend, transformer depth, context width, projection
 * kind, VAE levels and latent channels, CLIP width, depth and vocabulary. What shapes cannot tell comes from
 * SD 1.x conventions (GroupNorm 32 groups, 8 UNet heads, CLIP heads of width 64) until a config says
 * otherwise (overrides.ts). Every fact carries its source, for `vidprior models inspect`.
 */
import { VidpriorError } from '../../errors.js';
import type { ClipTextConfig, DownBlockType, SdConfig, UNetConfig, UpBlockType, VaeConfig } from '../builder/config.js';
import type { Part } from './ldm-keys.js';

/** diffusers name → dims (PyTorch layout), per part. */
export type PartShapes = Record<Part, Map<string, number[]>>;

/** A config with where each fact came from: 'unet.norm_num_groups' → 'SD 1.x convention' etc. */
export interface SourcedConfig {
  config: SdConfig;
  sources: Record<string, string>;
}

export const FROM_SHAPES = 'tensor shapes';
export const SD1_CONVENTION = 'SD 1.x convention';

/** The facts tensor shapes decide: a config that disagrees with them is an error, not an override. */
export const SHAPE_FACTS = {
  unet: [
    'in_channels',
    'out_channels',
    'block_out_channels',
    'layers_per_block',
    'down_block_types',
    'up_block_types',
    'cross_attention_dim',
    'transformer_layers_per_block',
    'use_linear_projection',
  ],
  vae: ['in_channels', 'out_channels', 'latent_channels', 'block_out_channels', 'layers_per_block'],
  text_encoder: ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'max_position_embeddings'],
} as const;

function missing(part: Part, name: string): VidpriorError {
  return new VidpriorError('E_MODEL_INPUT', `the ${part.replace('_', ' ')} has no tensor ${name}`, {
    part,
    tensor: name,
  });
}

function dimsOf(shapes: Map<string, number[]>, part: Part, name: string): number[] {
  const d = shapes.get(name);
  if (!d) throw missing(part, name);
  return d;
}

/** The indices N of `<prefix>N.` among the names (sorted). */
function indices(shapes: Map<string, number[]>, prefix: string): number[] {
  const out = new Set<number>();
  for (const k of shapes.keys()) {
    if (!k.startsWith(prefix)) continue;
    const n = Number.parseInt(k.slice(prefix.length), 10);
    if (Number.isInteger(n)) out.add(n);
  }
  return [...out].sort((a, b) => a - b);
}

function has(shapes: Map<string, number[]>, prefix: string): boolean {
  for (const k of shapes.keys()) if (k.startsWith(prefix)) return true;
  return false;
}

function inferUnet(s: Map<string, number[]>, sources: Record<string, string>): UNetConfig {
  const convIn = dimsOf(s, 'unet', 'conv_in.weight');
  const convOut = dimsOf(s, 'unet', 'conv_out.weight');
  const levels = indices(s, 'down_blocks.');
  if (levels.length === 0) throw missing('unet', 'down_blocks.0.*');
  const block_out_channels = levels.map((i) => dimsOf(s, 'unet', `down_blocks.${i}.resnets.0.conv1.weight`)[0]!);
  const layers_per_block = indices(s, 'down_blocks.0.resnets.').length;
  const down_block_types: DownBlockType[] = levels.map((i) =>
    has(s, `down_blocks.${i}.attentions.`) ? 'CrossAttnDownBlock2D' : 'DownBlock2D',
  );
  const up_block_types: UpBlockType[] = levels.map((i) =>
    has(s, `up_blocks.${i}.attentions.`) ? 'CrossAttnUpBlock2D' : 'UpBlock2D',
  );
  if (!has(s, 'mid_block.attentions.0.'))
    throw new VidpriorError('E_MODEL_INPUT', 'the UNet has no mid-block attention: not an SD 1.x/2.x UNet');
  const attnPrefix = 'mid_block.attentions.0.';
  const toK = dimsOf(s, 'unet', `${attnPrefix}transformer_blocks.0.attn2.to_k.weight`);
  const depth = indices(s, `${attnPrefix}transformer_blocks.`).length;
  const projIn = dimsOf(s, 'unet', `${attnPrefix}proj_in.weight`);
  const timeIn = dimsOf(s, 'unet', 'time_embedding.linear_1.weight');
  if (timeIn[0] !== 4 * block_out_channels[0]! || timeIn[1] !== block_out_channels[0]) {
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `the UNet's time embedding is [${timeIn}], expected [${4 * block_out_channels[0]!}, ${block_out_channels[0]}] (SD's 4× the first level's channels)`,
      { tensor: 'time_embedding.linear_1.weight' },
    );
  }
  for (const k of [
    'in_channels',
    'out_channels',
    'block_out_channels',
    'layers_per_block',
    'down_block_types',
    'up_block_types',
    'cross_attention_dim',
    'transformer_layers_per_block',
    'use_linear_projection',
  ])
    sources[`unet.${k}`] = FROM_SHAPES;
  for (const k of ['attention_head_dim', 'norm_num_groups', 'norm_eps', 'flip_sin_to_cos', 'freq_shift', 'sample_size'])
    sources[`unet.${k}`] = SD1_CONVENTION;
  return {
    sample_size: 64,
    in_channels: convIn[1]!,
    out_channels: convOut[0]!,
    block_out_channels,
    layers_per_block,
    down_block_types,
    up_block_types,
    mid_block_type: 'UNetMidBlock2DCrossAttn',
    cross_attention_dim: toK[1]!,
    attention_head_dim: 8,
    norm_num_groups: 32,
    norm_eps: 1e-5,
    flip_sin_to_cos: true,
    freq_shift: 0,
    act_fn: 'silu',
    transformer_layers_per_block: depth,
    use_linear_projection: projIn.length === 2,
  };
}

function inferVae(s: Map<string, number[]>, sources: Record<string, string>): VaeConfig {
  const levels = indices(s, 'encoder.down_blocks.');
  if (levels.length === 0) throw missing('vae', 'encoder.down_blocks.0.*');
  const block_out_channels = levels.map((i) => dimsOf(s, 'vae', `encoder.down_blocks.${i}.resnets.0.conv1.weight`)[0]!);
  const convIn = dimsOf(s, 'vae', 'encoder.conv_in.weight');
  const convOut = dimsOf(s, 'vae', 'decoder.conv_out.weight');
  const latent = dimsOf(s, 'vae', 'decoder.conv_in.weight')[1]!;
  const moments = dimsOf(s, 'vae', 'encoder.conv_out.weight')[0]!;
  if (moments !== 2 * latent) {
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `the VAE encoder makes ${moments} channels for ${latent} latent channels (expected mean and log-variance, ${2 * latent})`,
      { tensor: 'encoder.conv_out.weight' },
    );
  }
  for (const k of ['in_channels', 'out_channels', 'latent_channels', 'block_out_channels', 'layers_per_block'])
    sources[`vae.${k}`] = FROM_SHAPES;
  for (const k of ['norm_num_groups', 'scaling_factor', 'sample_size']) sources[`vae.${k}`] = SD1_CONVENTION;
  return {
    sample_size: 512,
    in_channels: convIn[1]!,
    out_channels: convOut[0]!,
    latent_channels: latent,
    block_out_channels,
    layers_per_block: indices(s, 'encoder.down_blocks.0.resnets.').length,
    norm_num_groups: 32,
    scaling_factor: 0.18215,
    act_fn: 'silu',
    down_block_types: levels.map(() => 'DownEncoderBlock2D'),
    up_block_types: levels.map(() => 'UpDecoderBlock2D'),
  };
}

function inferClip(s: Map<string, number[]>, sources: Record<string, string>): ClipTextConfig {
  const tokens = dimsOf(s, 'text_encoder', 'text_model.embeddings.token_embedding.weight');
  const positions = dimsOf(s, 'text_encoder', 'text_model.embeddings.position_embedding.weight');
  const layers = indices(s, 'text_model.encoder.layers.');
  if (layers.length === 0) throw missing('text_encoder', 'text_model.encoder.layers.0.*');
  const fc1 = dimsOf(s, 'text_encoder', 'text_model.encoder.layers.0.mlp.fc1.weight');
  const hidden = tokens[1]!;
  for (const k of ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'max_position_embeddings'])
    sources[`text_encoder.${k}`] = FROM_SHAPES;
  for (const k of [
    'num_attention_heads',
    'hidden_act',
    'layer_norm_eps',
    'bos_token_id',
    'eos_token_id',
    'pad_token_id',
  ])
    sources[`text_encoder.${k}`] = SD1_CONVENTION;
  return {
    vocab_size: tokens[0]!,
    hidden_size: hidden,
    intermediate_size: fc1[0]!,
    num_hidden_layers: layers.length,
    // CLIP's heads are 64 wide (ViT-L/14: 768 / 64 = 12); narrower test models need a config.
    num_attention_heads: Math.max(1, Math.floor(hidden / 64)),
    max_position_embeddings: positions[0]!,
    hidden_act: 'quick_gelu',
    layer_norm_eps: 1e-5,
    // openai/clip-vit-large-patch14's legacy ids: with eos_token_id 2 the pooled output is at the largest id.
    bos_token_id: 0,
    eos_token_id: 2,
    pad_token_id: 1,
  };
}

/** The architecture the tensors describe, with SD 1.x conventions for what they cannot tell. */
export function inferConfig(shapes: PartShapes): SourcedConfig {
  const sources: Record<string, string> = {};
  const config: SdConfig = {
    text_encoder: inferClip(shapes.text_encoder, sources),
    unet: inferUnet(shapes.unet, sources),
    vae: inferVae(shapes.vae, sources),
  };
  return { config, sources };
}

/** A one-line summary of an architecture (for notes and `models inspect`). */
export function describeConfig(c: SdConfig): string {
  const u = c.unet;
  const t = c.text_encoder;
  const attn = u.down_block_types.map((d) => (d === 'CrossAttnDownBlock2D' ? 'A' : '-')).join('');
  return (
    `UNet [${u.block_out_channels}]×${u.layers_per_block} (attention ${attn}, depth ${u.transformer_layers_per_block}, ` +
    `context ${u.cross_attention_dim}, ${u.use_linear_projection ? 'linear' : 'conv'} projection) · ` +
    `VAE [${c.vae.block_out_channels}]×${c.vae.layers_per_block}, ${c.vae.latent_channels} latent channels · ` +
    `CLIP ${t.hidden_size} wide, ${t.num_hidden_layers} layers, vocabulary ${t.vocab_size}`
  );
}
