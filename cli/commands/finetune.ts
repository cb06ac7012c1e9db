/**
 * `vidprior finetune`: the method's steps 2–3. A LoRA on the UNet, trained on frames spread over the clip
 * (empty prompt) and on the edited keyframes (with the prompt, noised from the original frame, trained
 * toward the edit), at late timesteps only. Writes the adapter as diffusers/peft-style safetensors.
 *
 * `runFinetune` is the reusable part (`run` and the daemon's jobs call it).
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, extname, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { config } from '../../src/config.js';
import { VidpriorError, check } from '../../src/errors.js';
import type { FitMode } from '../../src/io/size.js';
import type { ExecutionProviderChoice } from '../../src/runtime/types.js';
import { saveAdapter } from '../../src/training/adapter.js';
import { FINETUNE_DEFAULTS, type FinetuneProgress, finetune, sampleFrameIndices } from '../../src/training/finetune.js';
import type { Tensor } from '../../src/tensor.js';
import { makeReporter, type Reporter } from './output.js';
import { type EditSpec, checkFrameIndex, openClip, parseEdit, readEdit } from './keyframes.js';
import { lastValues, MODEL_OPTIONS, openModelSession, withSigint } from './model-session.js';

export interface FinetuneArgs {
  input: string;
  edit: (string | EditSpec)[];
  prompt: string;
  frames: number;
  iters: number;
  lr: number;
  rank: number;
  alpha?: number;
  'max-timestep': number;
  'conditional-share': number;
  convs: boolean;
  seed: number;
  'checkpoint-every': number;
  resume: boolean;
  output: string;
  model?: string;
  'model-config'?: string;
  dtype?: string;
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
  check(Number.isFinite(a.lr) && a.lr > 0, 'lr', a.lr, 'a positive number');
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
  // 2. Model, runtime, the clip at the working size.
  const session = await openModelSession(a, reporter);
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
    const checkpointPath = checkpointPathFor(a.output);
    const result = await finetune(
      session.runtime,
      session.model,
      { frames, edits: pairs, description: `${picked.length} frames of ${basename(a.input)}` },
      {
        prompt: a.prompt,
        iterations: a.iters,
        lr: a.lr,
        rank: a.rank,
        alpha: a.alpha,
        maxTimestep: a['max-timestep'],
        conditionalShare: a['conditional-share'],
        seed: a.seed,
        convs: a.convs,
        checkpointEvery: a['checkpoint-every'],
        checkpointPath,
        resume: a.resume,
        signal: hooks.signal,
        onProgress: (p) => {
          hooks.onProgress?.(p);
          if (p.stage === 'training') {
            const eta = p.etaSeconds !== undefined ? `, ETA ${Math.ceil(p.etaSeconds)} s` : '';
            reporter.progress(
              { event: 'progress', ...p },
              `iteration ${p.iteration}/${p.iterations}: loss ${p.loss!.toFixed(4)} (avg ${p.emaLoss!.toFixed(4)})${eta}`,
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
    await saveAdapter(a.output, result.adapter);
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
    .option('lr', { type: 'number', default: FINETUNE_DEFAULTS.lr, describe: 'AdamW learning rate' })
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
    .options(MODEL_OPTIONS)
    .option('ep', {
      type: 'string',
      choices: ['auto', 'cuda', 'webgpu', 'cpu'],
      default: config().ep,
      describe: 'execution provider',
    })
    .option('fit', {
      type: 'string',
      choices: ['resize', 'pad'],
      default: 'resize',
      describe: 'how frames are brought to a multiple of f × 8',
    })
    .option('json', { type: 'boolean', default: false, describe: 'progress and result as JSON lines on stdout' });
}

export const finetuneCommand: CommandModule<object, FinetuneArgs> = {
  command: 'finetune',
  describe: 'Steps 2–3: fine-tune a LoRA on the clip and its edited keyframes (writes a .safetensors adapter)',
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
    const r = await withSigint((signal) => runFinetune(lastValues(argv, ['edit']), reporter, { signal }));
    reporter.result(
      { ...r },
      `wrote ${r.adapter} (${r.iterations} iterations on ${r.framesUsed.length} frames + ${r.edits} edits, ` +
        `validation loss ${r.validationBefore.toFixed(4)} → ${r.validationAfter.toFixed(4)}, ${(r.secondsPerIteration * 1000).toFixed(0)} ms/iteration on ${r.ep})`,
    );
  },
};
