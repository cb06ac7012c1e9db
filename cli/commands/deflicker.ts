/**
 * `vidprior deflicker --original <frames|video> --processed <frames|video> --output <frames|video>`: removes the
 * flicker of any per-frame processed video (a stylization, a colorization, an img2img run…) with a Deep Video
 * Prior post-pass (src/deflicker): a U-Net trained on this video alone, from the original frames to the
 * processed ones, stopped before it learns the flicker. With `--report` it also measures E_warp of the
 * original, processed and deflickered videos and draws them side by side (src/metrics).
 *
 * `runDeflicker` is the reusable part; the yargs handler only turns arguments into its options.
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { config } from '../../src/config.js';
import { VidpriorError, check } from '../../src/errors.js';
import { DEFLICKER_DEFAULTS, type DeflickerProgress, deflicker } from '../../src/deflicker/deflicker.js';
import { type FrameSource, openFrameSink, openFrameSource } from '../../src/io/inputs.js';
import { checkReportPath } from '../../src/metrics/report.js';
import { openRuntime } from '../../src/runtime/index.js';
import type { ExecutionProviderChoice } from '../../src/runtime/types.js';
import { measureDeflicker, type DeflickerMeasurement } from './deflicker-report.js';
import { epOption, lastValues, withSigint } from './model-session.js';
import { checkOutputPath, frameOutputKind } from '../../src/io/output-path.js';
import { makeReporter, type Reporter } from './output.js';

export interface DeflickerArgs {
  original: string;
  processed: string;
  output: string;
  'working-size': number;
  width: number;
  scales: number;
  epochs: number;
  lr: number;
  batch: number;
  'apply-batch': number;
  irt: boolean;
  'irt-init-epochs': number;
  'gradient-weight': number;
  'early-stop': boolean;
  seed: number;
  'checkpoint-every': number;
  resume: boolean;
  report?: string;
  ep: ExecutionProviderChoice;
  json: boolean;
}

export interface DeflickerCliResult {
  output: string;
  frames: number;
  trainSize: string;
  outputSize: string;
  parameters: number;
  epochsRun: number;
  stoppedEarly: boolean;
  startStep: number;
  epochLosses: number[];
  psnrToProcessed: number;
  seconds: { reading: number; training: number; applying: number; total: number };
  secondsPerFrame: number;
  secondsPerMegapixel: number;
  ep: string;
  measurement?: DeflickerMeasurement;
}

/** Where a run's checkpoint lives: beside the output. */
export function deflickerCheckpointPath(output: string): string {
  const base = resolve(output.replace(/[\\/]+$/, ''));
  const ext = extname(base);
  return `${ext ? base.slice(0, -ext.length) : base}.deflicker-checkpoint.safetensors`;
}

