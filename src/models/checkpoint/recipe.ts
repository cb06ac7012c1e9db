/**
 * What converting a model needs, whatever layout it came in: the architecture (with the source of each
 * fact), where each diffusers-named parameter's tensor lies, the tokenizer folder, the scheduler config, and
 * the files whose bytes make the model (the cache key). single-file.ts and diffusers-folder.ts make one;
 * convert.ts turns it into an ONNX folder.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VidpriorError } from '../../errors.js';
import type { ElemType } from '../../onnx/ir.js';
import { validateConfig } from '../builder/config.js';
import type { PartShapes, SourcedConfig } from './architecture.js';
import type { Part } from './ldm-keys.js';
import type { TensorSource } from './tensor-source.js';

export interface WeightRef {
  source: TensorSource;
  /** The tensor's name in its source. */
  key: string;
  /** Its dims in PyTorch's layout for the diffusers parameter (a VAE attention 1×1 conv already squeezed). */
  dims: number[];
  type: ElemType;
}

export type PartWeights = Record<Part, Map<string, WeightRef>>;

export interface ModelRecipe {
  kind: 'checkpoint' | 'diffusers';
  /** The checkpoint file or diffusers folder. */
  path: string;
  arch: SourcedConfig;
  weights: PartWeights;
  /** A folder with vocab.json and merges.txt (and maybe tokenizer_config.json). */
  tokenizerDir: string;
  /** scheduler_config.json content and where it came from. */
  scheduler: { config: Record<string, unknown>; source: string };
  notes: string[];
  /** The files whose bytes make the model (weights, configs): hashed for the cache key. */
  files: string[];
  close(): Promise<void>;
}

const FLOAT_TYPES = new Set<ElemType>(['float32', 'float16', 'bfloat16', 'float64']);

export function emptyWeights(): PartWeights {
  return { unet: new Map(), vae: new Map(), text_encoder: new Map() };
}

/** Adds a tensor to `part` under its diffusers name; non-float tensors (position_ids, counters) are skipped. */
export function addWeight(
  weights: PartWeights,
  part: Part,
  name: string,
  source: TensorSource,
  key: string,
  squeeze = false,
): boolean {
  const info = source.info(key);
  if (!info || !FLOAT_TYPES.has(info.type)) return false;
  let dims = info.dims;
  if (squeeze && dims.length === 4 && dims[2] === 1 && dims[3] === 1) dims = dims.slice(0, 2);
  weights[part].set(name, { source, key, dims, type: info.type });
  return true;
}

export function shapesOf(weights: PartWeights): PartShapes {
  const out = {} as PartShapes;
  for (const part of ['unet', 'vae', 'text_encoder'] as Part[])
    out[part] = new Map([...weights[part]].map(([n, r]) => [n, r.dims]));
  return out;
}

/** A folder with a CLIP tokenizer's vocab.json and merges.txt. */
export function isTokenizerDir(dir: string): boolean {
  return existsSync(join(dir, 'vocab.json')) && existsSync(join(dir, 'merges.txt'));
}

/** Tokens in a tokenizer folder's vocab.json (0 when unreadable). */
export async function tokenizerVocabSize(dir: string): Promise<number> {
  try {
    const v: unknown = JSON.parse(await readFile(join(dir, 'vocab.json'), 'utf8'));
    return v && typeof v === 'object' ? Object.keys(v).length : 0;
  } catch {
    return 0;
  }
}

/** validateConfig, with a hint at --model-config when an SD 1.x convention does not fit the tensors. */
export function checkArchitecture(arch: SourcedConfig, path: string): void {
  try {
    validateConfig(arch.config);
  } catch (err) {
    if (!(err instanceof VidpriorError)) throw err;
    const key = Object.keys(err.details ?? {})[0] ?? '';
    const section = key.split('.')[0] ?? '';
    const guessed = Object.entries(arch.sources).filter(
      ([k, s]) =>
        k.startsWith(`${section}.`) &&
        s.includes('convention') &&
        /norm_num_groups|attention_head_dim|num_attention_heads/.test(k),
    );
    const hint = guessed.length
      ? ` (${guessed.map(([k]) => k).join(', ')} follow${guessed.length === 1 ? 's' : ''} SD 1.x conventions the weights do not fit: give the model's configs with --model-config <diffusers folder>, or a .yaml beside the checkpoint)`
      : '';
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `${path}: ${err.message}${hint}`,
      { file: path, ...err.details },
      {
        cause: err,
      },
    );
  }
}
