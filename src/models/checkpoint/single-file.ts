/**
 * A single-file checkpoint (LDM keys, as A1111, ComfyUI and model sites share them) as a recipe: the file is
 * recognised (SD 1.x, or refused naming what it is), its keys are mapped to diffusers names (ldm-keys.ts),
 * the architecture is read from the shapes, then laid over by an LDM `.yaml` of the same name beside it and
 * by `--model-config <diffusers folder>` (which wins). Keys of no part (EMA copies, schedule buffers, the
 * VAE's training loss) are ignored and counted in a note.
 */
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { VidpriorError } from '../../errors.js';
import { SCHEDULER_CONFIG } from '../builder/folder.js';
import { inferConfig } from './architecture.js';
import { readLdmYaml } from './ldm-yaml.js';
import { LDM_CLIP, LDM_VAE, mapLdmKey, unetLayout, vaeLevels } from './ldm-keys.js';
import { applyOverride, diffusersConfigOverride, readJsonObject } from './overrides.js';
import { openTorchCheckpoint } from './torch-zip.js';
import {
  type ModelRecipe,
  addWeight,
  checkArchitecture,
  emptyWeights,
  isTokenizerDir,
  shapesOf,
  tokenizerVocabSize,
} from './recipe.js';
import { type TensorSource, openSafetensors } from './tensor-source.js';

export interface SingleFileOptions {
  /** A diffusers folder whose configs (and tokenizer, scheduler) complete the checkpoint's. */
  modelConfig?: string;
  /** Folders to look for the CLIP tokenizer in, after --model-config's (the resolver finds them). */
  tokenizerDirs?: string[];
}

export const CHECKPOINT_EXTENSIONS = ['.safetensors', '.ckpt', '.pt', '.pth', '.bin'];

/** Opens a checkpoint by its first bytes: a zip is a torch pickle archive, anything else must be safetensors. */
export async function openCheckpoint(path: string): Promise<TensorSource> {
  const head = new Uint8Array(4);
  const fh = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new VidpriorError(
      err.code === 'ENOENT' ? 'E_MODEL_MISSING' : 'E_IO',
      `cannot open checkpoint ${path}: ${err.message}`,
      { file: path },
    );
  });
  try {
    await fh.read(head, 0, 4, 0);
  } finally {
    await fh.close();
  }
  if (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return openTorchCheckpoint(path);
  if (head[0] === 0x80 && extname(path) !== '.safetensors') {
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `${path} is a legacy (pre-1.6) PyTorch pickle, which vidprior does not read: convert it to .safetensors`,
      { file: path },
    );
  }
  return openSafetensors(path);
}

/** Names what a non-SD 1.x file is, or returns null for an SD 1.x checkpoint. */
export function recogniseCheckpoint(source: TensorSource): string | null {
  const names = source.names();
  const any = (re: RegExp) => names.some((n) => re.test(n));
  if (any(/^conditioner\.embedders\./)) return 'an SDXL checkpoint (conditioner.embedders.* keys)';
  if (any(/^lora_(unet|te)\d*_|\.lora_(up|down)\.weight$|\.lora_[AB]\.weight$/))
    return 'a LoRA, not a model (lora_* keys): give it with --lora';
  if (any(/^cond_stage_model\.model\./))
    return 'an SD 2.x checkpoint (OpenCLIP ViT-H text encoder, cond_stage_model.model.*)';
  if (any(/^model\.diffusion_model\.label_emb\./)) return 'a class-conditioned model (label_emb: SDXL or an upscaler)';
  if (!any(/^model\.diffusion_model\.input_blocks\.0\.0\.weight$/)) {
    if (any(/^(encoder|decoder)\.conv_in\.weight$/)) return 'a VAE on its own, not a whole model';
    if (any(/^(down_blocks|mid_block)\./)) return 'a diffusers UNet on its own: give the whole diffusers folder';
    return 'not a Stable Diffusion checkpoint (no model.diffusion_model.* UNet keys)';
  }
  const convIn = source.info('model.diffusion_model.input_blocks.0.0.weight')!;
  const ch = convIn.dims[1];
  if (ch === 9) return 'an inpainting checkpoint (9-channel UNet input)';
  if (ch === 8) return 'an InstructPix2Pix-style checkpoint (8-channel UNet input)';
  if (!names.some((n) => n.startsWith(LDM_VAE))) return 'a UNet without its VAE (no first_stage_model.* keys)';
  if (!names.some((n) => n.startsWith(LDM_CLIP)))
    return 'a checkpoint without its CLIP text encoder (no cond_stage_model.transformer.* keys)';
  return null;
}

