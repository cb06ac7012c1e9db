/**
 * `vidprior submit`: sends a job to a running daemon (`vidprior serve`) through the protocol, follows it with a
 * progress bar and writes the output frames as they arrive. `--detach` prints the job id and returns at once
 * (follow it later with `vidprior jobs attach <id>`).
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { VidpriorError } from '../../src/errors.js';
import { listFrameFiles } from '../../src/io/frames.js';
import { JOB_KINDS, type JobKind } from '../../protocol/params.js';
import type { FrameInput, EditInput } from '../../protocol/messages.js';
import { clientOptions, connectFromArgs, follow, reporterFor, type ClientArgs } from './client-common.js';

interface SubmitArgs extends ClientArgs {
  kind: JobKind;
  input: string;
  output?: string;
  prompt: string;
  'negative-prompt'?: string;
  strength?: number;
  steps?: number;
  guidance?: number;
  seed?: number;
  batch?: number;
  adapter?: string;
  candidates?: number;
  frame?: number;
  edit?: string[];
  param?: string[];
  name?: string;
  'by-path': boolean;
  detach: boolean;
}

/** `key=value` → [key, value]; the value is read as JSON when it parses (numbers, booleans), else as text. */
function keyValue(s: string, flag: string): [string, unknown] {
  const eq = s.indexOf('=');
  if (eq <= 0)
    throw new VidpriorError('E_BAD_REQUEST', `${flag} must look like key=value, got ${JSON.stringify(s)}`, {
      [flag]: s,
    });
  const raw = s.slice(eq + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    /* text */
  }
  return [s.slice(0, eq), value];
}

async function inputFrames(input: string, byPath: boolean): Promise<FrameInput[]> {
  const st = await stat(input).catch(() => null);
  if (!st) throw new VidpriorError('E_BAD_INPUT', `--input ${input} does not exist`, { input });
  const files = st.isDirectory() ? await listFrameFiles(input) : [{ name: basename(input), path: input }];
  return Promise.all(
    files.map(async (f) =>
      byPath ? { name: f.name, path: resolve(f.path) } : { name: f.name, png: await readFile(f.path) },
    ),
  );
}

export const submitCommand: CommandModule<object, SubmitArgs> = {
  command: 'submit',
  describe: 'Send a job to a running daemon and follow it (frames written as they arrive)',
  builder: (yargs) =>
    clientOptions(yargs)
      .option('kind', { type: 'string', choices: JOB_KINDS, default: 'stylize' as JobKind, describe: 'what to do' })
      .option('input', {
        type: 'string',
        demandOption: true,
        describe: 'a folder of frames (PNG/JPEG, natural order) or one image',
      })
      .option('output', { type: 'string', describe: 'folder for the output frames' })
      .option('prompt', { type: 'string', demandOption: true })
      .option('negative-prompt', { type: 'string' })
      .option('strength', { type: 'number' })
      .option('steps', { type: 'number' })
      .option('guidance', { type: 'number' })
      .option('seed', { type: 'number' })
      .option('batch', { type: 'number' })
      .option('adapter', { type: 'string', describe: 'a fine-tuned adapter by name (see `vidprior jobs models`)' })
      .option('candidates', { type: 'number', describe: 'edit-keyframe: how many candidates' })
      .option('frame', { type: 'number', describe: 'edit-keyframe: which input frame (0-based)' })
      .option('edit', { type: 'string', array: true, describe: 'finetune/run: <frame-index>=<edited.png>' })
      .option('param', {
        type: 'string',
        array: true,
        describe: 'any other job parameter, key=value (see protocol/PROTOCOL.md §6)',
      })
      .option('name', { type: 'string', describe: 'a label for the job list' })
      .option('by-path', {
        type: 'boolean',
        default: false,
        describe: 'send file paths instead of bytes (daemon on this machine, folder allowed with --allow-dir)',
      })
      .option('detach', { type: 'boolean', default: false, describe: 'print the job id and return without waiting' })
      .example(
        '$0 submit --input shot12/ --output styled/ --prompt "a watercolor painting"',
        'stylize a folder of frames',
      ) as never,
  handler: async (argv) => {
    const reporter = reporterFor(argv);
    // 1. The request: frames, edits, the parameters given (the daemon fills in the defaults).
    const params: Record<string, unknown> = { prompt: argv.prompt };
    const flags: [keyof SubmitArgs, string][] = [
      ['negative-prompt', 'negative_prompt'],
      ['strength', 'strength'],
      ['steps', 'steps'],
      ['guidance', 'guidance'],
      ['seed', 'seed'],
      ['batch', 'batch'],
      ['adapter', 'adapter'],
      ['candidates', 'candidates'],
      ['frame', 'frame'],
    ];
    for (const [flag, key] of flags) if (argv[flag] !== undefined) params[key] = argv[flag];
    for (const p of argv.param ?? []) {
      const [k, v] = keyValue(p, '--param');
      params[k] = v;
    }
    const frames = await inputFrames(argv.input, argv['by-path']);
    const edits: EditInput[] = await Promise.all(
      (argv.edit ?? []).map(async (e) => {
        const [k, v] = keyValue(e, '--edit');
        const frame = Number(k);
        if (!Number.isInteger(frame) || frame < 0)
          throw new VidpriorError('E_BAD_REQUEST', `--edit ${e}: the frame index must be a whole number`, { edit: e });
        return argv['by-path'] ? { frame, path: resolve(String(v)) } : { frame, png: await readFile(String(v)) };
      }),
    );

    // 2. Submit and follow.
    const client = await connectFromArgs(argv);
    try {
      const job = await client.submit({
        kind: argv.kind,
        params,
        frames,
        ...(edits.length ? { edits } : {}),
        ...(argv.name ? { name: argv.name } : {}),
      });
      reporter.progress({ event: 'accepted', job: job.id }, `job ${job.id} accepted`);
      if (argv.detach) {
        reporter.result({ job: job.id, state: job.job.state }, job.id);
        return;
      }
      const done = await follow(job, reporter, argv.output);
      reporter.result(
        { job: job.id, outputs: done.outputs, elapsed_s: done.elapsed_s },
        `job ${job.id} done: ${done.outputs.frames} frame(s)${argv.output ? ` in ${argv.output}` : ''}${done.outputs.adapter ? `, adapter ${done.outputs.adapter}` : ''} (${done.elapsed_s.toFixed(1)} s)`,
      );
    } finally {
      await client.close();
    }
  },
};
