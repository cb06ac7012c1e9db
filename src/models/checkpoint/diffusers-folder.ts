/**
 * A diffusers model folder with safetensors weights (what `save_pretrained` writes and `from_pretrained`
 * downloads into the Hugging Face cache) as a recipe:
 *
 *   model_index.json  unet/ vae/ text_encoder/  config.json + weights   tokenizer/  scheduler/
 *
 * Weights are `diffusion_pytorch_model[.<variant>].safetensors` (unet, vae) and `model[.<variant>].safetensors`
 * (text_encoder), or shards listed in `….safetensors.index.json`. Without a variant asked for, the plain files
 * are used when present, else the `fp16` ones. The configs come from the folder; the tensors must agree.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { VidpriorError } from '../../errors.js';
import { SCHEDULER_CONFIG } from '../builder/folder.js';
import { inferConfig } from './architecture.js';
import type { Part } from './ldm-keys.js';
import { applyOverride, diffusersConfigOverride, readJsonObject } from './overrides.js';
import { type ModelRecipe, addWeight, checkArchitecture, emptyWeights, isTokenizerDir, shapesOf } from './recipe.js';
import { type TensorSource, combineSources, openSafetensors } from './tensor-source.js';
import { openTorchCheckpoint } from './torch-zip.js';

export interface DiffusersOptions {
  /** Weight file variant: 'fp16' picks `*.fp16.safetensors`. Default: plain files, else fp16. */
  variant?: string;
}

const WEIGHT_STEM: Record<Part, string> = {
  unet: 'diffusion_pytorch_model',
  vae: 'diffusion_pytorch_model',
  text_encoder: 'model',
};

/** A diffusers pipeline folder: model_index.json, or unet/ with its config. */
export function isDiffusersFolder(dir: string): boolean {
  return existsSync(join(dir, 'model_index.json')) || existsSync(join(dir, 'unet', 'config.json'));
}

/** Old diffusers (< 0.14) saved the VAE attention as query/key/value/proj_attn. */
function modernVaeName(name: string): string {
  return name
    .replace(/\.attentions\.0\.query\./, '.attentions.0.to_q.')
    .replace(/\.attentions\.0\.key\./, '.attentions.0.to_k.')
    .replace(/\.attentions\.0\.value\./, '.attentions.0.to_v.')
    .replace(/\.attentions\.0\.proj_attn\./, '.attentions.0.to_out.0.');
}

/** The weight files of one component (one file, or the shards its index names). */
async function weightFiles(dir: string, part: Part, variant: string | undefined): Promise<string[]> {
  const sub = join(dir, part);
  const stem = WEIGHT_STEM[part];
  const variants = variant ? [`.${variant}`] : ['', '.fp16'];
  for (const v of variants) {
    const single = join(sub, `${stem}${v}.safetensors`);
    if (existsSync(single)) return [single];
    const index = join(sub, `${stem}.safetensors.index${v}.json`);
    const indexAlt = join(sub, `${stem}${v}.safetensors.index.json`);
    for (const idx of [index, indexAlt]) {
      if (!existsSync(idx)) continue;
      const map = (await readJsonObject(idx)).weight_map;
      if (!map || typeof map !== 'object')
        throw new VidpriorError('E_MODEL_INPUT', `${idx} has no weight_map`, { file: idx });
      return [...new Set(Object.values(map as Record<string, string>))].sort().map((f) => join(sub, f));
    }
  }
  const present = existsSync(sub) ? readdirSync(sub) : [];
  const bins = present.filter((f) => f.endsWith('.bin'));
  if (bins.length) return bins.sort().map((f) => join(sub, f));
  throw new VidpriorError(
    'E_MODEL_MISSING',
    `${sub} has no ${stem}${variant ? `.${variant}` : ''}.safetensors${variant ? '' : ' (nor an fp16 variant)'}` +
      (present.length ? ` (it holds ${present.join(', ')})` : ''),
    { dir: sub, variant },
  );
}

async function openWeights(files: string[]): Promise<TensorSource> {
  const sources: TensorSource[] = [];
  try {
    for (const f of files) sources.push(f.endsWith('.bin') ? await openTorchCheckpoint(f) : await openSafetensors(f));
  } catch (err) {
    for (const s of sources) await s.close();
    throw err;
  }
  return sources.length === 1 ? sources[0]! : combineSources(files.join(', '), sources);
}

export async function diffusersRecipe(dir: string, o: DiffusersOptions = {}): Promise<ModelRecipe> {
  // 1. What pipeline is it?
  const indexPath = join(dir, 'model_index.json');
  const index = existsSync(indexPath) ? await readJsonObject(indexPath) : {};
  const cls = typeof index._class_name === 'string' ? index._class_name : '';
  if (/XL/.test(cls) || 'text_encoder_2' in index)
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `${dir} is an SDXL pipeline (${cls || 'text_encoder_2'}): vidprior runs SD 1.x`,
      { dir },
    );
  if (/Inpaint/.test(cls))
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `${dir} is an inpainting pipeline (${cls}): vidprior runs SD 1.x img2img models`,
      {
        dir,
      },
    );
  for (const c of ['unet', 'vae', 'text_encoder', 'tokenizer']) {
    if (!existsSync(join(dir, c)))
      throw new VidpriorError('E_MODEL_MISSING', `diffusers folder ${dir} has no ${c}/`, { dir, missing: c });
  }
  const override = await diffusersConfigOverride(dir);

  // 2. The weights of each component, renamed where old diffusers named them otherwise.
  const sources: TensorSource[] = [];
  const files: string[] = [];
  const weights = emptyWeights();
  try {
    for (const part of ['unet', 'vae', 'text_encoder'] as Part[]) {
      const list = await weightFiles(dir, part, o.variant);
      files.push(...list);
      const source = await openWeights(list);
      sources.push(source);
      for (const key of source.names()) {
        const name = part === 'vae' ? modernVaeName(key) : key;
        const attention = part === 'vae' && /\.attentions\.0\.to_(q|k|v|out\.0)\.weight$/.test(name);
        addWeight(weights, part, name, source, key, attention);
      }
    }

    // 3. The architecture: shapes, then the folder's configs.
    const arch = inferConfig(shapesOf(weights));
    applyOverride(arch, override);
    checkArchitecture(arch, dir);
    for (const c of ['unet', 'vae', 'text_encoder']) {
      const p = join(dir, c, 'config.json');
      if (existsSync(p)) files.push(p);
    }
    const tokenizerDir = join(dir, 'tokenizer');
    if (!isTokenizerDir(tokenizerDir))
      throw new VidpriorError('E_MODEL_MISSING', `${tokenizerDir} lacks vocab.json or merges.txt`, {
        dir: tokenizerDir,
      });
    const schedPath = join(dir, 'scheduler', 'scheduler_config.json');
    const hasSched = existsSync(schedPath);
    if (hasSched) files.push(schedPath);
    const variantNote = files.some((f) => f.includes('.fp16.')) ? ['weights: the fp16 variant files'] : [];
    return {
      kind: 'diffusers',
      path: dir,
      arch,
      weights,
      tokenizerDir,
      scheduler: hasSched
        ? { config: await readJsonObject(schedPath), source: schedPath }
        : { config: { ...SCHEDULER_CONFIG }, source: 'SD 1.x training schedule' },
      notes: variantNote,
      files,
      async close() {
        for (const s of sources) await s.close();
      },
    };
  } catch (err) {
    for (const s of sources) await s.close();
    throw err;
  }
}
