/**
 * The diffusers building blocks shared by the UNet and the VAE: ResnetBlock2D, Transformer2DModel with
 * BasicTransformerBlock (self-attention, cross-attention, GEGLU feed-forward), the VAE's single-head spatial
 * attention, Downsample2D and Upsample2D. Each mirrors its diffusers module: same submodule names (so the
 * same parameter names), same order of operations.
 */
import type { Net } from './net.js';

/** Gain of the last layer of each residual branch: keeps the residual stream's growth modest in deep nets. */
export const RESIDUAL_GAIN = 0.5;

export interface ResnetOptions {
  groups: number;
  eps: number;
  /** SiLU(time embedding) and its width, for UNet resnets (absent in the VAE). */
  temb?: { value: () => string; channels: number };
}

/** diffusers ResnetBlock2D (output_scale_factor 1, conv_shortcut when the width changes). */
export function resnetBlock(net: Net, name: string, x: string, cin: number, cout: number, o: ResnetOptions): string {
  return net.module(name, () => {
    let h = net.groupNorm('norm1', x, cin, o.groups, o.eps);
    h = net.silu(h, 'nonlinearity');
    h = net.conv('conv1', h, cin, cout, 3);
    if (o.temb) {
      const t = net.gemm('time_emb_proj', o.temb.value(), o.temb.channels, cout);
      h = net.op('Add', [h, net.op('Unsqueeze', [t, net.ints([2, 3])])]);
    }
    h = net.groupNorm('norm2', h, cout, o.groups, o.eps);
    h = net.silu(h, 'nonlinearity');
    h = net.conv('conv2', h, cout, cout, 3, { gain: RESIDUAL_GAIN });
    const shortcut = cin !== cout ? net.conv('conv_shortcut', x, cin, cout, 1) : x;
    return net.op('Add', [shortcut, h]);
  });
}

export interface TransformerOptions {
  heads: number;
  groups: number;
  /** encoder_hidden_states [B, S, crossDim]. */
  context: string;
  crossDim: number;
  layers: number;
  linearProjection: boolean;
}

/** diffusers Attention (attn1/attn2 of BasicTransformerBlock): bias-free q/k/v, to_out.0 with bias. */
function crossAttention(
  net: Net,
  name: string,
  x: string,
  channels: number,
  heads: number,
  context?: { value: string; dim: number },
): string {
  return net.module(name, () => {
    const kv = context?.value ?? x;
    const kvDim = context?.dim ?? channels;
    const q = net.linear('to_q', x, channels, channels, { bias: false });
    const k = net.linear('to_k', kv, kvDim, channels, { bias: false });
    const v = net.linear('to_v', kv, kvDim, channels, { bias: false });
    const o = net.attend(q, k, v, heads, channels);
    return net.linear('to_out.0', o, channels, channels, { gain: RESIDUAL_GAIN });
  });
}

/** BasicTransformerBlock: x += attn1(norm1 x); x += attn2(norm2 x, context); x += ff(norm3 x). */
function basicTransformerBlock(net: Net, name: string, x: string, channels: number, o: TransformerOptions): string {
  return net.module(name, () => {
    let h = net.op('Add', [
      crossAttention(net, 'attn1', net.layerNorm('norm1', x, channels, 1e-5), channels, o.heads),
      x,
    ]);
    h = net.op('Add', [
      crossAttention(net, 'attn2', net.layerNorm('norm2', h, channels, 1e-5), channels, o.heads, {
        value: o.context,
        dim: o.crossDim,
      }),
      h,
    ]);
    const inner = 4 * channels;
    const n = net.layerNorm('norm3', h, channels, 1e-5);
    const ff = net.module('ff', () => {
      // GEGLU: one projection to 2·inner, split into value and gate, value · gelu(gate).
      const gated = net.module('net.0', () => {
        const proj = net.linear('proj', n, channels, 2 * inner);
        const value = net.op('Slice', [proj, net.ints([0]), net.ints([inner]), net.ints([-1])]);
        const gate = net.op('Slice', [proj, net.ints([inner]), net.ints([2 * inner]), net.ints([-1])]);
        return net.op('Mul', [value, net.gelu(gate)]);
      });
      return net.linear('net.2', gated, inner, channels, { gain: RESIDUAL_GAIN });
    });
    return net.op('Add', [ff, h]);
  });
}

