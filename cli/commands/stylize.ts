/**
 * `vidprior stylize --input <dir|video> --output <dir|video> --prompt <text> [...]`: img2img over every frame
 * with the same initial noise (the method's step 4). Without --model it runs the embedded default (random
 * weights, built once into the cache) and says so. Prints which execution provider it took and why.
 *
 * `runStylize` is the reusable part (the daemon's jobs and `--adapter` call it with their own UNet session);
 * the yargs handler only turns arguments into its options.
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { CommandModule } from 'yargs';
import { VidpriorError } from '../../src/errors.js';
import {
  type FrameSink,
  type FrameSource,
  openFrameSink,
  openFrameSource,
  outputFrameName,
} from '../../src/io/inputs.js';
import { readNpyFloat32 } from '../../src/io/npy.js';
import { checkOutputPath, frameOutputKind } from '../../src/io/output-path.js';
import type { FitMode } from '../../src/io/size.js';
import type { StableDiffusionModel } from '../../src/models/types.js';
import {
  nativeSize,
  noiseShapeFor,
  sizeMultiple,
  stylizeFrames,
  type StylizeProgress,
  type StylizeSummary,
} from '../../src/pipelines/img2img.js';
import type { ExecutionProviderChoice, Runtime, Session } from '../../src/runtime/types.js';
import { makeReporter, type Reporter } from './output.js';
import { checkFramesFit, memoryLimitOption } from './memory-limit.js';
import { epOption, FIT_OPTION, LORA_OPTION, lastValues, MODEL_OPTIONS, openModelSession } from './model-session.js';

export interface StylizeArgs {
  input: string;
  output: string;
  prompt: string;
  'negative-prompt': string;
  model?: string;
  'model-config'?: string;
  dtype?: string;
  /** A LoRA adapter (.safetensors) folded into the UNet. */
  adapter?: string;
  /** Style LoRAs, `file.safetensors[:weight]`. */
  lora?: string[];
  strength: number;
  steps: number;
  guidance: number;
  seed: number;
  'noise-file'?: string;
  batch: number;
  /** Frame rate of a video output (default: the input video's, else 24). */
  fps?: number;
  ep: ExecutionProviderChoice;
  fit: FitMode;
  /** Short side the model works at (0: the frames' own size); absent: the model's native size for larger frames. */
  'work-size'?: number;
  /** GiB the run may use, weights included (default: the machine's memory on CPU; cli/commands/memory-limit.ts). */
  'memory-limit'?: number;
  json: boolean;
  /** Only frames START-END (0-based, inclusive) of the input, still named and noised as in the whole clip. */
  'frame-range'?: string;
  /** Leave frames whose output file exists (a requeued farm task redoes only the missing ones). */
  'skip-existing'?: boolean;
}

export interface StylizeHooks {
  /** Makes the UNet to run from the loaded model (e.g. with a LoRA adapter applied); default: the model's. */
  unet?: (model: StableDiffusionModel, runtime: Runtime) => Promise<Session>;
  signal?: AbortSignal;
}

export interface StylizeResult extends StylizeSummary {
  /** width/height: the frames' own size (the output's); workWidth/workHeight: the size the model ran at. */
  workWidth: number;
  workHeight: number;
  output: string;
  model: string;
  ep: string;
  epReason: string;
  framesPerSecond: number;
  /** The UNet graph that ran ('original' = the folder's own; see src/models/inference-unet.ts). */
  unetVariant: string;
  /** Seconds to a loaded model (sessions, graph optimization) and, from the process start, to the first frame. */
  loadSeconds: number;
  firstFrameSeconds: number | null;
}

/**
 * The frames a progress event of the pipeline is about: batches start at multiples of `batch` and `frame` is
 * the last frame of the batch (1-based), so the batch is first+1..frame.
 */
function batchOf(p: StylizeProgress, batch: number): { first: number; last: number } {
  const first = Math.floor((Math.max(1, p.frame) - 1) / Math.max(1, batch)) * Math.max(1, batch);
  return { first: first + 1, last: p.frame };
}

/** "frame 7/40, step 2/4" (or "frames 5–8/40, step 2/4" for a batch); "frame 7/40 done" when written. */
export function describeStylizeProgress(p: StylizeProgress, batch: number): string {
  if (p.phase === 'frame') return `frame ${p.frame}/${p.frames} done`;
  const { first, last } = batchOf(p, batch);
  const which = first === last ? `frame ${last}/${p.frames}` : `frames ${first}–${last}/${p.frames}`;
  return p.phase === 'encode' ? `${which}, encoding` : `${which}, step ${p.step}/${p.steps}`;
}

