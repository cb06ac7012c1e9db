/**
 * UNet2DConditionModel (SD 1.x/2.x layout) as an ONNX graph, inputs and outputs as diffusers' ONNX export:
 *   sample [batch, C, height, width], timestep int64 [steps] (one value, broadcast to the batch, or one per
 *   sample), encoder_hidden_states [batch, sequence, cross_attention_dim] → out_sample [batch, C, height, width].
 */
import { type SdConfig, type UNetConfig, headsOf } from './config.js';
import { Net, type NetOptions } from './net.js';
import { downsample, resnetBlock, transformer2d, upsample } from './blocks.js';
import type { BuiltGraph } from './text-encoder.js';

/** diffusers Timesteps: sinusoidal embedding of width `dim` (float32 [N, dim]). */
function timestepEmbedding(net: Net, t: string, dim: number, flip: boolean, shift: number): string {
  return net.module('time_proj', () => {
    const half = Math.floor(dim / 2);
    const freqs = Float32Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / (half - shift)));
    const tf = net.op('Cast', [net.op('Unsqueeze', [t, net.ints([1])])], { to: 1 });
    const args = net.op('Mul', [tf, net.b.constant(freqs, [1, half], 'float32', 'freqs')]);
    const sin = net.op('Sin', [args]);
    const cos = net.op('Cos', [args]);
    const emb = net.op('Concat', flip ? [cos, sin] : [sin, cos], { axis: -1 });
    if (dim % 2 === 0) return emb;
    return net.op('Pad', [emb, net.ints([0, 0, 0, 1]), net.b.constant([0], [], 'float32', 'zero')], {
      mode: 'constant',
    });
  });
}

export function buildUNet(config: SdConfig, opts: NetOptions): BuiltGraph {
  const cfg: UNetConfig = config.unet;
  const net = new Net('unet', opts);
  const ft = net.ftype;
  const ch = cfg.block_out_channels;
  const levels = ch.length;
  const groups = cfg.norm_num_groups;
  const eps = cfg.norm_eps;
  const sample = net.input('sample', ft, ['batch', cfg.in_channels, 'height', 'width']);
  const timestep = net.input('timestep', 'int64', ['steps']);
  const context = net.input('encoder_hidden_states', ft, ['batch', 'sequence', cfg.cross_attention_dim]);

  // 1. Time embedding: broadcast the timestep to the batch, sinusoids, then linear-SiLU-linear.
  const batch = net.op('Slice', [net.op('Shape', [sample]), net.ints([0]), net.ints([1])]);
  const t = net.op('Expand', [timestep, batch]);
  let tproj = timestepEmbedding(net, t, ch[0]!, cfg.flip_sin_to_cos, cfg.freq_shift);
  if (ft === 'float16') tproj = net.op('Cast', [tproj], { to: 10 });
  const tdim = 4 * ch[0]!;
  const temb = net.module('time_embedding', () => {
    const h = net.gemm('linear_1', tproj, ch[0]!, tdim);
    return net.gemm('linear_2', net.silu(h, 'act'), tdim, tdim);
  });
  // Every resnet takes SiLU(temb); exporters compute it once and share it.
  let tembAct: string | null = null;
  const tembValue = (): string => (tembAct ??= net.silu(temb, 'nonlinearity'));
  const res = { groups, eps, temb: { value: tembValue, channels: tdim } };
  const attn = (heads: number) => ({
    heads,
    groups,
    context,
    crossDim: cfg.cross_attention_dim,
    layers: cfg.transformer_layers_per_block,
    linearProjection: cfg.use_linear_projection,
  });

  // 2. Down path; every resnet/attention output and every downsampler output is kept for the skips.
  let h = net.conv('conv_in', sample, cfg.in_channels, ch[0]!, 3);
  const skips: { value: string; channels: number }[] = [{ value: h, channels: ch[0]! }];
  let outCh = ch[0]!;
  cfg.down_block_types.forEach((type, i) => {
    const inCh = outCh;
    outCh = ch[i]!;
    net.module(`down_blocks.${i}`, () => {
      for (let j = 0; j < cfg.layers_per_block; j++) {
        h = resnetBlock(net, `resnets.${j}`, h, j === 0 ? inCh : outCh, outCh, res);
        if (type === 'CrossAttnDownBlock2D') h = transformer2d(net, `attentions.${j}`, h, outCh, attn(headsOf(cfg, i)));
        skips.push({ value: h, channels: outCh });
      }
      if (i < levels - 1) {
        h = downsample(net, h, outCh, 1);
        skips.push({ value: h, channels: outCh });
      }
    });
  });

  // 3. Mid block: resnet, (attention, resnet)…
  const midCh = ch[levels - 1]!;
  net.module('mid_block', () => {
    h = resnetBlock(net, 'resnets.0', h, midCh, midCh, res);
    h = transformer2d(net, 'attentions.0', h, midCh, attn(headsOf(cfg, levels - 1)));
    h = resnetBlock(net, 'resnets.1', h, midCh, midCh, res);
  });

  // 4. Up path: layers_per_block + 1 resnets per level, each fed the concatenation with a skip.
  const reversed = [...ch].reverse();
  outCh = reversed[0]!;
  cfg.up_block_types.forEach((type, i) => {
    const prevCh = outCh;
    outCh = reversed[i]!;
    const heads = headsOf(cfg, levels - 1 - i);
    net.module(`up_blocks.${i}`, () => {
      for (let j = 0; j <= cfg.layers_per_block; j++) {
        const skip = skips.pop()!;
        const inCh = (j === 0 ? prevCh : outCh) + skip.channels;
        h = net.op('Concat', [h, skip.value], { axis: 1 });
        h = resnetBlock(net, `resnets.${j}`, h, inCh, outCh, res);
        if (type === 'CrossAttnUpBlock2D') h = transformer2d(net, `attentions.${j}`, h, outCh, attn(heads));
      }
      if (i < levels - 1) h = upsample(net, h, outCh);
    });
  });

  // 5. Output: GroupNorm, SiLU, conv.
  h = net.groupNorm('conv_norm_out', h, ch[0]!, groups, eps);
  h = net.silu(h, 'conv_act');
  net.conv('conv_out', h, ch[0]!, cfg.out_channels, 3, { output: 'out_sample' });
  net.output('out_sample', ft, ['batch', cfg.out_channels, 'height', 'width']);
  return { model: net.build(), params: net.params };
}
