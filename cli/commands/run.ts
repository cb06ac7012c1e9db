/**
 * `vidprior run`: the whole method in one command. Fine-tune a LoRA on the clip and its edited keyframes,
 * then stylize every frame at low strength with the same noise and the fine-tuned weights.
 */
import { extname } from 'node:path';
import type { CommandModule } from 'yargs';
import { check } from '../../src/errors.js';
import { checkOutputPath, frameOutputKind } from '../../src/io/output-path.js';
import { makeReporter } from './output.js';
import { type FinetuneArgs, finetuneOptions, runFinetune } from './finetune.js';
import { lastValues, withSigint } from './model-session.js';
import { type StylizeArgs, runStylize } from './stylize.js';

export interface RunArgs extends Omit<FinetuneArgs, 'output'> {
  output: string;
  'adapter-output'?: string;
  'negative-prompt': string;
  strength: number;
  steps: number;
  guidance: number;
  'noise-file'?: string;
  batch: number;
  fps?: number;
}

/** The adapter of a run goes beside its output unless said otherwise: out/ → out.safetensors. */
export function adapterPathFor(output: string): string {
  const ext = extname(output);
  return `${ext ? output.slice(0, -ext.length) : output.replace(/[/\\]+$/, '')}.adapter.safetensors`;
}

export const runCommand: CommandModule<object, RunArgs> = {
  command: 'run',
  describe: 'The whole method: fine-tune on the clip and its edits, then stylize every frame with the adapter',
  builder: (yargs) =>
    finetuneOptions(yargs)
      .option('output', {
        alias: 'o',
        type: 'string',
        demandOption: true,
        describe: 'stylized frames: a folder (PNGs named like the inputs) or a video file',
      })
      .option('adapter-output', {
        type: 'string',
        describe: 'where the adapter goes (default: beside the output, <output>.adapter.safetensors)',
      })
      .option('negative-prompt', { type: 'string', default: '', describe: 'what to steer away from' })
      .option('strength', { type: 'number', default: 0.45, describe: 'stylize strength (0.45; 0.325 for people)' })
      .option('steps', { type: 'number', default: 50, describe: 'DDIM steps before strength' })
      .option('guidance', { type: 'number', default: 7.5, describe: 'classifier-free guidance scale' })
      .option('noise-file', {
        type: 'string',
        describe: 'the initial noise as .npy [1, C, H/f, W/f] (default: from --seed)',
      })
      .option('batch', { type: 'number', default: 1, describe: 'frames per UNet run' })
      .option('fps', { type: 'number', describe: "frame rate of a video output (default: the input video's, else 24)" })
      .example(
        '$0 run -i clip.mp4 --edit 0=edit.png -p "a watercolor painting" -o styled.mp4',
        'fine-tune, then stylize',
      ) as never,
  handler: async (argv) => {
    const a = lastValues(argv, ['edit', 'lora']);
    check(a.strength > 0 && a.strength <= 1, 'strength', a.strength, 'a number in (0, 1]');
    const reporter = makeReporter(a.json);
    const adapter = a['adapter-output'] ?? adapterPathFor(a.output);
    // Both outputs are checked before the fine-tuning, not found impossible after it.
    await checkOutputPath(a.output, frameOutputKind(a.output));
    await checkOutputPath(adapter, 'file', '--adapter-output');
    await withSigint(async (signal) => {
      // 1. Fine-tune (steps 2–3).
      reporter.note(`fine-tuning → ${adapter}`);
      const tuned = await runFinetune({ ...a, output: adapter }, reporter, { signal });
      // 2. Stylize (step 4) with the fine-tuned weights.
      reporter.note(`stylizing ${a.input} → ${a.output}`);
      const styled = await runStylize(
        {
          input: a.input,
          output: a.output,
          prompt: a.prompt,
          'negative-prompt': a['negative-prompt'],
          model: a.model,
          'model-config': a['model-config'],
          dtype: a.dtype,
          adapter,
          lora: a.lora,
          strength: a.strength,
          steps: a.steps,
          guidance: a.guidance,
          seed: a.seed,
          'noise-file': a['noise-file'],
          batch: a.batch,
          fps: a.fps,
          ep: a.ep,
          fit: a.fit,
          'memory-limit': a['memory-limit'],
          json: a.json,
        } satisfies StylizeArgs,
        reporter,
        { signal },
      );
      reporter.result(
        {
          adapter: tuned.adapter,
          output: styled.output,
          frames: styled.frames,
          validationBefore: tuned.validationBefore,
          validationAfter: tuned.validationAfter,
        },
        `fine-tuned ${tuned.adapter} (validation loss ${tuned.validationBefore.toFixed(4)} → ${tuned.validationAfter.toFixed(4)}) and wrote ${styled.frames} stylized frames to ${styled.output}`,
      );
    });
  },
};
