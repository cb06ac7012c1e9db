/**
 * `createModelFolder`: a complete Stable Diffusion 1.x model folder in the diffusers ONNX layout, with the
 * builder's graphs and seeded random weights:
 *
 *   text_encoder/ unet/ vae_encoder/ vae_decoder/   model.onnx (+ model.onnx.data with external data), config.json
 *   tokenizer/vocab.json, merges.txt                 synthetic byte-level CLIP BPE (tokenizer-files.ts)
 *   scheduler/scheduler_config.json                  DDIM as SD 1.x: scaled_linear 0.00085..0.012, steps_offset 1
 *   model_index.json, vidprior-model.json            pipeline index; how the folder was built
 *
 * The folder is built under a temporary sibling name and renamed into place when complete, so a crash or a
 * concurrent reader never sees half a model.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { VidpriorError } from '../../errors.js';
import { PROTOBUF_LIMIT } from '../../onnx/codec.js';
import { COMPONENTS, type Component } from '../folder.js';
import { type PartialSdConfig, type SdConfig, mergeConfig, validateConfig, vaeScaleFactor } from './config.js';
import { BUILDER_VERSION, type BuildOptions, buildComponent, countParameters, netOptions } from './index.js';
import { preset } from './presets.js';
import { syntheticTokenizer } from './tokenizer-files.js';
import { paramCount } from './weights.js';
import { writeBuiltGraph } from './write-graph.js';
import { SD1_SCHEDULER } from '../../schedulers/config.js';

export interface CreateModelOptions extends Omit<BuildOptions, 'weights'> {
  /**
   * true: weights in model.onnx.data files; false: inline (at most 2 GB per model); 'auto' (default): external
   * for models over 256 MiB, whose weights are then streamed to disk instead of held in memory.
   */
  externalData?: boolean | 'auto';
  /** Replace `dir` if it exists (after the new folder is complete). Default: refuse. */
  overwrite?: boolean;
  /** Called as each component is written. */
  onProgress?: (e: { component: Component; index: number; total: number; parameters: number; seconds: number }) => void;
}

export interface CreatedModel {
  dir: string;
  config: SdConfig;
  parameters: Record<Component, number>;
  /** Bytes written per component (model.onnx plus its data file). */
  bytes: Record<Component, number>;
  vaeScaleFactor: number;
  seconds: number;
}

/** A preset name, a full config, or a partial one laid over its `base` preset (tiny by default). */
export function resolveConfig(config: string | SdConfig | PartialSdConfig): SdConfig {
  if (typeof config === 'string') return preset(config);
  // A full config laid over a preset is itself; a partial one takes the rest from its base.
  const partial = config as PartialSdConfig;
  return validateConfig(mergeConfig(preset(partial.base ?? 'tiny'), partial));
}

/** scheduler/scheduler_config.json: DDIM with the schedule SD 1.x was trained with. */
export const SCHEDULER_CONFIG = {
  _class_name: 'DDIMScheduler',
  _diffusers_version: '0.30.0',
  ...SD1_SCHEDULER,
  trained_betas: null,
};

export function componentConfig(c: Component, cfg: SdConfig, dtype: string): Record<string, unknown> {
  switch (c) {
    case 'text_encoder':
      return {
        architectures: ['CLIPTextModel'],
        model_type: 'clip_text_model',
        torch_dtype: dtype,
        ...cfg.text_encoder,
      };
    case 'unet':
      return { _class_name: 'UNet2DConditionModel', _diffusers_version: '0.30.0', ...cfg.unet };
    case 'vae_encoder':
    case 'vae_decoder':
      return { _class_name: 'AutoencoderKL', _diffusers_version: '0.30.0', ...cfg.vae };
  }
}

export const MODEL_INDEX = {
  _class_name: 'OnnxStableDiffusionImg2ImgPipeline',
  _diffusers_version: '0.30.0',
  feature_extractor: [null, null],
  requires_safety_checker: false,
  safety_checker: [null, null],
  scheduler: ['diffusers', 'DDIMScheduler'],
  text_encoder: ['diffusers', 'OnnxRuntimeModel'],
  tokenizer: ['transformers', 'CLIPTokenizer'],
  unet: ['diffusers', 'OnnxRuntimeModel'],
  vae_decoder: ['diffusers', 'OnnxRuntimeModel'],
  vae_encoder: ['diffusers', 'OnnxRuntimeModel'],
};

