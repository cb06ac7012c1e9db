/**
 * The diffusers ONNX folder layout of a Stable Diffusion 1.x model, checked before any session is created so
 * that a bad folder fails fast with the name of the missing file:
 *
 *   text_encoder/model.onnx  unet/model.onnx  vae_encoder/model.onnx  vae_decoder/model.onnx
 *   tokenizer/vocab.json  tokenizer/merges.txt
 *   scheduler/scheduler_config.json  (or a model_index.json; SD 1.x's training schedule is used then)
 *
 * Weights stored as external data sit beside each model.onnx; the runtime finds them from the path.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { VidpriorError } from '../errors.js';
import type { UnetAttention } from './types.js';
import { type DdimConfig, SD1_SCHEDULER, ddimConfigFrom, loadSchedulerConfig } from '../schedulers/config.js';

export const COMPONENTS = ['text_encoder', 'unet', 'vae_encoder', 'vae_decoder'] as const;
export type Component = (typeof COMPONENTS)[number];

/** SD 1.x's latent scaling factor, used when no config in the folder names one. */
export const SD1_SCALING_FACTOR = 0.18215;

export interface ModelFolder {
  dir: string;
  /** model.onnx of each component. */
  onnx: Record<Component, string>;
  vocab: string;
  merges: string;
  /** The DDIM config (from scheduler/scheduler_config.json, model_index.json, or SD 1.x's schedule). */
  schedulerConfig: DdimConfig;
  /** Where the scheduler config came from (a path, or 'SD 1.x training schedule'). */
  schedulerConfigSource: string;
  /** Notes for the user: a foreign scheduler class, fix-ups, a missing file. */
  schedulerNotes: string[];
  /** The VAE's latent scaling factor and where it came from. */
  scalingFactor: number;
  scalingFactorSource: string;
  /** sample_size of the VAE's config (pixels) and of the UNet's (latents), when a config.json states them. */
  vaeSampleSize: number | null;
  unetSampleSize: number | null;
  /** The UNet's largest self-attention, from unet/config.json (for the memory estimate); null when none says. */
  unetAttention: UnetAttention | null;
  /** tokenizer/tokenizer_config.json when present (model_max_length, do_lower_case…). */
  tokenizerConfig: Record<string, unknown> | null;
}

function missing(dir: string, file: string, what: string): VidpriorError {
  return new VidpriorError('E_MODEL_MISSING', `model folder ${dir} has no ${file} (${what})`, { dir, file });
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new VidpriorError(
      'E_MODEL_MISSING',
      `cannot read ${path}: ${(err as Error).message}`,
      { file: path },
      { cause: err },
    );
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new VidpriorError('E_MODEL_INPUT', 'not a JSON object');
    return value as Record<string, unknown>;
  } catch (err) {
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `${path} is not a valid JSON object: ${(err as Error).message}`,
      { file: path },
      { cause: err },
    );
  }
}

function isFile(path: string): boolean {
  return existsSync(path) && statSync(path).isFile();
}

