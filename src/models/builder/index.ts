/**
 * The model builder: Stable Diffusion 1.x-architecture ONNX graphs with seeded random weights, from
 * diffusers-style configs (config.ts, presets.ts). `buildComponent` makes one graph in memory;
 * `createModelFolder` (folder.ts) writes a complete diffusers ONNX folder.
 */
import { VidpriorError } from '../../errors.js';
import type { Component } from '../folder.js';
import type { SdConfig } from './config.js';
import type { NetOptions, FloatType } from './net.js';
import { buildTextEncoder, type BuiltGraph } from './text-encoder.js';
import { buildUNet } from './unet.js';
import { buildVaeDecoder, buildVaeEncoder, type EncoderOutput } from './vae.js';
import { type WeightMode, paramCount } from './weights.js';

export type { BuiltGraph } from './text-encoder.js';
export type { SdConfig, PartialSdConfig, ClipTextConfig, UNetConfig, VaeConfig } from './config.js';
export type { FloatType } from './net.js';
export type { EncoderOutput } from './vae.js';
export { PRESETS, preset, type PresetName } from './presets.js';
export { mergeConfig, validateConfig, vaeScaleFactor } from './config.js';

/**
 * Bump when the graphs or weights the builder makes change, so cached models (the embedded default) are
 * rebuilt instead of reused.
 */
export const BUILDER_VERSION = 2;

export interface BuildOptions {
  /** Default-domain opset: 17 (LayerNormalization) unless said; 14–16 give the TorchScript LayerNorm chain. */
  opset?: number;
  dtype?: FloatType;
  /** 'none' builds shapes only (parameter counts; weights filled later while writing). */
  weights?: WeightMode;
  seed?: number;
  /** The VAE encoder's output: the mean (default) or mean and log-variance. */
  encoderOutput?: EncoderOutput;
}

export const MIN_OPSET = 14;
export const MAX_OPSET = 21;

export function netOptions(o: BuildOptions): NetOptions {
  const opset = o.opset ?? 17;
  if (!Number.isInteger(opset) || opset < MIN_OPSET || opset > MAX_OPSET) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `opset must be an integer from ${MIN_OPSET} to ${MAX_OPSET}, got ${opset}`,
    );
  }
  const dtype = o.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float16')
    throw new VidpriorError('E_BAD_REQUEST', `dtype must be float32 or float16, got ${String(dtype)}`);
  const seed = o.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
    throw new VidpriorError('E_BAD_REQUEST', `seed must be an integer from 0 to 2^32-1, got ${seed}`);
  return { opset, dtype, weights: o.weights ?? 'random', seed };
}

/** Builds one component's graph. */
export function buildComponent(component: Component, config: SdConfig, o: BuildOptions = {}): BuiltGraph {
  const opts = netOptions(o);
  switch (component) {
    case 'text_encoder':
      return buildTextEncoder(config, opts);
    case 'unet':
      return buildUNet(config, opts);
    case 'vae_encoder':
      return buildVaeEncoder(config, opts, o.encoderOutput ?? 'latent_sample');
    case 'vae_decoder':
      return buildVaeDecoder(config, opts);
  }
}

/** Parameters per component of a config, counted without allocating any weights. */
export function countParameters(config: SdConfig): Record<Component, number> {
  const out = {} as Record<Component, number>;
  for (const c of ['text_encoder', 'unet', 'vae_encoder', 'vae_decoder'] as const) {
    out[c] = paramCount(buildComponent(c, config, { weights: 'none' }).params.values());
  }
  return out;
}