/** The share of all frames' work done, counting the steps of the batch being denoised. */
export function stylizeFraction(p: StylizeProgress, batch: number): number {
  if (p.phase === 'frame') return p.frame / Math.max(1, p.frames);
  const { first, last } = batchOf(p, batch);
  const inBatch = last - first + 1;
  return (first - 1 + (inBatch * p.step) / Math.max(1, p.steps)) / Math.max(1, p.frames);
}

/** Seeds are unsigned 32-bit numbers (protocol/params.ts). */
export const MAX_SEED = 2 ** 32 - 1;

/** Number arguments checked before anything is loaded, so a typo fails in milliseconds. */
function checkNumbers(a: StylizeArgs): void {
  const bad = (name: string, value: number, expected: string): VidpriorError =>
    new VidpriorError(
      'E_BAD_REQUEST',
      `--${name} must be ${expected}, got ${Number.isNaN(value) ? 'not a number' : value}`,
      { [name]: value },
    );
  if (!(a.strength > 0 && a.strength <= 1)) throw bad('strength', a.strength, 'a number in (0, 1]');
  if (!(Number.isInteger(a.steps) && a.steps >= 1)) throw bad('steps', a.steps, 'a whole number ≥ 1');
  if (!(Number.isFinite(a.guidance) && a.guidance >= 0)) throw bad('guidance', a.guidance, 'a number ≥ 0');
  // The protocol's range (PROTOCOL.md §6): the daemon and the CLI take the same seeds.
  if (!(Number.isInteger(a.seed) && a.seed >= 0 && a.seed <= MAX_SEED))
    throw bad('seed', a.seed, `a whole number from 0 to ${MAX_SEED}`);
  if (a.fps !== undefined && !(Number.isFinite(a.fps) && a.fps > 0 && a.fps <= 1000))
    throw bad('fps', a.fps, 'a number of frames per second in (0, 1000]');
  if (!(Number.isInteger(a.batch) && a.batch >= 1 && a.batch <= 64))
    throw bad('batch', a.batch, 'a whole number from 1 to 64');
  const ws = a['work-size'];
  if (ws !== undefined && !(Number.isInteger(ws) && ws >= 0 && ws <= 16384))
    throw bad('work-size', ws, 'a whole number from 0 to 16384');
  const gb = a['memory-limit'];
  if (gb !== undefined && !(Number.isFinite(gb) && gb > 0)) throw bad('memory-limit', gb, 'a number of GiB > 0');
  if (!a.prompt && a.prompt !== '')
    throw new VidpriorError('E_BAD_REQUEST', '--prompt is required', { prompt: a.prompt });
}

/** `--frame-range START-END` → [start, end] (0-based, inclusive), checked against the clip once it is open. */
export function parseFrameRange(value: string): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(value.trim());
  if (!m || Number(m[1]) > Number(m[2]))
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `--frame-range must be START-END (0-based, START ≤ END), e.g. 0-24; got ${JSON.stringify(value)}`,
      { 'frame-range': value },
    );
  return [Number(m[1]), Number(m[2])];
}

/**
 * The input frames to stylize: all, or a range of them, less those already written with --skip-existing. Each
 * keeps its index in the clip, so its output name and its noise are the whole clip's.
 */
function framesToStylize(a: StylizeArgs, source: FrameSource, sink: FrameSink): number[] {
  const count = source.frames.length;
  let [first, last] = [0, count - 1];
  if (a['frame-range'] !== undefined) {
    [first, last] = parseFrameRange(a['frame-range']);
    if (last >= count)
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `--frame-range ${a['frame-range']} is outside the clip's frames 0..${count - 1} (${source.path})`,
        { 'frame-range': a['frame-range'] },
      );
  }
  const partial = a['frame-range'] !== undefined || a['skip-existing'];
  if (partial && sink.kind !== 'folder')
    throw new VidpriorError(
      'E_BAD_REQUEST',
      '--frame-range and --skip-existing write some frames of a clip: give a folder as --output, not a video',
      { output: a.output },
    );
  const indices: number[] = [];
  for (let i = first; i <= last; i++) {
    if (a['skip-existing'] && existsSync(join(sink.path, outputFrameName(source.frames[i]!.name)))) continue;
    indices.push(i);
  }
  return indices;
}