/** Checks the folder layout and reads its small JSON files. Throws E_MODEL_MISSING naming the first gap. */
export async function readModelFolder(folder: string): Promise<ModelFolder> {
  const dir = resolve(folder);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new VidpriorError('E_MODEL_MISSING', `model folder ${dir} does not exist or is not a folder`, { dir });
  }
  const onnx = {} as Record<Component, string>;
  for (const c of COMPONENTS) {
    const p = join(dir, c, 'model.onnx');
    if (!isFile(p)) throw missing(dir, `${c}/model.onnx`, `the ${c.replace('_', ' ')} as ONNX`);
    onnx[c] = p;
  }
  const vocab = join(dir, 'tokenizer', 'vocab.json');
  const merges = join(dir, 'tokenizer', 'merges.txt');
  if (!isFile(vocab)) throw missing(dir, 'tokenizer/vocab.json', 'the CLIP tokenizer vocabulary');
  if (!isFile(merges)) throw missing(dir, 'tokenizer/merges.txt', 'the CLIP tokenizer merges');
  const tokenizerConfigPath = join(dir, 'tokenizer', 'tokenizer_config.json');
  const tokenizerConfig = isFile(tokenizerConfigPath) ? await readJson(tokenizerConfigPath) : null;

  // Scheduler: scheduler/scheduler_config.json (read by the scheduler module, with diffusers' SD pipeline
  // fix-ups), else model_index.json (which may embed settings over SD 1.x's schedule), else missing.
  const schedulerPath = join(dir, 'scheduler', 'scheduler_config.json');
  const indexPath = join(dir, 'model_index.json');
  const modelIndex = isFile(indexPath) ? await readJson(indexPath) : null;
  let schedulerConfig: DdimConfig;
  let schedulerNotes: string[];
  let schedulerConfigSource: string;
  if (isFile(schedulerPath)) {
    const loaded = await loadSchedulerConfig(dir);
    schedulerConfig = loaded.config;
    schedulerNotes = loaded.notes;
    schedulerConfigSource = schedulerPath;
  } else if (modelIndex) {
    const embedded = modelIndex.scheduler_config ?? modelIndex.scheduler;
    const settings =
      embedded && typeof embedded === 'object' && !Array.isArray(embedded) ? (embedded as Record<string, unknown>) : {};
    schedulerConfig = ddimConfigFrom({ ...SD1_SCHEDULER, ...settings }, indexPath).config;
    schedulerConfigSource = Object.keys(settings).length ? `${indexPath} (scheduler)` : 'SD 1.x training schedule';
    schedulerNotes = Object.keys(settings).length
      ? []
      : [`no scheduler/scheduler_config.json: using the SD 1.x training schedule (${indexPath} names none)`];
    // The fix-ups diffusers' Stable Diffusion pipelines apply to an outdated config.
    if (schedulerConfig.steps_offset !== 1) {
      schedulerConfig.steps_offset = 1;
      schedulerNotes.push("scheduler steps_offset set to 1, as diffusers' Stable Diffusion pipelines do");
    }
    if (schedulerConfig.clip_sample) {
      schedulerConfig.clip_sample = false;
      schedulerNotes.push("scheduler clip_sample set to false, as diffusers' Stable Diffusion pipelines do");
    }
  } else {
    throw missing(dir, 'scheduler/scheduler_config.json', 'or a model_index.json');
  }

  // The VAE scaling factor: the first config that states it.
  let scalingFactor = SD1_SCALING_FACTOR;
  let scalingFactorSource = 'SD 1.x default';
  const candidates: [string, (j: Record<string, unknown>) => unknown][] = [
    [join(dir, 'vae_decoder', 'config.json'), (j) => j.scaling_factor],
    [join(dir, 'vae_encoder', 'config.json'), (j) => j.scaling_factor],
    [join(dir, 'vae', 'config.json'), (j) => j.scaling_factor],
  ];
  for (const [path, pick] of candidates) {
    if (!isFile(path)) continue;
    const v = pick(await readJson(path));
    if (v !== undefined) {
      scalingFactor = checkScaling(v, path);
      scalingFactorSource = path;
      break;
    }
  }
  if (scalingFactorSource === 'SD 1.x default' && modelIndex) {
    const vae = modelIndex.vae;
    const v =
      modelIndex.scaling_factor ??
      (vae && typeof vae === 'object' && !Array.isArray(vae)
        ? (vae as Record<string, unknown>).scaling_factor
        : undefined);
    if (v !== undefined) {
      scalingFactor = checkScaling(v, indexPath);
      scalingFactorSource = indexPath;
    }
  }

  return {
    dir,
    vaeSampleSize: await sampleSize([
      join(dir, 'vae_decoder', 'config.json'),
      join(dir, 'vae_encoder', 'config.json'),
      join(dir, 'vae', 'config.json'),
    ]),
    unetSampleSize: await sampleSize([join(dir, 'unet', 'config.json')]),
    unetAttention: isFile(join(dir, 'unet', 'config.json'))
      ? unetAttentionOf(await readJson(join(dir, 'unet', 'config.json')))
      : null,
    onnx,
    vocab,
    merges,
    schedulerConfig,
    schedulerConfigSource,
    schedulerNotes,
    scalingFactor,
    scalingFactorSource,
    tokenizerConfig,
  };
}

/** The first positive integer `sample_size` among these config files (a list means per-axis: its smallest). */
async function sampleSize(paths: string[]): Promise<number | null> {
  for (const path of paths) {
    if (!isFile(path)) continue;
    const v = (await readJson(path)).sample_size;
    const n = Array.isArray(v) ? Math.min(...v.map(Number)) : Number(v);
    if (Number.isInteger(n) && n > 0) return n;
  }
  return null;
}

/**
 * Bytes of the model's weights: the files of its component folders (model.onnx and external data, whatever its
 * name). 0 for a label that is no folder (a model made in memory).
 */
export async function modelWeightBytes(dir: string): Promise<number> {
  let total = 0;
  for (const component of COMPONENTS) {
    const files = await readdir(join(dir, component)).catch(() => [] as string[]);
    for (const f of files) {
      const st = await stat(join(dir, component, f)).catch(() => null);
      if (st?.isFile()) total += st.size;
    }
  }
  return total;
}

/**
 * The self-attention with the most scores in a diffusers UNet2DConditionModel config: down block i (and its
 * up block) works on latents downsampled 2^i per side, so its scores per head shrink by 16^i; the mid block
 * works at the last level. Heads are `num_attention_heads`, or `attention_head_dim` where that is unset (SD 1.x
 * and 2.x store the number of heads there). Null when the config does not say (the estimate then assumes SD 1.x).
 */
export function unetAttentionOf(config: Record<string, unknown>): UnetAttention | null {
  const blocks = config.down_block_types;
  const heads = config.num_attention_heads ?? config.attention_head_dim;
  if (!Array.isArray(blocks) || blocks.length === 0) return null;
  const headsAt = (i: number): number => Number(Array.isArray(heads) ? heads[i] : heads);
  const levels = blocks.map((type, i) => ({ attends: /Attn/.test(String(type)), heads: headsAt(i), level: i }));
  const mid = config.mid_block_type !== null;
  levels.push({ attends: mid, heads: headsAt(blocks.length - 1), level: blocks.length - 1 });
  let best: UnetAttention | null = null;
  for (const { attends, heads: h, level } of levels) {
    if (!attends) continue;
    if (!Number.isInteger(h) || h <= 0) return null;
    if (!best || h / 16 ** level > best.heads / best.downsample ** 4) best = { heads: h, downsample: 2 ** level };
  }
  return best;
}

function checkScaling(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `${path}: scaling_factor must be a positive number, got ${JSON.stringify(v)}`,
      { file: path, scaling_factor: v },
    );
  }
  return v;
}
