/**
 * How the CLI talks to a person or a script: progress lines on stderr (or JSON lines on stdout with --json),
 * and errors as one line with their stable code.
 */
import { config } from '../../src/config.js';
import { isUserError, asVidpriorError } from '../../src/errors.js';
import { ProgressView, stopAllProgress, type ProgressStreams } from './progress.js';

/** Exit codes: 2 for mistakes the user can fix, 1 for bugs and runtime failures, 130 when cancelled. */
export function reportCliError(err: unknown): number {
  stopAllProgress();
  const e = asVidpriorError(err);
  if (e.code === 'E_CANCELLED') {
    process.stderr.write('vidprior: cancelled\n');
    return 130;
  }
  if (isUserError(e)) {
    process.stderr.write(`vidprior: error [${e.code}]: ${e.message}\n`);
    // Failures of the environment (runtime, ffmpeg, an unreachable daemon or hub) are 1; mistakes to fix are 2.
    return ['E_RUNTIME', 'E_FFMPEG', 'E_CONNECTION', 'E_DOWNLOAD'].includes(e.code) ? 1 : 2;
  }
  process.stderr.write(`vidprior: internal error [${e.code}]: ${e.message}\n`);
  const cause = (e as { cause?: unknown }).cause;
  const stack = cause instanceof Error ? cause.stack : e.stack;
  if (stack) process.stderr.write(`${stack}\n`);
  return 1;
}

/** One progress event, as printed by `--json` (one JSON object per line on stdout). */
export interface ProgressEvent {
  event: string;
  [key: string]: unknown;
}

export interface Reporter {
  /**
   * A progress event: a JSON line with --json; else `human` on the progress bar (a terminal) or as an
   * occasional plain line. `fraction` (0–1 of the current stage) drives the bar and its ETA.
   */
  progress(e: ProgressEvent, human?: string, fraction?: number): void;
  /** A note for the person (stderr); with --json a {"event":"note"} line. */
  note(text: string): void;
  /** The final result: JSON on stdout with --json, else the human text on stdout. Ends the bar. */
  result(value: Record<string, unknown>, human: string): void;
}

export interface ReporterOptions {
  /** A redrawn bar rather than plain lines (default: config().interactive, i.e. stderr is a terminal). */
  interactive?: boolean;
  streams?: ProgressStreams;
  plainIntervalMs?: number;
  now?: () => number;
}

export function makeReporter(json: boolean, options: ReporterOptions = {}): Reporter {
  const streams = options.streams ?? { out: process.stdout, err: process.stderr };
  const view = new ProgressView({
    json,
    interactive: options.interactive ?? config().interactive,
    streams,
    plainIntervalMs: options.plainIntervalMs,
    now: options.now,
  });
  return {
    progress(e, human, fraction) {
      view.event(e);
      if (human) view.update(human, fraction);
    },
    note(text) {
      if (json) streams.out.write(`${JSON.stringify({ event: 'note', message: text })}\n`);
      else view.line(text);
    },
    result(value, human) {
      view.stop();
      if (json) streams.out.write(`${JSON.stringify({ event: 'result', ...value })}\n`);
      else streams.out.write(`${human}\n`);
    },
  };
}
