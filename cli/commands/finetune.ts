/**
 * `vidprior finetune`: the method's steps 2–3. A LoRA on the UNet (or, with --full, every UNet weight),
 * trained on frames spread over the clip (empty prompt) and on the edited keyframes (with the prompt, noised
 * from the original frame, trained toward the edit), at late timesteps only. Writes the adapter as
 * diffusers/peft-style safetensors, or (--full) the delta of every weight (src/training/full-delta.ts).
 *
 * `runFinetune` is the reusable part (`run` and the daemon's jobs call it).
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, extname, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { config } from '../../src/config.js';
import { VidpriorError, check } from '../../src/errors.js';
import { checkOutputPath } from '../../src/io/output-path.js';
import type { FitMode } from '../../src/io/size.js';
import type { ExecutionProviderChoice } from '../../src/runtime/types.js';
import { saveFinetuned } from '../../src/training/full-delta.js';
import {
  FINETUNE_DEFAULTS,
  FULL_FINETUNE_LR,
  type FinetuneProgress,
  finetune,
  sampleFrameIndices,
} from '../../src/training/finetune.js';
import type { Tensor } from '../../src/tensor.js';
import { makeReporter, type Reporter } from './output.js';
import { type EditSpec, checkFrameIndex, openClip, parseEdit, readEdit } from './keyframes.js';
import {
  epOption,
  FIT_OPTION,
  LORA_OPTION,
  lastValues,
  MODEL_OPTIONS,
  openModelSession,
  styledBase,
  withSigint,
} from './model-session.js';

export interface FinetuneArgs {
  input: string;
  edit: (string | EditSpec)[];
  prompt: string;
  frames: number;
  iters: number;
  /** Default: 1e-4 for LoRA, 1e-5 with --full. */
  lr?: number;
  rank: number;
  alpha?: number;
  'max-timestep': number;
  'conditional-share': number;
  convs: boolean;
  full: boolean;
  accumulate: number;
  precision: 'float32' | 'float16';
  recompute: boolean;
  /** GiB the training step may use (default: the machine's memory on CPU, unchecked on GPUs). */
  'memory-limit'?: number;
  seed: number;
  'checkpoint-every': number;
  resume: boolean;
  /** Start over although a checkpoint of an interrupted run is beside the adapter (it is replaced). */
  force?: boolean;
  output: string;
  model?: string;
  'model-config'?: string;
  dtype?: string;
  /** Style LoRAs merged before training (the adapter trains on top of them), `file.safetensors[:weight]`. */
  lora?: string[];
  ep: ExecutionProviderChoice;
  fit: FitMode;
  json: boolean;
}

export interface FinetuneCliResult {
  adapter: string;
  iterations: number;
  startIteration: number;
  finalLoss: number | null;
  validationBefore: number;
  validationAfter: number;
  secondsPerIteration: number;
  framesUsed: number[];
  edits: number;
  ep: string;
}

function checkArgs(a: FinetuneArgs): void {
  check(typeof a.prompt === 'string', 'prompt', a.prompt, 'a string');
  check(Number.isInteger(a.frames) && a.frames >= 1, 'frames', a.frames, 'a whole number ≥ 1');
  check(Number.isInteger(a.iters) && a.iters >= 1, 'iters', a.iters, 'a whole number ≥ 1');
  check(a.lr === undefined || (Number.isFinite(a.lr) && a.lr > 0), 'lr', a.lr, 'a positive number');
  check(Number.isInteger(a.accumulate) && a.accumulate >= 1, 'accumulate', a.accumulate, 'a whole number ≥ 1');
  check(
    a['memory-limit'] === undefined || (Number.isFinite(a['memory-limit']) && a['memory-limit'] > 0),
    'memory-limit',
    a['memory-limit'],
    'a positive number of GiB',
  );
  check(Number.isInteger(a.rank) && a.rank >= 1 && a.rank <= 256, 'rank', a.rank, 'a whole number from 1 to 256');
  check(a.alpha === undefined || (Number.isFinite(a.alpha) && a.alpha > 0), 'alpha', a.alpha, 'a positive number');
  check(
    Number.isInteger(a['checkpoint-every']) && a['checkpoint-every'] >= 0,
    'checkpoint-every',
    a['checkpoint-every'],
    'a whole number ≥ 0',
  );
  check(Number.isSafeInteger(a.seed) && a.seed >= 0, 'seed', a.seed, 'a whole number ≥ 0');
  if (extname(a.output).toLowerCase() !== '.safetensors') {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `--output is the adapter file and must end in .safetensors, got ${JSON.stringify(a.output)}`,
      { output: a.output },
    );
  }
}

/** Where a run's checkpoint lives: beside the adapter. */
export function checkpointPathFor(adapter: string): string {
  return resolve(`${adapter.replace(/\.safetensors$/i, '')}.checkpoint.safetensors`);
}