export async function runDeflicker(
  a: DeflickerArgs,
  reporter: Reporter,
  hooks: { signal?: AbortSignal } = {},
): Promise<DeflickerCliResult> {
  const started = performance.now();
  // 1. Check what can be checked before opening anything.
  if (a.report) checkReportPath(a.report);
  check(
    Number.isInteger(a['working-size']) && a['working-size'] >= 0,
    'working-size',
    a['working-size'],
    'a whole number ≥ 0 (0 = full size)',
  );
  await checkOutputPath(a.output, frameOutputKind(a.output));
  const checkpointPath = deflickerCheckpointPath(a.output);
  if (existsSync(checkpointPath) && !a.resume) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `an interrupted run left a checkpoint at ${checkpointPath}: add --resume to continue it, or delete it to start over`,
      { checkpoint: checkpointPath },
    );
  }
  // 2. The two videos, the sink shaped like the processed one, the runtime.
  const sources: FrameSource[] = [];
  const open = async (path: string, what: string): Promise<FrameSource> => {
    const s = await openFrameSource(path, {
      onDecodeProgress: (done, total) =>
        reporter.progress(
          { event: 'decode', what, done, total },
          `decoding the ${what} video: ${done}/${total || '?'}`,
          total ? done / total : undefined,
        ),
    });
    sources.push(s);
    return s;
  };
  try {
    const original = await open(a.original, 'original');
    const processed = await open(a.processed, 'processed');
    if (original.frames.length !== processed.frames.length) {
      throw new VidpriorError(
        'E_BAD_INPUT',
        `${a.original} has ${original.frames.length} frames but ${a.processed} has ${processed.frames.length}: they must pair up frame by frame`,
      );
    }
    if (original.width !== processed.width || original.height !== processed.height)
      reporter.note(
        `the original is ${original.width}×${original.height}, the processed video ${processed.width}×${processed.height}: originals are resized to the processed size`,
      );
    const sink = await openFrameSink(a.output, processed);
    const runtime = await openRuntime({ ep: a.ep, cpuThreads: config().cpuThreads });
    reporter.note(`execution provider: ${runtime.decision.ep} (${runtime.decision.reason})`);
    let result: Awaited<ReturnType<typeof deflicker>>;
    try {
      // 3. Train and apply.
      result = await deflicker(
        runtime,
        {
          originals: original.frames.map((f) => f.path),
          processed: processed.frames.map((f) => f.path),
          width: processed.width,
          height: processed.height,
        },
        {
          width: a.width,
          scales: a.scales,
          seed: a.seed,
          irt: a.irt,
          epochs: a.epochs,
          irtInitEpochs: a['irt-init-epochs'],
          lr: a.lr,
          batch: a.batch,
          gradientWeight: a['gradient-weight'],
          gradientScales: DEFLICKER_DEFAULTS.gradientScales,
          earlyStop: a['early-stop'] ? DEFLICKER_DEFAULTS.earlyStop : null,
          checkpointEvery: a['checkpoint-every'],
          checkpointPath,
          resume: a.resume,
          workingSize: a['working-size'],
          applyBatch: a['apply-batch'],
          signal: hooks.signal,
          onProgress: (p) => reporter.progress({ event: 'progress', ...p }, describe(p), p.fraction),
        },
        async (i, frame) => {
          await sink.write(i, frame);
        },
      );
      await sink.finish();
    } catch (err) {
      await sink.abort();
      throw err;
    } finally {
      await runtime.close();
    }
    const t = result.training;
    if (t.startStep > 0) reporter.note(`resumed from the checkpoint at step ${t.startStep}`);
    if (t.stoppedEarly) reporter.note(`stopped early after epoch ${t.epochsRun}: the loss stopped improving`);
    await rm(checkpointPath, { force: true });
    const total = (performance.now() - started) / 1000;
    const n = original.frames.length;
    const megapixels = (n * processed.width * processed.height) / 1e6;
    const out: DeflickerCliResult = {
      output: resolve(a.output),
      frames: n,
      trainSize: `${result.trainSize.width}x${result.trainSize.height}`,
      outputSize: `${result.outputSize.width}x${result.outputSize.height}`,
      parameters: t.parameters,
      epochsRun: t.epochsRun,
      stoppedEarly: t.stoppedEarly,
      startStep: t.startStep,
      epochLosses: t.epochLosses,
      psnrToProcessed: result.psnrToProcessed,
      seconds: { ...result.seconds, total },
      secondsPerFrame: total / n,
      secondsPerMegapixel: total / megapixels,
      ep: runtime.decision.ep,
    };
    // 4. The report: E_warp of the three videos on the original's flow, side by side.
    if (a.report) {
      out.measurement = await measureDeflicker(
        { original: a.original, processed: a.processed, deflickered: a.output, report: a.report },
        result.psnrToProcessed,
        reporter,
      );
    }
    return out;
  } finally {
    for (const s of sources) await s.cleanup().catch(() => {});
  }
}

function describe(p: DeflickerProgress): string {
  if (p.stage === 'training')
    return `training: epoch ${p.epoch}/${p.epochs}, step ${p.step}/${p.steps}, loss ${p.loss!.toFixed(4)}`;
  if (p.stage === 'reading' || p.stage === 'applying') return `${p.stage}: frame ${p.frame}/${p.frames}`;
  return p.message ?? p.stage;
}

