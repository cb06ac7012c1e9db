/**
 * The one way a model named by the user becomes an ONNX folder the loader can open (CLI `--model`, `serve
 * --model`, and anything else that takes a model):
 *
 *   (nothing)                   the embedded default (built once into the cache)
 *   a folder with unet/model.onnx        an ONNX folder, used as it is
 *   a folder with model_index.json / unet/config.json   a diffusers folder (safetensors) → converted, cached
 *   a file (.safetensors, .ckpt…)        a single-file checkpoint (LDM keys) → converted, cached
 *   owner/name[@revision]       a repo in the Hugging Face cache → its snapshot, as one of the folders above
 *
 * `identifyModel` only looks (cheap; fails fast on a missing path or an unknown repo); `prepareModel` builds
 * or finds the converted folder: the first load of a checkpoint converts it (its content hash names the
 * folder), later loads only check the hash (remembered by size and mtime) and open the folder.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { VidpriorError } from '../../errors.js';
import { ensureDefaultModel } from '../builder/default-model.js';
import { BUILDER_VERSION } from '../builder/index.js';
import type { FloatType } from '../builder/net.js';
import { CONVERTER_VERSION, type ConvertedModel, convertRecipe } from '../checkpoint/convert.js';
import { diffusersRecipe, isDiffusersFolder } from '../checkpoint/diffusers-folder.js';
import type { ModelRecipe } from '../checkpoint/recipe.js';
import { checkpointRecipe } from '../checkpoint/single-file.js';
import { cachedRepos, findSnapshot, parseRepoId } from '../hf-cache.js';
import { contentKey, convertedRoot, isCompleteFolder, recordRecent } from './model-cache.js';

export type ModelKind = 'embedded' | 'onnx' | 'diffusers' | 'checkpoint';

export interface ModelRef {
  /** What was asked for (undefined: the embedded default). */
  input?: string;
  kind: ModelKind;
  /** The file or folder (absolute); for a hub repo, its snapshot folder. */
  path: string;
  /** Set when the model was found by repo id in the Hugging Face cache. */
  repo?: string;
  revision?: string;
  /** How to name it to the user. */
  display: string;
}

export interface ResolveOptions {
  /** A diffusers folder with the configs (and tokenizer) a single-file checkpoint cannot state. */
  modelConfig?: string;
  /** Float type of a converted model's weights and inputs (default float32). */
  dtype?: FloatType;
  /** diffusers weight variant ('fp16'); default: plain files, else fp16. */
  variant?: string;
  /** One line per thing worth telling (found in cache, converting, notes of the conversion). */
  onNote?: (line: string) => void;
  onProgress?: (e: { component: string; index: number; total: number; parameters: number; seconds: number }) => void;
}

export interface ResolvedModel {
  /** The ONNX folder to load. */
  dir: string;
  ref: ModelRef;
  /** True when this call converted the model (false: found in the cache, or nothing to convert). */
  converted: boolean;
  /** The content key of a converted model. */
  key?: string;
  conversion?: ConvertedModel;
}

export const EMBEDDED_MODEL = 'embedded-default';

function isOnnxFolder(dir: string): boolean {
  return existsSync(join(dir, 'unet', 'model.onnx'));
}

function kindOfFolder(dir: string): ModelKind | null {
  if (isOnnxFolder(dir)) return 'onnx';
  if (isDiffusersFolder(dir)) return 'diffusers';
  return null;
}

/** What `input` names, without converting anything. Throws E_MODEL_MISSING / E_NOT_FOUND naming it. */
export function identifyModel(input: string | undefined): ModelRef {
  if (input === undefined || input === '' || input === EMBEDDED_MODEL)
    return { kind: 'embedded', path: '', display: EMBEDDED_MODEL };
  const path = resolve(input);
  if (existsSync(path)) {
    if (statSync(path).isFile()) return { input, kind: 'checkpoint', path, display: path };
    const kind = kindOfFolder(path);
    if (!kind) {
      throw new VidpriorError(
        'E_MODEL_MISSING',
        `${path} is neither an ONNX model folder (unet/model.onnx…) nor a diffusers folder (model_index.json, unet/config.json…)`,
        { dir: path },
      );
    }
    return { input, kind, path, display: path };
  }
  const repo = parseRepoId(input);
  if (!repo) throw new VidpriorError('E_MODEL_MISSING', `model ${path} does not exist`, { path });
  const snapshot = findSnapshot(repo);
  if (!snapshot) {
    const known = cachedRepos().map((r) => r.repo);
    throw new VidpriorError(
      'E_NOT_FOUND',
      `${input} is not a path, and no snapshot of ${repo.repo}@${repo.revision} is in the Hugging Face cache` +
        ` (fetch it with: vidprior models pull ${repo.repo})${known.length ? `; cached: ${known.join(', ')}` : ''}`,
      { model: input },
    );
  }
  const kind = kindOfFolder(snapshot);
  if (!kind) {
    throw new VidpriorError(
      'E_MODEL_MISSING',
      `${repo.repo}'s cached snapshot ${snapshot} holds no diffusers pipeline (model_index.json) or ONNX folder`,
      { model: input, dir: snapshot },
    );
  }
  return {
    input,
    kind,
    path: snapshot,
    repo: repo.repo,
    revision: repo.revision,
    display: `${repo.repo}${repo.revision === 'main' ? '' : `@${repo.revision}`}`,
  };
}