/** Transformer2DModel for SD 1.x/2.x: GroupNorm, proj_in (1×1 conv or linear), blocks, proj_out, residual. */
export function transformer2d(net: Net, name: string, x: string, channels: number, o: TransformerOptions): string {
  return net.module(name, () => {
    let h = net.groupNorm('norm', x, channels, o.groups, 1e-6);
    if (!o.linearProjection) h = net.conv('proj_in', h, channels, channels, 1);
    const nhwc = net.op('Transpose', [h], { perm: [0, 2, 3, 1] });
    let tokens = net.op('Reshape', [nhwc, net.ints([0, -1, channels])], { allowzero: 0 });
    if (o.linearProjection) tokens = net.linear('proj_in', tokens, channels, channels);
    for (let j = 0; j < o.layers; j++)
      tokens = basicTransformerBlock(net, `transformer_blocks.${j}`, tokens, channels, o);
    if (o.linearProjection) tokens = net.linear('proj_out', tokens, channels, channels, { gain: RESIDUAL_GAIN });
    let out = net.op('Transpose', [net.op('Reshape', [tokens, net.op('Shape', [nhwc])], { allowzero: 0 })], {
      perm: [0, 3, 1, 2],
    });
    if (!o.linearProjection) out = net.conv('proj_out', out, channels, channels, 1, { gain: RESIDUAL_GAIN });
    return net.op('Add', [out, x]);
  });
}

/** The VAE mid-block attention: one head over all pixels, q/k/v with biases, residual. */
export function vaeAttention(net: Net, name: string, x: string, channels: number, groups: number): string {
  return net.module(name, () => {
    const flat = net.op('Reshape', [x, net.ints([0, channels, -1])], { allowzero: 0 });
    const normed = net.groupNorm('group_norm', flat, channels, groups, 1e-6, 3);
    const tokens = net.op('Transpose', [normed], { perm: [0, 2, 1] });
    const q = net.linear('to_q', tokens, channels, channels);
    const k = net.linear('to_k', tokens, channels, channels);
    const v = net.linear('to_v', tokens, channels, channels);
    const o = net.linear('to_out.0', net.attend(q, k, v, 1, channels), channels, channels, { gain: RESIDUAL_GAIN });
    const back = net.op('Reshape', [net.op('Transpose', [o], { perm: [0, 2, 1] }), net.op('Shape', [x])], {
      allowzero: 0,
    });
    return net.op('Add', [back, x]);
  });
}

/** Downsample2D with a conv: stride 2, padding 1 (UNet) or an explicit (0,1,0,1) zero pad and none (VAE). */
export function downsample(net: Net, x: string, channels: number, padding: 0 | 1): string {
  return net.module('downsamplers.0', () => {
    if (padding === 1) return net.conv('conv', x, channels, channels, 3, { stride: 2, pad: 1 });
    const padded = net.op('Pad', [x, net.ints([0, 0, 0, 0, 0, 0, 1, 1]), net.scalar(0)], { mode: 'constant' });
    return net.conv('conv', padded, channels, channels, 3, { stride: 2, pad: 0 });
  });
}

/** Upsample2D with a conv: nearest ×2 (as F.interpolate exports) then a 3×3 conv. */
export function upsample(net: Net, x: string, channels: number): string {
  return net.module('upsamplers.0', () => {
    const scales = net.b.constant([1, 1, 2, 2], [4], 'float32', 'scales');
    const up = net.op('Resize', [x, '', scales], {
      coordinate_transformation_mode: 'asymmetric',
      cubic_coeff_a: -0.75,
      mode: 'nearest',
      nearest_mode: 'floor',
    });
    return net.conv('conv', up, channels, channels, 3);
  });
}
