/**
 * `vidprior submit`: sends a job to a running daemon (`vidprior serve`) through the protocol, follows it with a
 * progress bar and writes the output frames as they arrive (or a video at the end). `--detach` prints the job id
 * and returns at once (follow it later with `vidprior jobs attach <id>`). Frames and edits travel as described
 * in submit-frames.ts (paths, bytes, or chunked uploads when they would not fit in one message).
 */
import { basename } from 'node:path';
import type { CommandModule } from 'yargs';
import { VidpriorError } from '../../src/errors.js';
import { checkOutputPath } from '../../src/io/output-path.js';
import { JOB_KINDS, type JobKind } from '../../protocol/params.js';
import type { EditInput } from '../../protocol/messages.js';
import { VIDEO_KINDS } from '../../daemon/watch-video.js';
import { clientOptions, connectFromArgs, follow, reporterFor, type ClientArgs } from './client-common.js';
import { MAX_SEED } from './stylize.js';
import { VideoOutput, frameInputs, inputFiles, sendMode } from './submit-frames.js';

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
  fps?: number;
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

export const submitCommand: CommandModule<object, SubmitArgs> = {
  command: 'submit',
  describe: 'Send a job to a running daemon and follow it (frames written as they arrive)',
  builder: (yargs) =>
    clientOptions(yargs)
      .option('kind', {
        type: 'string',
        choices: JOB_KINDS,
        default: 'stylize' as JobKind,
        describe: 'what to do: stylize every frame, make keyframe candidates, fine-tune, both (run), or deflicker',
      })
      .option('input', {
        type: 'string',
        demandOption: true,
        describe: 'a folder of frames (PNG/JPEG, natural order), one image, or a video file',
      })
      .option('output', {
        type: 'string',
        describe: 'where the output frames go: a folder, or a video file (.mp4, .mov, .mkv, .webm…)',
      })
      .option('prompt', { type: 'string', demandOption: true, describe: 'what the frames should look like' })
      .option('negative-prompt', { type: 'string', describe: "what to steer away from (daemon's default: none)" })
      .option('strength', { type: 'number', describe: 'how much of the schedule runs, in (0, 1] (default 0.45)' })
      .option('steps', { type: 'number', describe: 'DDIM steps before strength (default 50)' })
      .option('guidance', { type: 'number', describe: 'classifier-free guidance scale (default 7.5)' })
      .option('seed', { type: 'number', describe: `seed of the noise, 0 to ${MAX_SEED} (default 0)` })
      .option('batch', { type: 'number', describe: 'frames per UNet run (default 1)' })
      .option('fps', {
        type: 'number',
        describe: "frame rate of a video output (default: the input video's, else 24)",
      })
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
      )
      .example(
        '$0 submit --input shot12/ --output styled/ --prompt "a watercolor painting"',
        'stylize a folder of frames',
      ) as never,
  handler: async (argv) => {
    const reporter = reporterFor(argv);
    // 1. Arguments checked before anything is read or sent.
    if (argv.seed !== undefined && !(Number.isInteger(argv.seed) && argv.seed >= 0 && argv.seed <= MAX_SEED))
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `--seed must be a whole number from 0 to ${MAX_SEED}, got ${argv.seed}`,
        { seed: argv.seed },
      );
    if (argv.fps !== undefined && !(Number.isFinite(argv.fps) && argv.fps > 0 && argv.fps <= 1000))
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `--fps must be a number of frames per second in (0, 1000], got ${argv.fps}`,
        {
          fps: argv.fps,
        },
      );
    const toVideo = VideoOutput.wanted(argv.output);
    if (toVideo && !VIDEO_KINDS.includes(argv.kind))
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `--output ${argv.output} is a video, but a ${argv.kind} job does not make one frame per input frame: give a folder`,
        { output: argv.output },
      );
    if (argv.output) await checkOutputPath(argv.output, toVideo ? 'file' : 'folder');
    // The request: the parameters given (the daemon fills in the defaults).
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
    const editFiles = (argv.edit ?? []).map((e) => {
      const [k, v] = keyValue(e, '--edit');
      const frame = Number(k);
      if (!Number.isInteger(frame) || frame < 0)
        throw new VidpriorError('E_BAD_REQUEST', `--edit ${e}: the frame index must be a whole number`, { edit: e });
      return { frame, name: basename(String(v)), path: String(v) };
    });

    // 2. The frames (a video is decoded here); connect; send them as paths, bytes or uploads.
    const input = await inputFiles(argv.input, reporter);
    const video = toVideo && !argv.detach ? await VideoOutput.open(argv.output!) : null;
    const client = await connectFromArgs(argv).catch(async (err) => {
      await input.cleanup();
      await video?.cleanup();
      throw err;
    });
    try {
      const mode = await sendMode(client, [...input.files, ...editFiles], argv['by-path'], Boolean(input.video));
      const frames = await frameInputs(client, input.files, mode, reporter);
      const editInputs = await frameInputs(
        client,
        editFiles,
        mode === 'path' && !input.video ? 'path' : mode,
        reporter,
        'edit',
      );
      const edits: EditInput[] = editInputs.map(({ name: _name, ...data }, i) => ({
        frame: editFiles[i]!.frame,
        ...data,
      }));

      // 3. Submit and follow, writing frames as they arrive (to the folder, or to the video at the end).
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
      const done = await follow(
        job,
        reporter,
        video ? undefined : argv.output,
        video ? (f) => video.write(f.index, f.png) : undefined,
      );
      if (video)
        await video.finish(argv.fps ?? input.video?.fps ?? 24, input.video?.path, reporter, done.outputs.frames);
      reporter.result(
        {
          job: job.id,
          outputs: done.outputs,
          elapsed_s: done.elapsed_s,
          ...(argv.output ? { output: argv.output } : {}),
        },
        `job ${job.id} done: ${done.outputs.frames} frame(s)${argv.output ? ` in ${argv.output}` : ''}${done.outputs.adapter ? `, adapter ${done.outputs.adapter}` : ''} (${done.elapsed_s.toFixed(1)} s)`,
      );
    } finally {
      await client.close();
      await input.cleanup();
      await video?.cleanup();
    }
  },
};
