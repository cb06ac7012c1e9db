/**
 * `vidprior edit-keyframe`: the method's step 1. img2img of one frame at high strength (0.75) with the prompt,
 * one candidate per seed (seed, seed+1, …), for the user to keep the one whose composition stays closest to
 * the original. Writes candidate-<k>-seed<s>.png and candidates.json.
 */
import { writeFile } from 'node:fs/promises';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { VidpriorError, check } from '../../src/errors.js';
import { checkOutputPath } from '../../src/io/output-path.js';
import { writeFramePng } from '../../src/io/frames.js';
import { restoreFrame } from '../../src/io/inputs.js';
import type { FitMode } from '../../src/io/size.js';
import { img2img } from '../../src/pipelines/img2img.js';
import type { ExecutionProviderChoice } from '../../src/runtime/types.js';
import { makeReporter, type Reporter } from './output.js';
import { checkFrameIndex, openClip } from './keyframes.js';
import {
  epOption,
  FIT_OPTION,
  LORA_OPTION,
  lastValues,
  MODEL_OPTIONS,
  openModelSession,
  withSigint,
} from './model-session.js';

export interface EditKeyframeArgs {
  input: string;
  frame: number;
  prompt: string;
  'negative-prompt': string;
  strength: number;
  candidates: number;
  seed: number;
  steps: number;
  guidance: number;
  output: string;
  model?: string;
  'model-config'?: string;
  dtype?: string;
  adapter?: string;
  lora?: string[];
  ep: ExecutionProviderChoice;
  fit: FitMode;
  json: boolean;
}

export interface Candidate {
  index: number;
  seed: number;
  file: string;
}

export interface EditKeyframeResult {
  frame: number;
  frameName: string;
  candidates: Candidate[];
  manifest: string;
  seconds: number;
}

export async function runEditKeyframe(
  a: EditKeyframeArgs,
  reporter: Reporter,
  hooks: { signal?: AbortSignal; onCandidate?: (c: Candidate, path: string) => Promise<void> | void } = {},
): Promise<EditKeyframeResult> {
  // 1. Check inputs (before anything heavy).
  check(a.strength > 0 && a.strength <= 1, 'strength', a.strength, 'a number in (0, 1]');
  check(
    Number.isInteger(a.candidates) && a.candidates >= 1 && a.candidates <= 64,
    'candidates',
    a.candidates,
    'a whole number from 1 to 64',
  );
  check(Number.isSafeInteger(a.seed) && a.seed >= 0, 'seed', a.seed, 'a whole number ≥ 0');
  check(Number.isInteger(a.steps) && a.steps >= 1, 'steps', a.steps, 'a whole number ≥ 1');
  check(Number.isFinite(a.guidance) && a.guidance >= 0, 'guidance', a.guidance, 'a number ≥ 0');
  check(Number.isInteger(a.frame) && a.frame >= 0, 'frame', a.frame, 'a frame index ≥ 0');
  await checkOutputPath(a.output, 'folder');
  const started = Date.now();
  // 2. Model, runtime.
  const session = await openModelSession(a, reporter);
  const source = await openClip(session.model, a.input, a.fit, reporter).catch(async (err) => {
    await session.close();
    throw err;
  });
  try {
    checkFrameIndex(source, a.frame);
    // 3. The keyframe, once; one img2img per seed.
    const image = await source.read(a.frame);
    const out = resolve(a.output);
    await mkdir(out, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
      throw new VidpriorError('E_BAD_REQUEST', `cannot create the output folder ${out}: ${err.code ?? err.message}`, {
        output: out,
      });
    });
    const candidates: Candidate[] = [];
    for (let k = 0; k < a.candidates; k++) {
      const seed = a.seed + k;
      const [result] = await img2img(session.model, session.runtime, [image], {
        prompt: a.prompt,
        negativePrompt: a['negative-prompt'],
        strength: a.strength,
        steps: a.steps,
        guidance: a.guidance,
        seed,
        signal: hooks.signal,
        onProgress: (p) => {
          if (p.phase === 'denoise') {
            reporter.progress(
              { event: 'progress', candidate: k + 1, candidates: a.candidates, seed, step: p.step, steps: p.steps },
              `candidate ${k + 1}/${a.candidates} (seed ${seed}), step ${p.step}/${p.steps}`,
              (k + p.step / Math.max(1, p.steps)) / a.candidates,
            );
          }
        },
      });
      const file = `candidate-${k}-seed${seed}.png`;
      const restored = restoreFrame(result!, source.plan);
      await writeFramePng(join(out, file), restored.image, { resize: restored.resize });
      const c = { index: k, seed, file };
      candidates.push(c);
      reporter.progress(
        { event: 'candidate', ...c, path: join(out, file) },
        `candidate ${k + 1}/${a.candidates} written: ${file}`,
        (k + 1) / a.candidates,
      );
      await hooks.onCandidate?.(c, join(out, file));
    }
    // 4. A manifest the next step (finetune --edit) can be driven from.
    const manifest = join(out, 'candidates.json');
    await writeFile(
      manifest,
      `${JSON.stringify(
        {
          input: resolve(a.input),
          frame: a.frame,
          frameName: source.frames[a.frame]!.name,
          prompt: a.prompt,
          negativePrompt: a['negative-prompt'],
          strength: a.strength,
          steps: a.steps,
          guidance: a.guidance,
          model: session.model.dir,
          adapter: a.adapter ?? null,
          loras: a.lora ?? [],
          candidates,
        },
        null,
        2,
      )}\n`,
    );
    return {
      frame: a.frame,
      frameName: source.frames[a.frame]!.name,
      candidates,
      manifest,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await source.cleanup().catch(() => {});
    await session.close();
  }
}

