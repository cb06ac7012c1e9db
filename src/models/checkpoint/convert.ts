/**
 * A recipe → a diffusers ONNX model folder (the layout src/models/folder.ts loads): the project's builder
 * makes each graph without weights, then every parameter is read from the checkpoint, laid out
 * (bind.ts) and streamed to disk before the next one is read, so converting holds about one tensor at a time
 * (models over 256 MiB per component keep their weights in model.onnx.data). Initializers keep the diffusers
 * parameter names (`down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight`, stored [in, out]).
 *
 * Every tensor the graphs need is checked (present, right size) before anything is written; the folder is
 * built under a temporary name and renamed into place complete.
 */
import { copyFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { VidpriorError } from '../../errors.js';
import { COMPONENTS, type Component } from '../folder.js';
import { BUILDER_VERSION, buildComponent } from '../builder/index.js';
import { AUTO_EXTERNAL_BYTES, MODEL_INDEX, componentConfig } from '../builder/folder.js';
import type { FloatType } from '../builder/net.js';
import { paramCount } from '../builder/weights.js';
import { writeBuiltGraph } from '../builder/write-graph.js';
import { bindParameter, mismatch } from './bind.js';
import type { Part } from './ldm-keys.js';
import type { ModelRecipe } from './recipe.js';

/** Bump when converted folders change (graphs, naming, files), so caches rebuild instead of reusing them. */
export const CONVERTER_VERSION = 1;

export const PART_OF: Record<Component, Part> = {
  text_encoder: 'text_encoder',
  unet: 'unet',
  vae_encoder: 'vae',
  vae_decoder: 'vae',
};

export interface ConvertOptions {
  dtype?: FloatType;
  opset?: number;
  /** Extra fields for vidprior-model.json (the source, its hash…). */
  provenance?: Record<string, unknown>;
  onProgress?: (e: { component: Component; index: number; total: number; parameters: number; seconds: number }) => void;
}

export interface ConvertedModel {
  dir: string;
  parameters: Record<Component, number>;
  bytes: Record<Component, number>;
  seconds: number;
  /** Tensors of the checkpoint no graph used (beyond the ignored junk keys). */
  unused: string[];
}

let tmpCounter = 0;

const TOKENIZER_FILES = ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json'];

/** Builds the ONNX folder `dir` from `recipe` (dir must not exist; its parent is created). */
export async function convertRecipe(recipe: ModelRecipe, dir: string, o: ConvertOptions = {}): Promise<ConvertedModel> {
  const started = performance.now();
  const dtype = o.dtype ?? 'float32';
  const opset = o.opset ?? 17;
  const cfg = recipe.arch.config;

  // 1. Build the graphs (no weights) and check every parameter against the checkpoint first.
  const built = COMPONENTS.map((c) => ({ c, g: buildComponent(c, cfg, { weights: 'none', dtype, opset }) }));
  const used = new Set<string>();
  for (const { c, g } of built) {
    const weights = recipe.weights[PART_OF[c]];
    for (const spec of g.params.values()) {
      const ref = weights.get(spec.name);
      if (!ref) {
        throw new VidpriorError(
          'E_MODEL_INPUT',
          `${recipe.path} has no weight for ${PART_OF[c]} parameter ${spec.name} (the architecture read from it needs one)`,
          { file: recipe.path, parameter: spec.name },
        );
      }
      const why = mismatch(spec, ref);
      if (why) throw new VidpriorError('E_MODEL_INPUT', why, { file: recipe.path, parameter: spec.name });
      used.add(`${PART_OF[c]}:${spec.name}`);
    }
  }
  const unused: string[] = [];
  for (const part of ['unet', 'vae', 'text_encoder'] as Part[])
    for (const name of recipe.weights[part].keys()) if (!used.has(`${part}:${name}`)) unused.push(`${part}:${name}`);

  // 2. Write each graph, streaming its weights, into a temporary sibling folder.
  await mkdir(dirname(dir), { recursive: true });
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}-${Date.now()}-${++tmpCounter}`);
  await mkdir(tmp);
  try {
    const parameters = {} as Record<Component, number>;
    const bytes = {} as Record<Component, number>;
    for (const [index, { c, g }] of built.entries()) {
      const t0 = performance.now();
      parameters[c] = paramCount(g.params.values());
      const weights = recipe.weights[PART_OF[c]];
      await mkdir(join(tmp, c));
      bytes[c] = await writeBuiltGraph(g, join(tmp, c, 'model.onnx'), {
        seed: 0,
        dtype,
        externalData: parameters[c] * (dtype === 'float16' ? 2 : 4) > AUTO_EXTERNAL_BYTES,
        values: (spec) => bindParameter(spec, weights.get(spec.name)!, dtype),
      });
      await writeFile(join(tmp, c, 'config.json'), `${JSON.stringify(componentConfig(c, cfg, dtype), null, 2)}\n`);
      o.onProgress?.({
        component: c,
        index,
        total: COMPONENTS.length,
        parameters: parameters[c],
        seconds: (performance.now() - t0) / 1000,
      });
    }

    // 3. Tokenizer, scheduler, index, provenance.
    await mkdir(join(tmp, 'tokenizer'));
    for (const f of TOKENIZER_FILES) {
      const from = join(recipe.tokenizerDir, f);
      if (existsSync(from)) await copyFile(from, join(tmp, 'tokenizer', f));
    }
    await mkdir(join(tmp, 'scheduler'));
    await writeFile(
      join(tmp, 'scheduler', 'scheduler_config.json'),
      `${JSON.stringify(recipe.scheduler.config, null, 2)}\n`,
    );
    await writeFile(join(tmp, 'model_index.json'), `${JSON.stringify(MODEL_INDEX, null, 2)}\n`);
    await writeFile(
      join(tmp, 'vidprior-model.json'),
      `${JSON.stringify(
        {
          converted_from: recipe.path,
          kind: recipe.kind,
          ...o.provenance,
          builder_version: BUILDER_VERSION,
          converter_version: CONVERTER_VERSION,
          opset,
          dtype,
          parameters,
          scheduler_source: recipe.scheduler.source,
          tokenizer_source: recipe.tokenizerDir,
          notes: recipe.notes,
          unused,
          config: cfg,
          sources: recipe.arch.sources,
        },
        null,
        2,
      )}\n`,
    );

    // 4. Into place; another process that finished the same folder first wins (same content).
    try {
      await rename(tmp, dir);
    } catch (err) {
      if (!existsSync(join(dir, 'vidprior-model.json'))) throw err;
      await rm(tmp, { recursive: true, force: true });
    }
    return { dir, parameters, bytes, seconds: (performance.now() - started) / 1000, unused };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (err instanceof VidpriorError) throw err;
    throw new VidpriorError(
      'E_IO',
      `converting ${recipe.path} into ${dir} failed: ${(err as Error).message}`,
      {
        file: recipe.path,
      },
      { cause: err },
    );
  }
}
