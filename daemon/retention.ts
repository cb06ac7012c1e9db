/**
 * Finished jobs are kept for a while (to attach to, re-read, or list) and then deleted with their outputs, so a
 * daemon that runs for weeks does not fill its disk: a sweep at start and then periodically deletes every job
 * that ended (done, failed, cancelled) more than the retention time ago. Queued and running jobs are never
 * touched; output_dir copies and published adapters belong to the user and stay.
 */
import type { JobQueue } from './queue.js';

/** One week. */
export const DEFAULT_RETENTION_HOURS = 168;

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
      const gone = await this.queue.sweep(this.retentionMs, now);
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
