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
import type { Progress } from '../../protocol/messages.js';
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

function bar(fraction: number, width = 24): string {
  const full = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${String(Math.round(fraction * 100)).padStart(3)}%`;
}

export function describeProgress(p: Progress): string {
  const parts = [bar(p.fraction), p.stage];
  if (p.frames_total) parts.push(`${p.frames_done}/${p.frames_total} frames`);
  if (p.step !== undefined && p.steps) parts.push(`step ${p.step}/${p.steps}`);
  if (p.iteration !== undefined && p.iterations) parts.push(`iter ${p.iteration}/${p.iterations}`);
  if (p.loss !== undefined) parts.push(`loss ${p.loss.toFixed(4)}`);
  if (p.position !== undefined) parts.push(`queue position ${p.position}`);
  return parts.join('  ');
}

/** Follows a job to its end: progress shown, frames written to `outDir` as they arrive. Returns the done event. */
export async function follow(job: JobStream, reporter: Reporter, outDir?: string) {
  if (outDir) await mkdir(outDir, { recursive: true });
  const writes: Promise<void>[] = [];
  job.onProgress = (p) => reporter.progress({ event: 'progress', ...p }, describeProgress(p));
  job.onFrame = (f) => {
    reporter.progress({
      event: 'frame',
      job: f.job,
      index: f.index,
      name: f.name,
      bytes: f.png.length,
      replay: f.replay,
      ...(f.seed !== undefined ? { seed: f.seed } : {}),
    });
    if (outDir) writes.push(writeFile(join(outDir, f.name), f.png));
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
