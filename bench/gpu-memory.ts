/**
 * Peak GPU memory while something runs, by polling `nvidia-smi --query-gpu=memory.used` in the background
 * (ORT's WebGPU provider does not report its allocations). Without nvidia-smi, every reading is null.
 */
import { type ChildProcess, spawn } from 'node:child_process';

export class GpuMemoryPoller {
  private proc: ChildProcess | null = null;
  private peakMiB: number | null = null;
  private lastMiB: number | null = null;
  /** Why there are no readings (no nvidia-smi, it failed), when there are none. */
  unavailable: string | null = null;

  start(intervalMs = 100): void {
    try {
      this.proc = spawn(
        'nvidia-smi',
        ['--query-gpu=memory.used', '--format=csv,noheader,nounits', `-lms`, String(intervalMs)],
        { stdio: ['ignore', 'pipe', 'ignore'] },
      );
    } catch (err) {
      this.unavailable = (err as Error).message;
      return;
    }
    this.proc.on('error', (err) => {
      this.unavailable = `nvidia-smi: ${err.message}`;
      this.proc = null;
    });
    let buffered = '';
    this.proc.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const mib = Number.parseInt(line.trim().split(/\s*,\s*/)[0]!, 10); // first GPU
        if (!Number.isFinite(mib)) continue;
        this.lastMiB = mib;
        this.peakMiB = Math.max(this.peakMiB ?? 0, mib);
      }
    });
  }

  /** The highest reading since the last reset (MiB), or null. */
  peak(): number | null {
    return this.peakMiB;
  }

  /** The latest reading (MiB), or null. */
  current(): number | null {
    return this.lastMiB;
  }

  /** Starts a new peak from the current reading. */
  reset(): void {
    this.peakMiB = this.lastMiB;
  }

  stop(): void {
    this.proc?.kill();
    this.proc = null;
  }
}
