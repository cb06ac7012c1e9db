/**
 * The options of the img2img / txt2img pipelines, their defaults (the method's: strength 0.45, 50 DDIM steps,
 * guidance 7.5) and their checks: every bad value gets a VidpriorError that names it.
 */
import { VidpriorError, check } from '../errors.js';
import type { StableDiffusionModel } from '../models/types.js';
import type { Session } from '../runtime/types.js';
import type { Tensor } from '../tensor.js';

export type StylizePhase = 'encode' | 'denoise' | 'frame';

/** One progress event: per denoising step of a batch, and per finished frame. */
export interface StylizeProgress {
  phase: StylizePhase;
  /** 1-based: the last frame of the batch being worked on, or the frame just finished. */
  frame: number;
  frames: number;
  /** 1-based denoising step within the batch (0 while encoding). */
  step: number;
  steps: number;
}

export interface StylizeOptions {
  prompt: string;
  /** What to steer away from with guidance ('' by default, as diffusers). */
  negativePrompt?: string;
  /** How much of the schedule runs, in (0, 1]: 1 starts from (almost) pure noise. Default 0.45. */
  strength?: number;
  /** DDIM inference steps before strength slicing. Default 50. */
  steps?: number;
  /** Classifier-free guidance scale; ≤ 1 runs without guidance (one UNet batch). Default 7.5. */
  guidance?: number;
  /** Seed of the initial noise when `noise` is not given. Default 0. */
  seed?: number;
  /** The initial noise, [1, C, H'/f, W'/f] float32, used for every frame. */
  noise?: Tensor;
  /** Frames per UNet batch (×2 with guidance). Default 1. */
  batch?: number;
  /** A UNet to run instead of the model's (e.g. with a LoRA adapter); same inputs as the model's. */
  unet?: Session;
  /**
   * Keep latents on the GPU between steps (guidance and DDIM run in a small ONNX graph there). 'auto' (the
   * default) does it on WebGPU; on the CPU provider it gives the same numbers as the host loop.
   */
  latentsOnDevice?: boolean | 'auto';
  onProgress?: (p: StylizeProgress) => void;
  /** Checked between steps; an aborted run throws E_CANCELLED. */
  signal?: AbortSignal;
}

export interface ResolvedOptions {
  prompt: string;
  negativePrompt: string;
  strength: number;
  steps: number;
  guidance: number;
  /** True when guidance > 1 (diffusers' do_classifier_free_guidance). */
  cfg: boolean;
  seed: number;
  noise: Tensor<'float32'> | null;
  batch: number;
  unet: Session;
}

export function resolveOptions(model: StableDiffusionModel, o: StylizeOptions): ResolvedOptions {
  check(typeof o.prompt === 'string', 'prompt', o.prompt, 'a string');
  const negativePrompt = o.negativePrompt ?? '';
  check(typeof negativePrompt === 'string', 'negative prompt', negativePrompt, 'a string');
  const strength = o.strength ?? 0.45;
  check(typeof strength === 'number' && strength > 0 && strength <= 1, 'strength', strength, 'a number in (0, 1]');
  const steps = o.steps ?? 50;
  check(
    Number.isInteger(steps) && steps >= 1 && steps <= model.schedulerConfig.num_train_timesteps,
    'steps',
    steps,
    `a whole number from 1 to ${model.schedulerConfig.num_train_timesteps}`,
  );
  const guidance = o.guidance ?? 7.5;
  check(
    typeof guidance === 'number' && Number.isFinite(guidance) && guidance >= 0,
    'guidance',
    guidance,
    'a number ≥ 0',
  );
  const seed = o.seed ?? 0;
  check(Number.isSafeInteger(seed), 'seed', seed, 'a whole number');
  const batch = o.batch ?? 1;
  check(Number.isInteger(batch) && batch >= 1 && batch <= 64, 'batch', batch, 'a whole number from 1 to 64');
  const unet = o.unet ?? model.unet;
  for (const name of [model.io.unetSample, model.io.unetTimestep, model.io.unetText]) {
    if (!unet.inputs.some((m) => m.name === name)) {
      throw new VidpriorError(
        'E_MODEL_INPUT',
        `the UNet "${unet.label}" has no input "${name}" (its inputs: ${unet.inputs.map((m) => m.name).join(', ')})`,
        { input: name },
      );
    }
  }
  let noise: Tensor<'float32'> | null = null;
  if (o.noise) {
    if (o.noise.type !== 'float32') {
      throw new VidpriorError('E_BAD_INPUT', `the initial noise must be float32, got ${o.noise.type}`, {
        type: o.noise.type,
      });
    }
    noise = o.noise as Tensor<'float32'>;
  }
  return { prompt: o.prompt, negativePrompt, strength, steps, guidance, cfg: guidance > 1, seed, noise, batch, unet };
}

/** Checks the noise against the latent shape the frames need; names both shapes when they differ. */
export function checkNoiseShape(noise: Tensor, expected: readonly number[], frameSize: string): void {
  const ok = noise.dims.length === expected.length && noise.dims.every((d, i) => d === expected[i]);
  if (!ok) {
    throw new VidpriorError(
      'E_BAD_INPUT',
      `the initial noise has shape [${noise.dims.join(', ')}] but ${frameSize} frames need [${expected.join(', ')}]`,
      { shape: noise.dims, expected },
    );
  }
  for (const v of noise.data as Float32Array) {
    if (!Number.isFinite(v)) throw new VidpriorError('E_BAD_INPUT', `the initial noise contains ${v}`, { value: v });
  }
}