export async function runFinetune(
  a: FinetuneArgs,
  reporter: Reporter,
  hooks: { signal?: AbortSignal; onProgress?: (p: FinetuneProgress) => void } = {},
): Promise<FinetuneCliResult> {
  // 1. Check inputs.
  checkArgs(a);
  const edits = a.edit.map((e) => (typeof e === 'string' ? parseEdit(e) : e));
  const seen = new Set<number>();
  for (const e of edits) {
    if (seen.has(e.frame))
      throw new VidpriorError('E_BAD_REQUEST', `frame ${e.frame} is given two edits`, { edit: e.frame });
    seen.add(e.frame);
  }
  for (const e of edits) {
    if (!existsSync(e.path))
      throw new VidpriorError('E_BAD_INPUT', `edited image ${e.path} (--edit ${e.frame}=…) does not exist`, {
        edit: e.path,
      });
  }
  if (edits.length === 0)
    reporter.note(
      'no --edit given: the adapter learns the clip alone (no style); give --edit <frame>=<edited.png> for the method',
    );
  // An interrupted run left a checkpoint: continuing or starting over is the user's choice, never silent.
  const checkpointPath = checkpointPathFor(a.output);
  if (!a.resume && !a.force && existsSync(checkpointPath))
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `${checkpointPath} holds the checkpoint of an interrupted run: pass --resume to continue from it, or --force to start over (the checkpoint is replaced)`,
      { checkpoint: checkpointPath },
    );
  await checkOutputPath(a.output, 'file');
  // 2. Model, runtime, the clip at the working size.
  const session = await openModelSession(a, reporter, { training: true });
  // Training builds its own graph over the UNet's weights; the inference UNet is not needed here, and keeping
  // it would hold a second copy of the weights (3.4 GB for SD 1.5) on the device for the whole run.
  await session.model.unet.release();
  const source = await openClip(session.model, a.input, a.fit, reporter).catch(async (err) => {
    await session.close();
    throw err;
  });
  try {
    for (const e of edits) checkFrameIndex(source, e.frame, '--edit frame');
    // 3. The dataset: frames spread over the clip, and (original, edited) keyframe pairs.
    const picked = sampleFrameIndices(source.frames.length, a.frames);
    if (picked.length < a.frames)
      reporter.note(`the clip has ${source.frames.length} frames: training on all of them (asked for ${a.frames})`);
    const frames: Tensor<'float32'>[] = [];
    for (const i of picked) frames.push(await source.read(i));
    const pairs = [];
    for (const e of edits)
      pairs.push({ original: await source.read(e.frame), edited: await readEdit(source, e, reporter) });
    // 4. Train, checkpointing beside the adapter.
    const result = await finetune(
      session.runtime,
      session.model,
      { frames, edits: pairs, description: `${picked.length} frames of ${basename(a.input)}` },
      {
        prompt: a.prompt,
        iterations: a.iters,
        lr: a.lr ?? (a.full ? FULL_FINETUNE_LR : FINETUNE_DEFAULTS.lr),
        rank: a.rank,
        alpha: a.alpha,
        maxTimestep: a['max-timestep'],
        conditionalShare: a['conditional-share'],
        seed: a.seed,
        convs: a.convs,
        full: a.full,
        accumulate: a.accumulate,
        precision: a.precision,
        recompute: a.recompute,
        ...(a['memory-limit'] ? { memoryLimit: a['memory-limit'] * 2 ** 30, memoryLimitSource: '--memory-limit' } : {}),
        checkpointEvery: a['checkpoint-every'],
        checkpointPath,
        resume: a.resume,
        baseUnet: styledBase(session),
        signal: hooks.signal,
        onProgress: (p) => {
          hooks.onProgress?.(p);
          if (p.stage === 'training') {
            reporter.progress(
              { event: 'progress', ...p },
              `iteration ${p.iteration}/${p.iterations}, loss ${p.loss!.toFixed(4)} (avg ${p.emaLoss!.toFixed(4)})`,
              p.iteration / Math.max(1, p.iterations),
            );
          } else {
            reporter.progress({ event: 'progress', ...p }, p.message ?? p.stage);
          }
        },
      },
    );
    if (result.startIteration > 0) reporter.note(`resumed from the checkpoint at iteration ${result.startIteration}`);
    // 5. The adapter; the checkpoint is no longer needed.
    result.adapter.record.baseModel = session.model.dir;
    await saveFinetuned(a.output, result.adapter);
    await rm(checkpointPath, { force: true });
    return {
      adapter: resolve(a.output),
      iterations: a.iters,
      startIteration: result.startIteration,
      finalLoss: result.losses.length ? result.losses[result.losses.length - 1]! : null,
      validationBefore: result.validationBefore,
      validationAfter: result.validationAfter,
      secondsPerIteration: result.secondsPerIteration,
      framesUsed: picked,
      edits: pairs.length,
      ep: session.runtime.decision.ep,
    };
  } finally {
    await source.cleanup().catch(() => {});
    await session.close();
  }
}