export async function runStylize(a: StylizeArgs, reporter: Reporter, hooks: StylizeHooks = {}): Promise<StylizeResult> {
  checkNumbers(a);
  // 0. The output must be possible before anything is loaded or decoded.
  await checkOutputPath(a.output, frameOutputKind(a.output));
  // 1–3. Model folder, runtime, model (with --adapter merged into its UNet).
  const session = await openModelSession(a, reporter);
  const { runtime, model } = session;
  let unet: Session | null = null;
  let source: Awaited<ReturnType<typeof openFrameSource>> | null = null;
  let sink: Awaited<ReturnType<typeof openFrameSink>> | null = null;
  try {
    if (hooks.unet) {
      const made = await hooks.unet(model, runtime);
      unet = made === model.unet ? null : made;
    }

    // 4. Frames in (folder, image or video; brought to a multiple of f × 8) and out (named like the inputs).
    source = await openFrameSource(a.input, {
      multiple: sizeMultiple(model),
      nativeSize: nativeSize(model),
      workSize: a['work-size'],
      fit: a.fit,
      onDecodeProgress: (n, total) =>
        reporter.progress(
          { event: 'decode', frame: n, frames: total },
          `decoding ${basename(a.input)}: frame ${n}/${total}`,
          n / Math.max(1, total),
        ),
    });
    const work = source.plan!.working;
    await checkFramesFit(a, model, runtime, source.plan!);
    if (work.width !== source.width || work.height !== source.height) {
      reporter.note(
        `frames are ${source.width}×${source.height}: the model works at ${work.width}×${work.height} (${a.fit}) and the output is brought back`,
      );
    }
    const noise = a['noise-file']
      ? await readNpyFloat32(a['noise-file'], noiseShapeFor(model, work.width, work.height))
      : undefined;
    sink = await openFrameSink(a.output, source, a.fps !== undefined ? { fps: a.fps } : {});
    const todo = framesToStylize(a, source, sink);
    if (todo.length < source.frames.length)
      reporter.note(`stylizing ${todo.length} of the clip's ${source.frames.length} frames`);

    // 5. Stylize, writing each frame as soon as it is done (nothing to do when every frame asked for exists).
    const src = source;
    const out = sink;
    let firstFrameSeconds: number | null = null;
    const summary =
      todo.length === 0
        ? nothingToDo(a, model, work)
        : await stylizeFrames(
            model,
            runtime,
            {
              count: todo.length,
              width: work.width,
              height: work.height,
              read: (k) => src.read(todo[k]!),
            },
            async (k, image) => {
              await out.write(todo[k]!, image);
              firstFrameSeconds ??= performance.now() / 1000; // since the process started
            },
            {
              prompt: a.prompt,
              negativePrompt: a['negative-prompt'],
              strength: a.strength,
              steps: a.steps,
              guidance: a.guidance,
              seed: a.seed,
              noise,
              batch: a.batch,
              unet: unet ?? undefined,
              signal: hooks.signal,
              onProgress: (p) =>
                reporter.progress(
                  { event: 'progress', ...p, seconds: Math.round(performance.now()) / 1000 }, // since the process started
                  describeStylizeProgress(p, a.batch),
                  stylizeFraction(p, a.batch),
                ),
            },
          );
    if (summary.promptTruncated)
      reporter.note(`the prompt is longer than ${model.facts.textLength - 2} tokens: the end was dropped`);
    const written = await out.finish((n) =>
      reporter.progress(
        { event: 'encode', frame: n, frames: src.frames.length },
        `encoding ${basename(a.output)}: frame ${n}/${src.frames.length}`,
        n / src.frames.length,
      ),
    );
    sink = null;
    return {
      ...summary,
      width: src.width,
      height: src.height,
      workWidth: summary.width,
      workHeight: summary.height,
      output: written,
      model: model.dir,
      ep: runtime.decision.ep,
      epReason: runtime.decision.reason,
      framesPerSecond: summary.frames / Math.max(summary.seconds, 1e-9),
      unetVariant: hooks.unet ? 'hook' : session.unetVariant,
      loadSeconds: session.loadSeconds,
      firstFrameSeconds,
    };
  } finally {
    await sink?.abort().catch(() => {});
    await source?.cleanup().catch(() => {});
    await unet?.release().catch(() => {}); // the hook's, never released by the loader
    await session.close();
  }
}

/** The summary of a range whose frames were all written already. */
function nothingToDo(
  a: StylizeArgs,
  model: StableDiffusionModel,
  work: { width: number; height: number },
): StylizeSummary {
  return {
    frames: 0,
    width: work.width,
    height: work.height,
    noiseShape: noiseShapeFor(model, work.width, work.height),
    steps: 0,
    timesteps: [],
    guidance: a.guidance > 1,
    batch: a.batch,
    loop: 'host',
    promptTruncated: false,
    seconds: 0,
    timings: { prompt: 0, read: 0, encode: 0, denoise: 0, decode: 0, sink: 0, firstFrame: null },
  };
}

/** Seconds to the millisecond, for the result line. */
const ms = (seconds: number): number => Math.round(seconds * 1000) / 1000;

