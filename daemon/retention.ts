/**
 * Finished jobs are kept for a while (to attach to, re-read, or list) and then deleted with their outputs, so a
 * daemon that runs for weeks does not fill its disk: a sweep at start and then periodically deletes every job
 * that ended (done, failed, cancelled) more than the retention time ago. Queued and running jobs are never
 * touched; output_dir copies and published adapters belong to the user and stay.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { JOB_ID, TERMINAL_STATES } from '../protocol/messages.js';
import type { JobQueue } from './queue.js';

/** One week. */
export const DEFAULT_RETENTION_HOURS = 168;

/** A job folder without a job (an interrupted submit) is removed after this at least. */
const ORPHAN_MIN_AGE_MS = 3600_000;

/** Deletes the finished jobs that ended `retentionMs` ago or more (records and outputs); returns their ids. */
export async function sweepJobs(queue: JobQueue, retentionMs: number, now = Date.now()): Promise<string[]> {
  const old = queue.list(undefined, Number.POSITIVE_INFINITY).filter((j) => {
    if (!TERMINAL_STATES.includes(j.status.state)) return false;
    return now - Date.parse(j.status.finished_at ?? j.spec.created_at) >= retentionMs;
  });
  for (const job of old) await queue.delete(job.spec.id);
  // Folders of creates that never finished (the daemon died mid-submit): no job, never loaded. An hour at
  // least, so that a submit being stored right now is not one of them.
  const jobsDir = queue.store.jobsDir;
  for (const name of await readdir(jobsDir).catch(() => [] as string[])) {
    if (!JOB_ID.test(name) || queue.has(name)) continue;
    const info = await stat(join(jobsDir, name)).catch(() => null);
    if (info && now - info.mtimeMs >= Math.max(retentionMs, ORPHAN_MIN_AGE_MS))
      await rm(join(jobsDir, name), { recursive: true, force: true });
  }
  return old.map((j) => j.spec.id);
}

/** How often the sweep runs: a tenth of the retention, between a minute and an hour. */
export function sweepInterval(retentionMs: number): number {
  return Math.min(3600_000, Math.max(60_000, Math.floor(retentionMs / 10)));
}

export class RetentionSweeper {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly queue: JobQueue,
    private readonly retentionMs: number,
    private readonly log: (line: string) => void = () => {},
    private readonly intervalMs = sweepInterval(retentionMs),
  ) {}

  /** Sweeps now (awaited), then every interval until stop(). */
  async start(): Promise<void> {
    await this.sweep();
    this.timer = setInterval(() => {
      this.running = this.sweep();
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Deletes the jobs past the retention time; returns their ids. Never throws (a failure is logged). */
  async sweep(now = Date.now()): Promise<string[]> {
    try {
      const gone = await sweepJobs(this.queue, this.retentionMs, now);
      if (gone.length)
        this.log(`retention: deleted ${gone.length} job(s) finished more than ${this.retentionMs / 3600_000} h ago`);
      return gone;
    } catch (err) {
      this.log(`retention sweep failed: ${(err as Error).message}`);
      return [];
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }
}
