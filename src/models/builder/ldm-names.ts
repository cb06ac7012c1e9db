/**
 * The original Stable Diffusion (LDM) names of the builder's diffusers-named parameters, for writing models
 * in the single-file layout (write-checkpoint.ts). The names are made the way LDM builds its modules
 * (openaimodel.py's UNetModel appends to flat input_blocks/output_blocks lists level by level; the
 * autoencoder numbers the decoder's levels from the top), which is independent of how
 * src/models/checkpoint/ldm-keys.ts reads them back.
 */
import { VidpriorError } from '../../errors.js';
import type { SdConfig } from './config.js';

const RESNET: [string, string][] = [
  ['norm1', 'in_layers.0'],
  ['conv1', 'in_layers.2'],
  ['time_emb_proj', 'emb_layers.1'],
  ['norm2', 'out_layers.0'],
  ['conv2', 'out_layers.3'],
  ['conv_shortcut', 'skip_connection'],
];

/** Module prefix pairs: diffusers module → LDM module (both without a trailing dot). */
type Pairs = [string, string][];

function resnet(pairs: Pairs, diffusers: string, ldm: string): void {
  for (const [d, l] of RESNET) pairs.push([`${diffusers}.${d}`, `${ldm}.${l}`]);
}

function unetPairs(cfg: SdConfig): Pairs {
  const u = cfg.unet;
  const levels = u.block_out_channels.length;
  const p: Pairs = [
    ['time_embedding.linear_1', 'time_embed.0'],
    ['time_embedding.linear_2', 'time_embed.2'],
    ['conv_in', 'input_blocks.0.0'],
    ['conv_norm_out', 'out.0'],
    ['conv_out', 'out.2'],
  ];
  let block = 1;
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < u.layers_per_block; j++) {
      resnet(p, `down_blocks.${i}.resnets.${j}`, `input_blocks.${block}.0`);
      if (u.down_block_types[i] === 'CrossAttnDownBlock2D')
        p.push([`down_blocks.${i}.attentions.${j}`, `input_blocks.${block}.1`]);
      block++;
    }
    if (i < levels - 1) p.push([`down_blocks.${i}.downsamplers.0.conv`, `input_blocks.${block++}.0.op`]);
  }
  resnet(p, 'mid_block.resnets.0', 'middle_block.0');
  p.push(['mid_block.attentions.0', 'middle_block.1']);
  resnet(p, 'mid_block.resnets.1', 'middle_block.2');
  block = 0;
  for (let i = 0; i < levels; i++) {
    const attends = u.up_block_types[i] === 'CrossAttnUpBlock2D';
    for (let j = 0; j <= u.layers_per_block; j++) {
      resnet(p, `up_blocks.${i}.resnets.${j}`, `output_blocks.${block}.0`);
      if (attends) p.push([`up_blocks.${i}.attentions.${j}`, `output_blocks.${block}.1`]);
      if (j === u.layers_per_block && i < levels - 1)
        p.push([`up_blocks.${i}.upsamplers.0.conv`, `output_blocks.${block}.${attends ? 2 : 1}.conv`]);
      block++;
    }
  }
  return p.map(([d, l]) => [d, `model.diffusion_model.${l}`]);
}

function vaePairs(cfg: SdConfig): Pairs {
  const levels = cfg.vae.block_out_channels.length;
  const p: Pairs = [
    ['quant_conv', 'quant_conv'],
    ['post_quant_conv', 'post_quant_conv'],
  ];
  for (const side of ['encoder', 'decoder']) {
    p.push([`${side}.conv_in`, `${side}.conv_in`], [`${side}.conv_out`, `${side}.conv_out`]);
    p.push([`${side}.conv_norm_out`, `${side}.norm_out`]);
    p.push(
      [`${side}.mid_block.resnets.0`, `${side}.mid.block_1`],
      [`${side}.mid_block.resnets.1`, `${side}.mid.block_2`],
    );
    const a = `${side}.mid_block.attentions.0`;
    p.push(
      [`${a}.group_norm`, `${side}.mid.attn_1.norm`],
      [`${a}.to_q`, `${side}.mid.attn_1.q`],
      [`${a}.to_k`, `${side}.mid.attn_1.k`],
      [`${a}.to_v`, `${side}.mid.attn_1.v`],
      [`${a}.to_out.0`, `${side}.mid.attn_1.proj_out`],
    );
    const resnets = side === 'encoder' ? cfg.vae.layers_per_block : cfg.vae.layers_per_block + 1;
    for (let i = 0; i < levels; i++) {
      // The decoder's LDM level 0 is the last (full-resolution) one.
      const ldmLevel = side === 'encoder' ? i : levels - 1 - i;
      const d = side === 'encoder' ? `encoder.down_blocks.${i}` : `decoder.up_blocks.${i}`;
      const l = side === 'encoder' ? `encoder.down.${ldmLevel}` : `decoder.up.${ldmLevel}`;
      for (let j = 0; j < resnets; j++) {
        for (const n of ['norm1', 'conv1', 'norm2', 'conv2'])
          p.push([`${d}.resnets.${j}.${n}`, `${l}.block.${j}.${n}`]);
        p.push([`${d}.resnets.${j}.conv_shortcut`, `${l}.block.${j}.nin_shortcut`]);
      }
      if (side === 'encoder' && i < levels - 1) p.push([`${d}.downsamplers.0.conv`, `${l}.downsample.conv`]);
      if (side === 'decoder' && i < levels - 1) p.push([`${d}.upsamplers.0.conv`, `${l}.upsample.conv`]);
    }
  }
  return p.map(([d, l]) => [d, `first_stage_model.${l}`]);
}

/** diffusers parameter name → LDM key, for every parameter of a model of config `cfg` (part-prefixed lookups). */
export function ldmNamer(cfg: SdConfig): (part: 'unet' | 'vae' | 'text_encoder', name: string) => string {
  const tables = { unet: unetPairs(cfg), vae: vaePairs(cfg) };
  return (part, name) => {
    if (part === 'text_encoder') return `cond_stage_model.transformer.${name}`;
    let best: [string, string] | null = null;
    for (const pair of tables[part]) {
      if ((name.startsWith(`${pair[0]}.`) || name === pair[0]) && (!best || pair[0].length > best[0].length))
        best = pair;
    }
    if (!best) throw new VidpriorError('E_INTERNAL', `no LDM name for ${part} parameter ${name}`, { parameter: name });
    return best[1] + name.slice(best[0].length);
  };
}
