/**
 * Named model configurations for the builder.
 *
 * - `tiny`: the embedded default. Real SD 1.x topology (VAE factor 8, 4 latent channels, cross-attention UNet)
 *   at toy widths, so that a 512×512 frame gives 64×64 latents and a UNet step stays fast on a 2-core CPU.
 *   Cross-attention only at the half-resolution level keeps the attention score tensors small.
 * - `tiny-sd-torch`: the configuration of the shared fixture exported from diffusers (../shared/fixtures/
 *   tiny-sd-torch, VAE factor 2): a model built from it must have the fixture's inputs, outputs and
 *   parameter counts.
 * - `sd15`: Stable Diffusion 1.5 (UNet 859.5M parameters, CLIP ViT-L/14 text encoder, VAE 83.7M), for GPU
 *   benchmarks. Build it with external data (> 2 GB).
 */
import { VidpriorError } from '../../errors.js';
import { type SdConfig, validateConfig } from './config.js';

const TINY: SdConfig = {
  text_encoder: {
    vocab_size: 1024,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    max_position_embeddings: 77,
    hidden_act: 'quick_gelu',
    layer_norm_eps: 1e-5,
    bos_token_id: 1022,
    eos_token_id: 1023,
    pad_token_id: 1023,
  },
  unet: {
    sample_size: 64,
    in_channels: 4,
    out_channels: 4,
    block_out_channels: [32, 64],
    layers_per_block: 1,
    down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D'],
    up_block_types: ['CrossAttnUpBlock2D', 'UpBlock2D'],
    mid_block_type: 'UNetMidBlock2DCrossAttn',
    cross_attention_dim: 32,
    attention_head_dim: 4,
    norm_num_groups: 32,
    norm_eps: 1e-5,
    flip_sin_to_cos: true,
    freq_shift: 0,
    act_fn: 'silu',
    transformer_layers_per_block: 1,
    use_linear_projection: false,
  },
  vae: {
    sample_size: 512,
    in_channels: 3,
    out_channels: 3,
    latent_channels: 4,
    block_out_channels: [8, 16, 32, 32],
    layers_per_block: 1,
    norm_num_groups: 8,
    scaling_factor: 0.18215,
    act_fn: 'silu',
    down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
    up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
  },
};

const TINY_SD_TORCH: SdConfig = {
  text_encoder: {
    vocab_size: 49408,
    hidden_size: 32,
    intermediate_size: 37,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    max_position_embeddings: 77,
    hidden_act: 'quick_gelu',
    layer_norm_eps: 1e-5,
    bos_token_id: 49406,
    eos_token_id: 49407,
    pad_token_id: 1,
  },
  unet: {
    sample_size: 32,
    in_channels: 4,
    out_channels: 4,
    block_out_channels: [32, 64],
    layers_per_block: 2,
    down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D'],
    up_block_types: ['CrossAttnUpBlock2D', 'UpBlock2D'],
    mid_block_type: 'UNetMidBlock2DCrossAttn',
    cross_attention_dim: 32,
    attention_head_dim: 8,
    norm_num_groups: 32,
    norm_eps: 1e-5,
    flip_sin_to_cos: true,
    freq_shift: 0,
    act_fn: 'silu',
    transformer_layers_per_block: 1,
    use_linear_projection: false,
  },
  vae: {
    sample_size: 64,
    in_channels: 3,
    out_channels: 3,
    latent_channels: 4,
    block_out_channels: [32, 64],
    layers_per_block: 1,
    norm_num_groups: 32,
    scaling_factor: 0.18215,
    act_fn: 'silu',
    down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
    up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  },
};

const SD15: SdConfig = {
  text_encoder: {
    vocab_size: 49408,
    hidden_size: 768,
    intermediate_size: 3072,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    max_position_embeddings: 77,
    hidden_act: 'quick_gelu',
    layer_norm_eps: 1e-5,
    // openai/clip-vit-large-patch14's config.json says 0/2/1; with eos_token_id 2 transformers pools at
    // argmax(input_ids), which is the first <|endoftext|> (the largest id).
    bos_token_id: 0,
    eos_token_id: 2,
    pad_token_id: 1,
  },
  unet: {
    sample_size: 64,
    in_channels: 4,
    out_channels: 4,
    block_out_channels: [320, 640, 1280, 1280],
    layers_per_block: 2,
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    mid_block_type: 'UNetMidBlock2DCrossAttn',
    cross_attention_dim: 768,
    attention_head_dim: 8,
    norm_num_groups: 32,
    norm_eps: 1e-5,
    flip_sin_to_cos: true,
    freq_shift: 0,
    act_fn: 'silu',
    transformer_layers_per_block: 1,
    use_linear_projection: false,
  },
  vae: {
    sample_size: 512,
    in_channels: 3,
    out_channels: 3,
    latent_channels: 4,
    block_out_channels: [128, 256, 512, 512],
    layers_per_block: 2,
    norm_num_groups: 32,
    scaling_factor: 0.18215,
    act_fn: 'silu',
    down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
    up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
  },
};

export const PRESETS: Readonly<Record<string, SdConfig>> = { tiny: TINY, 'tiny-sd-torch': TINY_SD_TORCH, sd15: SD15 };

export type PresetName = 'tiny' | 'tiny-sd-torch' | 'sd15';

/** A deep copy of a preset (callers may change it). */
export function preset(name: string): SdConfig {
  const p = PRESETS[name];
  if (!p)
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `unknown model preset "${name}" (known: ${Object.keys(PRESETS).join(', ')})`,
      { preset: name },
    );
  return validateConfig(structuredClone(p));
}