export const deflickerCommand: CommandModule<object, DeflickerArgs> = {
  command: 'deflicker',
  describe: 'Remove the flicker of a per-frame processed video (Deep Video Prior, trained on this video alone)',
  builder: (yargs) =>
    yargs
      .option('original', {
        type: 'string',
        demandOption: true,
        describe: 'the original video: a folder of frames or a video file',
      })
      .option('processed', {
        type: 'string',
        demandOption: true,
        describe: 'the flickering processed version of it, frame for frame (a folder or a video file)',
      })
      .option('output', {
        alias: 'o',
        type: 'string',
        demandOption: true,
        describe: 'where the result goes: a folder of PNGs or a video file',
      })
      .option('working-size', {
        type: 'number',
        default: DEFLICKER_DEFAULTS.workingSize,
        describe: 'train at this short side (faster; the result is still made at full size); 0 = full size',
      })
      .option('width', {
        type: 'number',
        default: DEFLICKER_DEFAULTS.width,
        describe: 'U-Net width (channels at full scale; DVP: 32)',
      })
      .option('scales', { type: 'number', default: DEFLICKER_DEFAULTS.scales, describe: 'U-Net scales (DVP: 5)' })
      .option('epochs', {
        type: 'number',
        default: DEFLICKER_DEFAULTS.epochs,
        describe: 'epochs over the frames (DVP: 25)',
      })
      .option('lr', { type: 'number', default: DEFLICKER_DEFAULTS.lr, describe: 'Adam learning rate' })
      .option('batch', { type: 'number', default: DEFLICKER_DEFAULTS.batch, describe: 'frames per training step' })
      .option('apply-batch', {
        type: 'number',
        default: DEFLICKER_DEFAULTS.applyBatch,
        describe: 'frames per run when applying',
      })
      .option('irt', {
        type: 'boolean',
        default: false,
        describe: 'iteratively reweighted training: for processing that flips between two results (e.g. two colours)',
      })
      .option('irt-init-epochs', {
        type: 'number',
        default: DEFLICKER_DEFAULTS.irtInitEpochs,
        describe: 'with --irt: first epochs on the first frame only (DVP: 5)',
      })
      .option('gradient-weight', {
        type: 'number',
        default: DEFLICKER_DEFAULTS.gradientWeight,
        describe: 'weight of the multi-scale image-gradient loss beside L1 (keeps edges and texture; 0 = L1 only)',
      })
      .option('early-stop', {
        type: 'boolean',
        default: true,
        describe: 'stop when the loss plateaus (3 epochs under 2 % better); --no-early-stop trains every epoch',
      })
      .option('seed', {
        type: 'number',
        default: 0,
        describe: 'seed of the weights and the frame order (a run is reproducible)',
      })
      .option('checkpoint-every', {
        type: 'number',
        default: 0,
        describe: 'also checkpoint every N steps (checkpoints are written at every epoch end anyway)',
      })
      .option('resume', {
        type: 'boolean',
        default: false,
        describe: 'continue an interrupted run from its checkpoint',
      })
      .option('report', {
        type: 'string',
        describe: 'also measure E_warp and write a side-by-side report (.html, .png or .svg)',
      })
      .option('ep', epOption())
      .option('json', { type: 'boolean', default: false, describe: 'progress and result as JSON lines on stdout' })
      .example(
        '$0 deflicker --original clip.mp4 --processed styled.mp4 --output steady.mp4 --working-size 240 --report cmp.html',
        'train at 240p, write the full-size result and a report',
      ) as never,
  handler: async (argv) => {
    const reporter = makeReporter(argv.json);
    const r = await withSigint((signal) => runDeflicker(lastValues(argv), reporter, { signal }));
    const m = r.measurement;
    const table = m
      ? `\nE_warp original ${m.original.toFixed(5)}, processed ${m.processed.toFixed(5)}, deflickered ${m.deflickered.toFixed(5)} (${(m.deflickered / m.processed).toFixed(2)}× processed)`
      : '';
    reporter.result(
      { ...r },
      `wrote ${r.output}: ${r.frames} frames at ${r.outputSize} (trained at ${r.trainSize}, ${r.epochsRun} epochs${r.stoppedEarly ? ', stopped early' : ''}), ` +
        `PSNR to processed ${r.psnrToProcessed.toFixed(2)} dB; ${r.seconds.total.toFixed(0)} s on ${r.ep} ` +
        `(${r.secondsPerFrame.toFixed(1)} s/frame, ${r.secondsPerMegapixel.toFixed(1)} s/megapixel)${table}`,
    );
  },
};