/** 'auto' external data from this many bytes of weights per model. */
export const AUTO_EXTERNAL_BYTES = 256 * 2 ** 20;

/** Makes temporary folder names unique within the process (two builds may start in the same millisecond). */
let tmpCounter = 0;

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** Writes a complete model folder at `dir` (atomically). */
export async function createModelFolder(
  dir: string,
  config: string | SdConfig | PartialSdConfig,
  o: CreateModelOptions = {},
): Promise<CreatedModel> {
  const started = performance.now();
  // 1. Check inputs before touching the disk.
  const cfg = resolveConfig(config);
  let opts: ReturnType<typeof netOptions>;
  try {
    opts = netOptions({ ...o, weights: 'none' });
  } catch (err) {
    throw new VidpriorError('E_BAD_REQUEST', (err as Error).message, { opset: o.opset, dtype: o.dtype, seed: o.seed });
  }
  const target = resolve(dir);
  if (existsSync(target) && !o.overwrite) {
    throw new VidpriorError('E_BAD_REQUEST', `${target} already exists: choose a new folder (or overwrite it)`, {
      dir: target,
    });
  }
  const bytesPerParam = opts.dtype === 'float16' ? 2 : 4;
  if (o.externalData === false) {
    for (const [c, n] of Object.entries(countParameters(cfg))) {
      if (n * bytesPerParam > PROTOBUF_LIMIT - (64 << 20)) {
        throw new VidpriorError(
          'E_BAD_REQUEST',
          `${c} has ${n} parameters, over protobuf's 2 GB limit for one file: write it with external data`,
          { component: c, externalData: false },
        );
      }
    }
  }
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${Date.now()}-${++tmpCounter}`);
  await mkdir(tmp, { recursive: true });
  try {
    // 2. The graphs, one at a time (built without weights; each tensor is drawn as it is written).
    const parameters = {} as Record<Component, number>;
    const bytes = {} as Record<Component, number>;
    for (const [index, c] of COMPONENTS.entries()) {
      const t0 = performance.now();
      const built = buildComponent(c, cfg, { ...o, weights: 'none' });
      parameters[c] = paramCount(built.params.values());
      const external =
        o.externalData === true ||
        ((o.externalData ?? 'auto') === 'auto' && parameters[c] * bytesPerParam > AUTO_EXTERNAL_BYTES);
      await mkdir(join(tmp, c));
      bytes[c] = await writeBuiltGraph(built, join(tmp, c, 'model.onnx'), {
        seed: opts.seed,
        dtype: opts.dtype,
        externalData: external,
      });
      await writeJson(join(tmp, c, 'config.json'), componentConfig(c, cfg, opts.dtype));
      o.onProgress?.({
        component: c,
        index,
        total: COMPONENTS.length,
        parameters: parameters[c],
        seconds: (performance.now() - t0) / 1000,
      });
    }

    // 3. Tokenizer, scheduler, index and provenance.
    const tok = syntheticTokenizer(cfg.text_encoder.vocab_size);
    await mkdir(join(tmp, 'tokenizer'));
    await writeFile(join(tmp, 'tokenizer', 'vocab.json'), JSON.stringify(tok.vocab));
    await writeFile(join(tmp, 'tokenizer', 'merges.txt'), tok.merges);
    await mkdir(join(tmp, 'scheduler'));
    await writeJson(join(tmp, 'scheduler', 'scheduler_config.json'), SCHEDULER_CONFIG);
    await writeJson(join(tmp, 'model_index.json'), MODEL_INDEX);
    await writeJson(join(tmp, 'vidprior-model.json'), {
      builder_version: BUILDER_VERSION,
      seed: opts.seed,
      opset: opts.opset,
      dtype: opts.dtype,
      encoder_output: o.encoderOutput ?? 'latent_sample',
      weights: 'random (seeded; not a trained model)',
      parameters,
      config: cfg,
    });

    // 4. Into place: the old folder (when overwriting) is moved aside first and removed last.
    // Without overwrite, a folder that appeared meanwhile (another process) makes the rename fail: keep theirs.
    const old = o.overwrite && existsSync(target) ? `${tmp}.old` : null;
    if (old) await rename(target, old);
    await rename(tmp, target);
    if (old) await rm(old, { recursive: true, force: true });
    return {
      dir: target,
      config: cfg,
      parameters,
      bytes,
      vaeScaleFactor: vaeScaleFactor(cfg.vae),
      seconds: (performance.now() - started) / 1000,
    };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
