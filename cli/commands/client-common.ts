/**
 * What `vidprior submit` and `vidprior jobs` share: connecting to the daemon (--url, --token, or
 * VIDPRIOR_URL / VIDPRIOR_TOKEN), following a job with a progress bar (or JSON lines with --json) and writing
 * the streamed frames to a folder.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { config } from '../../src/config.js';
import { VidpriorClient, type JobStream } from '../../protocol/client.js';
import type { Frame, Progress } from '../../protocol/messages.js';
import { makeReporter, type Reporter } from './output.js';

export interface ClientArgs {
  url?: string;
  token?: string;
  json: boolean;
}

export function clientOptions<T>(yargs: Argv<T>) {
  return yargs
    .option('url', { type: 'string', describe: 'the daemon (default: $VIDPRIOR_URL or ws://127.0.0.1:8765/)' })
    .option('token', { type: 'string', describe: "the daemon's token (default: $VIDPRIOR_TOKEN)" })
    .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout instead of a progress bar' });
}

export async function connectFromArgs(argv: ClientArgs): Promise<VidpriorClient> {
  const cfg = config();
  const token = argv.token ?? cfg.daemonToken;
  return VidpriorClient.connect(argv.url ?? cfg.daemonUrl, { client: 'vidprior-cli', ...(token ? { token } : {}) });
}

/**
 * One line for a job's progress: "denoising: frame 7/40, step 2/4", "training: iteration 30/200, loss 0.1234",
 * "queued (position 2)". `framesDone` counts the frames received, which may be ahead of the last progress event.
 */
export function describeProgress(p: Progress, framesDone = p.frames_done): string {
  if (p.state === 'queued') return `queued${p.position !== undefined ? ` (position ${p.position})` : ''}`;
  const parts: string[] = [];
  if (p.iteration !== undefined && p.iterations) {
    parts.push(`iteration ${p.iteration}/${p.iterations}`);
    if (p.loss !== undefined) parts.push(`loss ${p.loss.toFixed(4)}`);
  } else if (p.message && p.step !== undefined && p.steps) {
    // Keyframe candidates: the message names the candidate (`frame` is the input frame, not an output).
    parts.push(p.message, `step ${p.step}/${p.steps}`);
  } else if (p.frame !== undefined && p.frames_total) {
    parts.push(`frame ${Math.min(p.frame + 1, p.frames_total)}/${p.frames_total}`);
    if (p.step !== undefined && p.steps) parts.push(`step ${p.step}/${p.steps}`);
  } else if (p.frames_total) {
    parts.push(`${Math.min(framesDone, p.frames_total)}/${p.frames_total} frames done`);
  } else if (p.message) {
    parts.push(p.message);
  }
  return `${p.stage}${parts.length ? `: ${parts.join(', ')}` : ''}`;
}

/** Follows a job to its end: progress shown, frames handed to `onFrame` (or written to `outDir`). */
export async function follow(
  job: JobStream,
  reporter: Reporter,
  outDir?: string,
  onFrame?: (f: Frame) => Promise<void>,
) {
  if (outDir) await mkdir(outDir, { recursive: true });
  const writes: Promise<void>[] = [];
  const received = new Set<number>();
  let last: Progress | null = null;
  const show = (p: Progress): void => {
    const done = Math.max(p.frames_done, received.size);
    // Frames received count even between throttled progress events, so the counter reaches the total.
    const fraction = p.frames_total ? Math.max(p.fraction, done / p.frames_total) : p.fraction;
    reporter.progress({ event: 'progress', ...p }, describeProgress(p, done), Math.min(1, fraction));
  };
  job.onProgress = (p) => {
    last = p;
    show(p);
  };
  job.onFrame = (f) => {
    received.add(f.index);
    reporter.progress({
      event: 'frame',
      job: f.job,
      index: f.index,
      name: f.name,
      bytes: f.png.length,
      replay: f.replay,
      ...(f.seed !== undefined ? { seed: f.seed } : {}),
    });
    if (last) show(last);
    if (onFrame) writes.push(onFrame(f));
    else if (outDir) writes.push(writeFile(join(outDir, f.name), f.png));
  };
  try {
    return await job.done;
  } finally {
    await Promise.all(writes);
  }
}

export function reporterFor(argv: ClientArgs): Reporter {
  return makeReporter(argv.json);
}