/** Reads the checkpoint at `path` into a recipe (tensors are read later, during the conversion). */
export async function checkpointRecipe(path: string, o: SingleFileOptions = {}): Promise<ModelRecipe> {
  const source = await openCheckpoint(path);
  try {
    // 1. What is it?
    const what = recogniseCheckpoint(source);
    if (what)
      throw new VidpriorError('E_MODEL_INPUT', `${path} is ${what}: vidprior runs SD 1.x models`, { file: path });

    // 2. LDM keys → diffusers names.
    const names = source.names();
    const layout = unetLayout(names);
    const vaeLevelCount = vaeLevels(names);
    const weights = emptyWeights();
    let ignored = 0;
    for (const key of names) {
      const m = mapLdmKey(key, layout, vaeLevelCount);
      if (!m || !addWeight(weights, m.part, m.name, source, key, m.squeeze)) ignored++;
    }
    const notes: string[] = [];
    if (ignored) notes.push(`${ignored} tensors of no SD part ignored (EMA copies, schedule buffers, ids)`);
    if (names.some((n) => n.startsWith('model_ema.')))
      notes.push(
        'the checkpoint also holds EMA weights (model_ema.*): using the model.diffusion_model.* ones, as diffusers does',
      );

    // 3. Architecture from shapes, then the yaml beside it, then --model-config.
    const arch = inferConfig(shapesOf(weights));
    const files = [path];
    let scheduler: Record<string, unknown> = { ...SCHEDULER_CONFIG };
    let schedulerSource = 'SD 1.x training schedule';
    const yamlPath = join(dirname(path), `${basename(path, extname(path))}.yaml`);
    if (existsSync(yamlPath)) {
      const y = await readLdmYaml(yamlPath);
      applyOverride(arch, y.override);
      if (Object.keys(y.scheduler).length) {
        scheduler = { ...scheduler, ...y.scheduler };
        schedulerSource = `${yamlPath} (over the SD 1.x schedule)`;
      }
      files.push(yamlPath);
      notes.push(`config from ${yamlPath}`);
    }
    let tokenizerCandidates = o.tokenizerDirs ?? [];
    if (o.modelConfig) {
      applyOverride(arch, await diffusersConfigOverride(o.modelConfig));
      const sched = join(o.modelConfig, 'scheduler', 'scheduler_config.json');
      if (existsSync(sched)) {
        scheduler = await readJsonObject(sched);
        schedulerSource = sched;
        files.push(sched);
      }
      for (const c of ['unet', 'vae', 'text_encoder']) {
        const p = join(o.modelConfig, c, 'config.json');
        if (existsSync(p)) files.push(p);
      }
      tokenizerCandidates = [join(o.modelConfig, 'tokenizer'), ...tokenizerCandidates];
    }
    checkArchitecture(arch, path);

    // 4. A single file holds no tokenizer: the first folder that has one.
    const vocab = arch.config.text_encoder.vocab_size;
    let tokenizerDir: string | undefined;
    for (const d of tokenizerCandidates) {
      if (!isTokenizerDir(d)) continue;
      if ((await tokenizerVocabSize(d)) === vocab) {
        tokenizerDir = d;
        break;
      }
      notes.push(`tokenizer ${d} skipped: its vocabulary does not have the text encoder's ${vocab} tokens`);
    }
    if (!tokenizerDir) {
      throw new VidpriorError(
        'E_MODEL_MISSING',
        `${path} holds no CLIP tokenizer and none was found: give --model-config <diffusers folder> (its tokenizer/ is used), ` +
          'put a tokenizer/ folder (vocab.json, merges.txt) beside the checkpoint, or fetch one into the Hugging Face cache ' +
          '(vidprior models pull openai/clip-vit-large-patch14)',
        { file: path, looked: tokenizerCandidates },
      );
    }
    return {
      kind: 'checkpoint',
      path,
      arch,
      weights,
      tokenizerDir,
      scheduler: { config: scheduler, source: schedulerSource },
      notes,
      files,
      close: () => source.close(),
    };
  } catch (err) {
    await source.close();
    throw err;
  }
}
