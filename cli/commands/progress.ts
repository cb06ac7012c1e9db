/**
 * The one progress view of the CLI, shared by every command through `makeReporter` (cli/commands/output.ts):
 *   - on a terminal: a single-line bar with percentage, ETA and a short text (cli-progress), redrawn in place;
 *   - with --json: one JSON object per event on stdout;
 *   - otherwise (a pipe, a log file, CI): plain lines, at most one every few seconds, plus the line that
 *     reaches the end of each stage, each with the percentage and a linear ETA.
 * A stage is one run of the bar from 0 to 1 (decoding, stylizing, encoding…); a fraction that goes back down
 * starts a new stage (and a fresh ETA).
 */
import { SingleBar } from 'cli-progress';

/** Where the view writes: stderr for people, stdout for --json; the tests pass their own. */
export interface ProgressStreams {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

export interface ProgressViewOptions {
  json: boolean;
  /** A bar that redraws in place (a terminal that wants one); else plain lines. */
  interactive: boolean;
  streams?: ProgressStreams;
  /** Least time between two plain lines (default 2000 ms). */
  plainIntervalMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

/** Every view started and not yet stopped, so the CLI's boundary can stop the bars of a failed command. */
const open = new Set<ProgressView>();

/** Stops every bar still drawn (the CLI calls this once a command ends, however it ends). */
export function stopAllProgress(): void {
  for (const v of [...open]) v.stop();
}

/** Seconds as "1h02m", "3m05s" or "12s". */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const t = Math.round(s);
  if (t >= 3600) return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
  if (t >= 60) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${t}s`;
}

const STEPS = 1000;

export class ProgressView {
  private readonly streams: ProgressStreams;
  private readonly now: () => number;
  private readonly plainIntervalMs: number;
  private bar: SingleBar | null = null;
  private stageStart = 0;
  private lastFraction = -1;
  private lastPlain = Number.NEGATIVE_INFINITY;
  private lastText = '';

  constructor(private readonly o: ProgressViewOptions) {
    this.streams = o.streams ?? { out: process.stdout, err: process.stderr };
    this.now = o.now ?? Date.now;
    this.plainIntervalMs = o.plainIntervalMs ?? 2000;
  }

  /** A JSON line (--json only). */
  event(e: Record<string, unknown>): void {
    if (this.o.json) this.streams.out.write(`${JSON.stringify(e)}\n`);
  }

  /**
   * Progress of the current stage: `fraction` in [0, 1] when known (a bar with ETA), else a text alone (the bar's
   * text changes, or a plain line).
   */
  update(text: string, fraction?: number): void {
    if (this.o.json) return;
    const now = this.now();
    if (fraction === undefined || !Number.isFinite(fraction)) {
      if (this.bar) this.bar.update({ text: this.fit(text) });
      else if (text !== this.lastText && now - this.lastPlain >= this.plainIntervalMs) this.plain(text, now);
      this.lastText = text;
      return;
    }
    const f = Math.min(1, Math.max(0, fraction));
    if (f < this.lastFraction - 1e-9 || this.lastFraction < 0) this.newStage(now);
    this.lastFraction = f;
    this.lastText = text;
    if (this.o.interactive) {
      if (!this.bar) this.startBar(f, text);
      else this.bar.update(Math.round(f * STEPS), { text: this.fit(text) });
      return;
    }
    const elapsed = (now - this.stageStart) / 1000;
    // No ETA before any time has passed in the stage (nothing to extrapolate from), nor at its end.
    const eta = f > 0 && f < 1 && elapsed > 0 ? `, ETA ${formatSeconds((elapsed * (1 - f)) / f)}` : '';
    if (f >= 1 || now - this.lastPlain >= this.plainIntervalMs)
      this.plain(`${String(Math.floor(f * 100)).padStart(3)}% ${text}${eta}`, now);
  }

  /** A line for the person that must not be lost under the bar. */
  line(text: string, stream: 'out' | 'err' = 'err'): void {
    // The bar is cleared for the line and drawn again below it at the next update.
    this.stopBar();
    this.streams[stream].write(`${text}\n`);
  }

  stop(): void {
    this.stopBar();
    open.delete(this);
  }

  private newStage(now: number): void {
    this.stopBar();
    this.stageStart = now;
    this.lastPlain = Number.NEGATIVE_INFINITY;
  }

  private startBar(f: number, text: string): void {
    this.bar = new SingleBar({
      format: '{bar} {percentage}% | ETA {eta_formatted} | {text}',
      stream: this.streams.err,
      barsize: 24,
      hideCursor: true,
      clearOnComplete: true,
      linewrap: false,
      etaBuffer: 50,
      fps: 5,
      formatTime: (s: number) => formatSeconds(s),
    } as ConstructorParameters<typeof SingleBar>[0]);
    this.bar.start(STEPS, Math.round(f * STEPS), { text: this.fit(text) });
    open.add(this);
  }

  private stopBar(): void {
    if (!this.bar) return;
    this.bar.stop();
    this.bar = null;
  }

  /** Keeps the bar on one line: its text is cut to what the terminal has left. */
  private fit(text: string): string {
    // The bar, percentage and ETA take about 46 columns.
    const room = Math.max(10, (this.streams.err.columns || 100) - 46);
    return text.length > room ? `${text.slice(0, room - 1)}…` : text;
  }

  private plain(text: string, now: number): void {
    this.lastPlain = now;
    this.streams.err.write(`${text}\n`);
  }
}