/** The options `finetune` and `run` share. */
// biome-ignore lint/suspicious/noExplicitAny: yargs builders chain options on any Argv; the callers keep their own argument types
export function finetuneOptions(yargs: any): any {
  return yargs
    .option('input', {
      alias: 'i',
      type: 'string',
      demandOption: true,
      describe: 'the clip: a folder of PNG/JPEG frames or a video file',
    })
    .option('edit', {
      alias: 'e',
      type: 'string',
      array: true,
      default: [],
      describe: 'an edited keyframe: <frame-index>=<edited.png> (repeatable; 1–2 is typical)',
    })
    .option('prompt', {
      alias: 'p',
      type: 'string',
      demandOption: true,
      describe: 'the prompt the edits were made with',
    })
    .option('frames', {
      type: 'number',
      default: 30,
      describe: 'frames sampled evenly over the clip (unconditional samples)',
    })
    .option('iters', { type: 'number', default: FINETUNE_DEFAULTS.iterations, describe: 'training iterations' })
    .option('lr', {
      type: 'number',
      describe: `AdamW learning rate (default ${FINETUNE_DEFAULTS.lr}; ${FULL_FINETUNE_LR} with --full)`,
    })
    .option('rank', { type: 'number', default: FINETUNE_DEFAULTS.rank, describe: 'LoRA rank' })
    .option('alpha', { type: 'number', describe: 'LoRA alpha (scale alpha/rank); default: the rank' })
    .option('max-timestep', {
      type: 'number',
      default: FINETUNE_DEFAULTS.maxTimestep,
      describe: 'train only on timesteps below this (late, low-noise steps)',
    })
    .option('conditional-share', {
      type: 'number',
      default: FINETUNE_DEFAULTS.conditionalShare,
      describe: 'share of each epoch given to the edited keyframes',
    })
    .option('convs', { type: 'boolean', default: false, describe: 'also adapt the ResNet and projection convolutions' })
    .option('full', {
      type: 'boolean',
      default: false,
      describe: 'fine-tune every UNet weight (the method as written) instead of a LoRA; writes a weight delta',
    })
    .option('accumulate', {
      type: 'number',
      default: 1,
      describe: 'samples per optimizer step (gradient accumulation: batch N at batch 1 memory)',
    })
    .option('precision', {
      type: 'string',
      choices: ['float32', 'float16'],
      default: 'float32',
      describe: 'compute precision of training (float16: WebGPU with shader-f16; master weights stay float32)',
    })
    .option('recompute', {
      type: 'boolean',
      default: false,
      describe: 'recompute attention in the backward pass instead of keeping it (less memory, a little slower)',
    })
    .option('memory-limit', {
      type: 'number',
      default: config().memoryLimitGb,
      describe: "GiB training may use; refuses beforehand above it (default: the machine's memory on CPU)",
    })
    .option('seed', { type: 'number', default: 0, describe: 'seed of the sampling (a run is reproducible)' })
    .option('checkpoint-every', {
      type: 'number',
      default: FINETUNE_DEFAULTS.checkpointEvery,
      describe: 'iterations between checkpoints (0: none)',
    })
    .option('resume', {
      type: 'boolean',
      default: false,
      describe: 'continue from the checkpoint beside the adapter, if any',
    })
    .option('force', {
      type: 'boolean',
      default: false,
      describe: 'start over although an interrupted run left a checkpoint beside the adapter (it is replaced)',
    })
    .options(MODEL_OPTIONS)
    .option('lora', {
      ...LORA_OPTION,
      describe: `${LORA_OPTION.describe}; the adapter trains on top of them (stylize with the same --lora)`,
    })
    .option('ep', epOption())
    .option('fit', { ...FIT_OPTION, describe: 'how frames are brought to a multiple of f × 8' })
    .option('json', { type: 'boolean', default: false, describe: 'progress and result as JSON lines on stdout' });
}

export const finetuneCommand: CommandModule<object, FinetuneArgs> = {
  command: 'finetune',
  describe:
    'Steps 2–3: fine-tune a LoRA (or, --full, the whole UNet) on the clip and its edited keyframes (writes a .safetensors adapter)',
  builder: (yargs) =>
    finetuneOptions(yargs)
      .option('output', {
        alias: 'o',
        type: 'string',
        demandOption: true,
        describe: 'the adapter file to write (.safetensors)',
      })
      .example(
        '$0 finetune -i clip.mp4 --edit 0=edits/candidate-2-seed2.png -p "a watercolor painting" -o clip.safetensors',
        'fine-tune on a clip',
      ),
  handler: async (argv) => {
    const reporter = makeReporter(argv.json);
    const r = await withSigint((signal) => runFinetune(lastValues(argv, ['edit', 'lora']), reporter, { signal }));
    reporter.result(
      { ...r },
      `wrote ${r.adapter} (${r.iterations} iterations on ${r.framesUsed.length} frames + ${r.edits} edits, ` +
        `validation loss ${r.validationBefore.toFixed(4)} → ${r.validationAfter.toFixed(4)}, ${(r.secondsPerIteration * 1000).toFixed(0)} ms/iteration on ${r.ep})`,
    );
  },
};