/** Preferred sources of SD 1.x's CLIP tokenizer in the Hugging Face cache (tokenizer/ or the repo root). */
const TOKENIZER_REPOS = [
  'openai/clip-vit-large-patch14',
  'stable-diffusion-v1-5/stable-diffusion-v1-5',
  'runwayml/stable-diffusion-v1-5',
  'CompVis/stable-diffusion-v1-4',
];

/**
 * Folders that may hold the CLIP tokenizer a single-file checkpoint lacks, best first: a tokenizer/ beside
 * it, then the cached repos above, then any cached SD pipeline's tokenizer/ (never another repo's root: a
 * GPT-2 vocabulary has the same files). single-file.ts keeps the first whose vocabulary fits.
 */
function tokenizerCandidates(checkpoint: string): string[] {
  const out = [join(checkpoint, '..', 'tokenizer')];
  const repos = cachedRepos();
  const rank = (repo: string) => {
    const i = TOKENIZER_REPOS.indexOf(repo);
    return i < 0 ? TOKENIZER_REPOS.length : i;
  };
  repos.sort((a, b) => rank(a.repo) - rank(b.repo));
  for (const r of repos) {
    for (const s of r.snapshots) {
      if (TOKENIZER_REPOS.includes(r.repo)) out.push(join(s, 'tokenizer'), s);
      else if (existsSync(join(s, 'model_index.json'))) out.push(join(s, 'tokenizer'));
    }
  }
  return out;
}

async function recipeFor(ref: ModelRef, o: ResolveOptions): Promise<ModelRecipe> {
  if (ref.kind === 'checkpoint')
    return checkpointRecipe(ref.path, { modelConfig: o.modelConfig, tokenizerDirs: tokenizerCandidates(ref.path) });
  return diffusersRecipe(ref.path, { variant: o.variant });
}

/** The ONNX folder for `ref`: as it is, from the cache, or converted now (and cached). */
export async function prepareModel(ref: ModelRef, o: ResolveOptions = {}): Promise<ResolvedModel> {
  const note = o.onNote ?? (() => {});
  if (ref.kind === 'embedded') {
    const dir = await ensureDefaultModel((d) => note(`building the embedded default model in ${d} (once)`));
    return { dir, ref, converted: false };
  }
  if (ref.kind === 'onnx') {
    if (o.modelConfig) note('--model-config is ignored for an ONNX folder (its configs are its own)');
    await recordRecent({ ref: ref.repo ? ref.display : ref.path, kind: ref.kind, dir: ref.path });
    return { dir: ref.path, ref, converted: false };
  }
  const dtype = o.dtype ?? 'float32';
  const recipe = await recipeFor(ref, o);
  try {
    for (const n of recipe.notes) note(n);
    const tokenizerFiles = ['vocab.json', 'merges.txt'].map((f) => join(recipe.tokenizerDir, f));
    const key = await contentKey(
      [...recipe.files, ...tokenizerFiles],
      { dtype, builder: BUILDER_VERSION, converter: CONVERTER_VERSION, kind: recipe.kind },
      (p, bytes) => note(`hashing ${p} (${(bytes / 2 ** 30).toFixed(2)} GiB, once)`),
    );
    const dir = join(convertedRoot(), key);
    const remember = () => recordRecent({ ref: ref.repo ? ref.display : ref.path, kind: ref.kind, dir });
    if (isCompleteFolder(dir)) {
      await remember();
      return { dir, ref, converted: false, key };
    }
    note(`converting ${ref.display} to ONNX in ${dir} (once; later loads reuse it)`);
    const conversion = await convertRecipe(recipe, dir, {
      dtype,
      provenance: { source: ref.display, ...(ref.repo ? { repo: ref.repo, revision: ref.revision } : {}), key },
      onProgress: o.onProgress,
    });
    if (conversion.unused.length)
      note(
        `${conversion.unused.length} tensors of the model matched no parameter: ${conversion.unused.slice(0, 5).join(', ')}${conversion.unused.length > 5 ? ', …' : ''}`,
      );
    await remember();
    return { dir, ref, converted: true, key, conversion };
  } finally {
    await recipe.close();
  }
}

/** identifyModel + prepareModel. */
export async function resolveModel(input: string | undefined, o: ResolveOptions = {}): Promise<ResolvedModel> {
  return prepareModel(identifyModel(input), o);
}

/** The recipe of a checkpoint or diffusers folder, for `models inspect` (the caller closes it). */
export async function inspectRecipe(ref: ModelRef, o: ResolveOptions = {}): Promise<ModelRecipe | null> {
  if (ref.kind === 'embedded' || ref.kind === 'onnx') return null;
  return recipeFor(ref, o);
}
