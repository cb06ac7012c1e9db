/**
 * How the CLI talks to a person or a script: progress lines on stderr (or JSON lines on stdout with --json),
 * and errors as one line with their stable code.
 */
import { isUserError, asVidpriorError } from '../../src/errors.js';

/** Exit codes: 2 for mistakes the user can fix, 1 for bugs and runtime failures, 130 when cancelled. */
export function reportCliError(err: unknown): number {
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
  /** A progress event: a JSON line with --json, else a short human line on stderr (throttled). */
  progress(e: ProgressEvent, human?: string): void;
  /** A note for the person (stderr); with --json a {"event":"note"} line. */
  note(text: string): void;
  /** The final result: JSON on stdout with --json, else the human text on stdout. */
  result(value: Record<string, unknown>, human: string): void;
}

export function makeReporter(json: boolean): Reporter {
  let lastHuman = 0;
  const tty = Boolean(process.stderr.isTTY);
  return {
    progress(e, human) {
      if (json) {
        process.stdout.write(`${JSON.stringify(e)}\n`);
        return;
      }
      if (!human) return;
      const now = Date.now();
      if (tty) {
        process.stderr.write(`\r\x1b[2K${human}`);
      } else if (now - lastHuman > 1000) {
        lastHuman = now;
        process.stderr.write(`${human}\n`);
      }
    },
    note(text) {
      if (json) process.stdout.write(`${JSON.stringify({ event: 'note', message: text })}\n`);
      else process.stderr.write(`${tty ? '\r\x1b[2K' : ''}${text}\n`);
    },
    result(value, human) {
      if (json) process.stdout.write(`${JSON.stringify({ event: 'result', ...value })}\n`);
      else process.stdout.write(`${tty ? '\r\x1b[2K' : ''}${human}\n`);
    },
  };
}