export const editKeyframeCommand: CommandModule<object, EditKeyframeArgs> = {
  command: 'edit-keyframe',
  describe: 'Step 1: candidates for the keyframe edit (img2img of one frame at high strength, several seeds)',
  builder: (yargs) =>
    yargs
      .option('input', {
        alias: 'i',
        type: 'string',
        demandOption: true,
        describe: 'the clip: a folder of PNG/JPEG frames or a video file',
      })
      .option('frame', {
        alias: 'f',
        type: 'number',
        demandOption: true,
        describe: 'index of the frame to edit (0 = first, natural order)',
      })
      .option('prompt', { alias: 'p', type: 'string', demandOption: true, describe: 'what the video should look like' })
      .option('negative-prompt', { type: 'string', default: '', describe: 'what to steer away from' })
      .option('strength', { type: 'number', default: 0.75, describe: 'how far from the original, in (0, 1]' })
      .option('candidates', {
        alias: 'n',
        type: 'number',
        default: 4,
        describe: 'how many candidates (seeds seed, seed+1, …)',
      })
      .option('seed', { type: 'number', default: 0, describe: 'the first seed' })
      .option('steps', { type: 'number', default: 50, describe: 'DDIM steps before strength' })
      .option('guidance', { type: 'number', default: 7.5, describe: 'classifier-free guidance scale' })
      .option('output', {
        alias: 'o',
        type: 'string',
        demandOption: true,
        describe: 'folder for candidate PNGs and candidates.json',
      })
      .options(MODEL_OPTIONS)
      .option('adapter', { type: 'string', describe: 'a LoRA adapter (.safetensors) to apply' })
      .option('lora', LORA_OPTION)
      .option('ep', epOption())
      .option('fit', FIT_OPTION)
      .option('json', { type: 'boolean', default: false, describe: 'progress and result as JSON lines on stdout' })
      .example(
        '$0 edit-keyframe -i clip.mp4 --frame 0 -p "a watercolor painting" -o edits/',
        'four candidates for frame 0',
      ) as never,
  handler: async (argv) => {
    const reporter = makeReporter(argv.json);
    const r = await withSigint((signal) => runEditKeyframe(lastValues(argv, ['lora']), reporter, { signal }));
    reporter.result(
      { frame: r.frame, candidates: r.candidates, manifest: r.manifest, seconds: r.seconds },
      `wrote ${r.candidates.length} candidates for frame ${r.frame} (${r.frameName}) to ${r.manifest.replace(/candidates\.json$/, '')}: ` +
        `pick one and pass it to finetune as --edit ${r.frame}=<candidate.png>`,
    );
  },
};
