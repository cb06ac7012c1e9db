/**
 * `vidprior stylize --input <dir|video> --output <dir|video> --prompt <text> [...]`: img2img over every frame
 * with the same initial noise (the method's step 4). Without --model it runs the embedded default (random
 * weights, built once into the cache) and says so. Prints which execution provider it took and why.
 *
 * `runStylize` is the reusable part (the daemon's jobs and `--adapter` call it with their own UNet session);
 * the yargs handler only turns arguments into its options.
 */
import type { CommandModule } from 'yargs';
import { config } from '../../src/config.js';
import { VidpriorError } from '../../src/errors.js';
import { openFrameSink, openFrameSource } from '../../src/io/inputs.js';
import { readNpyFloat32 } from '../../src/io/npy.js';
import type { FitMode } from '../../src/io/size.js';
import type { StableDiffusionModel } from '../../src/models/types.js';
import {
  nativeSize,
  noiseShapeFor,
  sizeMultiple,
  stylizeFrames,
  type StylizeSummary,
} from '../../src/pipelines/img2img.js';
import type { ExecutionProviderChoice, Runtime, Session } from '../../src/runtime/types.js';
import { makeReporter, type Reporter } from './output.js';
import { LORA_OPTION, lastValues, MODEL_OPTIONS, openModelSession } from './model-session.js';

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
  ep: ExecutionProviderChoice;
  fit: FitMode;
  /** Short side the model works at (0: the frames' own size); absent: the model's native size for larger frames. */
  'work-size'?: number;
  json: boolean;
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
  if (!Number.isSafeInteger(a.seed)) throw bad('seed', a.seed, 'a whole number');
  if (!(Number.isInteger(a.batch) && a.batch >= 1 && a.batch <= 64))
    throw bad('batch', a.batch, 'a whole number from 1 to 64');
  const ws = a['work-size'];
  if (ws !== undefined && !(Number.isInteger(ws) && ws >= 0 && ws <= 16384))
    throw bad('work-size', ws, 'a whole number from 0 to 16384');
  if (!a.prompt && a.prompt !== '')
    throw new VidpriorError('E_BAD_REQUEST', '--prompt is required', { prompt: a.prompt });
}

export async function runStylize(a: StylizeArgs, reporter: Reporter, hooks: StylizeHooks = {}): Promise<StylizeResult> {
  checkNumbers(a);
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
        reporter.progress({ event: 'decode', frame: n, frames: total }, `decoding ${a.input}: frame ${n}/${total}`),
    });
    const work = source.plan!.working;
    if (work.width !== source.width || work.height !== source.height) {
      reporter.note(
        `frames are ${source.width}×${source.height}: the model works at ${work.width}×${work.height} (${a.fit}) and the output is brought back`,
      );
    }
    const noise = a['noise-file']
      ? await readNpyFloat32(a['noise-file'], noiseShapeFor(model, work.width, work.height))
      : undefined;
    sink = await openFrameSink(a.output, source);

    // 5. Stylize, writing each frame as soon as it is done.
    const src = source;
    const out = sink;
    let firstFrameSeconds: number | null = null;
    const summary = await stylizeFrames(
      model,
      runtime,
      {
        count: src.frames.length,
        width: work.width,
        height: work.height,
        read: (i) => src.read(i),
      },
      async (i, image) => {
        await out.write(i, image);
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
            p.phase === 'frame'
              ? `frame ${p.frame}/${p.frames} done`
              : `frames ≤${p.frame}/${p.frames}: step ${p.step}/${p.steps}`,
          ),
      },
    );
    if (summary.promptTruncated)
      reporter.note(`the prompt is longer than ${model.facts.textLength - 2} tokens: the end was dropped`);
    const written = await out.finish((n) =>
      reporter.progress({ event: 'encode', frame: n, frames: src.frames.length }, `encoding ${a.output}: frame ${n}`),
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
        describe: 'how frames whose sides are not multiples of f × 8 are brought to size (and back)',
      })
      .option('work-size', {
        type: 'number',
        describe:
          "short side the model works at, in pixels (results are scaled back; 0 = the frames' own size; default: the model's native size, 512 for SD 1.x, for larger frames)",
      })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'print progress and the result as JSON lines on stdout',
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
    }
  },
};