export const stylizeCommand: CommandModule<object, StylizeArgs> = {
  command: 'stylize',
  describe: 'Stylize every frame with img2img and the same noise (folder of PNG/JPEG or a video in and out)',
  builder: (yargs) =>
    yargs
      .option('input', {
        alias: 'i',
        type: 'string',
        demandOption: true,
        describe: 'a folder of PNG/JPEG frames, an image, or a video file',
      })
      .option('output', {
        alias: 'o',
        type: 'string',
        demandOption: true,
        describe: 'a folder (PNGs named like the inputs) or a video file (.mp4, .mov, .mkv, .webm…)',
      })
      .option('prompt', {
        alias: 'p',
        type: 'string',
        demandOption: true,
        describe: 'what the frames should look like',
      })
      .option('negative-prompt', {
        type: 'string',
        default: '',
        describe: 'what to steer away from (with guidance > 1)',
      })
      .options(MODEL_OPTIONS)
      .option('adapter', {
        type: 'string',
        describe: 'a LoRA adapter (.safetensors) from `vidprior finetune` (or another SD 1.x tool)',
      })
      .option('lora', LORA_OPTION)
      .option('strength', { type: 'number', default: 0.45, describe: 'how much of the schedule runs, in (0, 1]' })
      .option('steps', { type: 'number', default: 50, describe: 'DDIM steps before strength (strength × steps run)' })
      .option('guidance', { type: 'number', default: 7.5, describe: 'classifier-free guidance scale (≤ 1: none)' })
      .option('seed', { type: 'number', default: 0, describe: 'seed of the initial noise (one noise for all frames)' })
      .option('noise-file', {
        type: 'string',
        describe: 'the initial noise as a .npy float32 array [1, C, H/f, W/f] (overrides --seed)',
      })
      .option('batch', { type: 'number', default: 1, describe: 'frames per UNet run (×2 with guidance)' })
      .option('fps', {
        type: 'number',
        describe: "frame rate of a video output (default: the input video's, else 24)",
      })
      .option('ep', epOption())
      .option('fit', FIT_OPTION)
      .option('work-size', {
        type: 'number',
        describe:
          "short side the model works at, in pixels (results are scaled back; 0 = the frames' own size; default: the model's native size, 512 for SD 1.x, for larger frames)",
      })
      .option('memory-limit', memoryLimitOption())
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'print progress and the result as JSON lines on stdout',
      })
      .option('frame-range', {
        type: 'string',
        describe: 'only frames START-END (0-based, inclusive), named and noised as in the whole clip (folder output)',
      })
      .option('skip-existing', {
        type: 'boolean',
        default: false,
        describe: 'leave frames whose output PNG exists (resuming an interrupted run; folder output)',
      })
      .example(
        '$0 stylize -i frames/ -o out/ -p "a watercolor painting" --model ./sd15-onnx',
        'stylize a folder of frames',
      )
      .example(
        '$0 stylize -i clip.mp4 -o styled.mp4 -p "oil painting" --strength 0.325 --noise-file noise.npy',
        'a video, with a given noise',
      )
      .example(
        '$0 stylize -i clip.mp4 -o styled.mp4 -p "ink sketch" --lora ink.safetensors:0.8 --lora detail.safetensors',
        'with two style LoRAs (kohya or diffusers files), the first at 0.8',
      ) as never,
  handler: async (argv) => {
    const reporter = makeReporter(argv.json);
    const abort = new AbortController();
    const onSigint = (): void => abort.abort();
    process.once('SIGINT', onSigint);
    process.once('SIGTERM', onSigint); // scancel, preemption: stop at the next step and clean up
    try {
      const r = await runStylize(lastValues(argv, ['lora']), reporter, { signal: abort.signal });
      reporter.result(
        {
          output: r.output,
          frames: r.frames,
          width: r.width,
          height: r.height,
          workWidth: r.workWidth,
          workHeight: r.workHeight,
          noiseShape: r.noiseShape,
          steps: r.steps,
          guidance: r.guidance,
          batch: r.batch,
          loop: r.loop,
          ep: r.ep,
          seconds: r.seconds,
          framesPerSecond: r.framesPerSecond,
          model: r.model,
          unetVariant: r.unetVariant,
          loadSeconds: ms(r.loadSeconds),
          firstFrameSeconds: r.firstFrameSeconds === null ? null : ms(r.firstFrameSeconds),
          timings: Object.fromEntries(Object.entries(r.timings).map(([k, v]) => [k, v === null ? null : ms(v)])),
        },
        `wrote ${r.frames} frame${r.frames === 1 ? '' : 's'} to ${r.output} (${r.ep}, ${r.seconds.toFixed(1)} s, ${r.framesPerSecond.toFixed(2)} frames/s)`,
      );
    } finally {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigint);
    }
  },
};
