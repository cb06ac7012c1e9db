/**
 * A loaded Stable Diffusion 1.x model: four ONNX sessions, the tokenizer, the scheduler config, and the facts
 * the pipelines need, all derived from the model files themselves (never assumed from SD 1.5's sizes).
 */
import type { Session } from '../runtime/types.js';
import type { ClipTokenizer } from '../tokenizer/clip.js';
import type { Component } from './folder.js';
import type { DdimConfig } from '../schedulers/config.js';

export type FloatType = 'float32' | 'float16';

/** The names of the inputs/outputs each session is fed and read by. */
export interface ModelIoNames {
  textIds: string;
  /** An attention_mask input some text encoder exports have (fed all ones, as diffusers does for SD 1.x). */
  textMask: string | null;
  textHidden: string;
  unetSample: string;
  unetTimestep: string;
  unetText: string;
  unetOut: string;
  vaeEncoderIn: string;
  vaeEncoderOut: string;
  vaeDecoderIn: string;
  vaeDecoderOut: string;
}

/** The UNet's self-attention with the most scores: `heads` heads over latent pixels downsampled `downsample`× per side. */
export interface UnetAttention {
  heads: number;
  downsample: number;
}

export interface ModelFacts {
  /** Image pixels per latent pixel (8 for SD 1.x, 2 for the tiny fixture): decoder output / input size. */
  vaeScaleFactor: number;
  /** Channels of a latent (4 for SD 1.x). */
  latentChannels: number;
  /** Width of the text embeddings (768 for SD 1.x): the text encoder's hidden size. */
  textWidth: number;
  /** Tokens per prompt (77). */
  textLength: number;
  /** Element type of the text encoder's input ids. */
  textIdsType: 'int32' | 'int64';
  /** Float type of each model's float inputs. */
  textEncoderOutputType: FloatType;
  unetType: FloatType;
  unetTextType: FloatType;
  vaeEncoderType: FloatType;
  vaeDecoderType: FloatType;
  /** Element type of the UNet's timestep input ('int64', 'int32', 'float32' or 'float16'). */
  timestepType: 'int64' | 'int32' | 'float32' | 'float16';
  /** Dims of the timestep fed to the UNet: [] for a scalar input, else [1] (the graph broadcasts it). */
  timestepDims: number[];
  /** What the VAE encoder outputs: the posterior mean, or mean and log-variance on the channel axis. */
  encoderOutput: 'latent_sample' | 'latent_parameters';
  /** Latents are the encoder mean × this; the decoder gets latents / this. */
  scalingFactor: number;
  scalingFactorSource: string;
  /**
   * The image size the model was made for (vae sample_size, or unet sample_size × vaeScaleFactor, from the
   * folder's config.json files); absent when no config says (then 64 latents, SD 1.x's, are assumed).
   */
  nativeSize?: number;
  /** The UNet's largest self-attention (unet/config.json); absent when no config says (SD 1.x's is assumed). */
  unetAttention?: UnetAttention;
  /** Default-domain opset of each model. */
  opsets: Record<Component, number>;
}

export interface StableDiffusionModel {
  /** The model folder (absolute), or a label for models not from a folder. */
  readonly dir: string;
  readonly textEncoder: Session;
  readonly unet: Session;
  readonly vaeEncoder: Session;
  readonly vaeDecoder: Session;
  readonly tokenizer: ClipTokenizer;
  /** The DDIM config the pipelines step with (scheduler_config.json keys, diffusers' fix-ups applied). */
  readonly schedulerConfig: Readonly<DdimConfig>;
  readonly schedulerConfigSource: string;
  /** Notes about the scheduler config for the user (foreign class, fix-ups, missing file). */
  readonly schedulerNotes: readonly string[];
  readonly facts: ModelFacts;
  readonly io: ModelIoNames;
  /** Releases the sessions the loader created (not a UNet passed in by the caller). */
  release(): Promise<void>;
}
