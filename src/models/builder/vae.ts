/**
 * AutoencoderKL as two ONNX graphs, inputs and outputs as diffusers' ONNX export:
 *   vae_encoder: sample [batch, 3, height, width] in [-1, 1] → latent_sample [batch, L, height/f, width/f]
 *                (the posterior mean; or latent_parameters, mean and log-variance on the channel axis)
 *   vae_decoder: latent_sample [batch, L, h, w] (unscaled) → sample [batch, 3, h·f, w·f]
 * with f = 2^(levels − 1).
 */
import type { SdConfig, VaeConfig } from './config.js';
import { Net, type NetOptions } from './net.js';
import { downsample, resnetBlock, upsample, vaeAttention } from './blocks.js';
import type { BuiltGraph } from './text-encoder.js';

const VAE_EPS = 1e-6;

/** UNetMidBlock2D of the VAE: resnet, single-head attention, resnet. */
function midBlock(net: Net, h: string, channels: number, groups: number): string {
  return net.module('mid_block', () => {
    const res = { groups, eps: VAE_EPS };
    let x = resnetBlock(net, 'resnets.0', h, channels, channels, res);
    x = vaeAttention(net, 'attentions.0', x, channels, groups);
    return resnetBlock(net, 'resnets.1', x, channels, channels, res);
  });
}

export type EncoderOutput = 'latent_sample' | 'latent_parameters';

export function buildVaeEncoder(
  config: SdConfig,
  opts: NetOptions,
  output: EncoderOutput = 'latent_sample',
): BuiltGraph {
  const cfg: VaeConfig = config.vae;
  const net = new Net('vae_encoder', opts);
  const ch = cfg.block_out_channels;
  const L = cfg.latent_channels;
  const res = { groups: cfg.norm_num_groups, eps: VAE_EPS };
  const sample = net.input('sample', net.ftype, ['batch', cfg.in_channels, 'height', 'width']);
  const moments = (() => {
    const h = net.module('encoder', () => {
      let x = net.conv('conv_in', sample, cfg.in_channels, ch[0]!, 3);
      let outCh = ch[0]!;
      ch.forEach((c, i) => {
        const inCh = outCh;
        outCh = c;
        net.module(`down_blocks.${i}`, () => {
          for (let j = 0; j < cfg.layers_per_block; j++)
            x = resnetBlock(net, `resnets.${j}`, x, j === 0 ? inCh : outCh, outCh, res);
          if (i < ch.length - 1) x = downsample(net, x, outCh, 0);
        });
      });
      x = midBlock(net, x, outCh, cfg.norm_num_groups);
      x = net.groupNorm('conv_norm_out', x, outCh, cfg.norm_num_groups, VAE_EPS);
      x = net.silu(x, 'conv_act');
      return net.conv('conv_out', x, outCh, 2 * L, 3);
    });
    return net.conv('quant_conv', h, 2 * L, 2 * L, 1, output === 'latent_parameters' ? { output } : {});
  })();
  if (output === 'latent_sample') {
    // The posterior mean: the first L channels of the moments.
    net.op('Slice', [moments, net.ints([0]), net.ints([L]), net.ints([1])], {}, 'latent_sample');
    net.output('latent_sample', net.ftype, ['batch', L, 'latent_height', 'latent_width']);
  } else {
    net.output('latent_parameters', net.ftype, ['batch', 2 * L, 'latent_height', 'latent_width']);
  }
  return { model: net.build(), params: net.params };
}

export function buildVaeDecoder(config: SdConfig, opts: NetOptions): BuiltGraph {
  const cfg: VaeConfig = config.vae;
  const net = new Net('vae_decoder', opts);
  const ch = cfg.block_out_channels;
  const L = cfg.latent_channels;
  const res = { groups: cfg.norm_num_groups, eps: VAE_EPS };
  const latents = net.input('latent_sample', net.ftype, ['batch', L, 'height', 'width']);
  const z = net.conv('post_quant_conv', latents, L, L, 1);
  net.module('decoder', () => {
    const reversed = [...ch].reverse();
    let x = net.conv('conv_in', z, L, reversed[0]!, 3);
    x = midBlock(net, x, reversed[0]!, cfg.norm_num_groups);
    let outCh = reversed[0]!;
    reversed.forEach((c, i) => {
      const prevCh = outCh;
      outCh = c;
      net.module(`up_blocks.${i}`, () => {
        for (let j = 0; j <= cfg.layers_per_block; j++)
          x = resnetBlock(net, `resnets.${j}`, x, j === 0 ? prevCh : outCh, outCh, res);
        if (i < ch.length - 1) x = upsample(net, x, outCh);
      });
    });
    x = net.groupNorm('conv_norm_out', x, outCh, cfg.norm_num_groups, VAE_EPS);
    x = net.silu(x, 'conv_act');
    net.conv('conv_out', x, outCh, cfg.out_channels, 3, { output: 'sample' });
  });
  net.output('sample', net.ftype, ['batch', cfg.out_channels, 'image_height', 'image_width']);
  return { model: net.build(), params: net.params };
}
