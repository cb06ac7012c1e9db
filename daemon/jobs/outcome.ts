/**
 * A job's end, kept even when the disk is full. Ending a job rewrites state.json (a new file renamed over the
 * old), which needs free space; on a full disk that fails, and a job whose client was already told it failed
 * would run again after a restart. So every job folder gets outcome.json at create: 4 KiB reserved up front and
 * later overwritten in place, which needs no new space on the usual filesystems (ext4, xfs, tmpfs; a
 * copy-on-write one may still refuse). When loading, a terminal outcome wins over a state.json that is not.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../src/io/atomic-write.js';
import { TERMINAL_STATES } from '../../protocol/messages.js';
import type { JobStatus } from './types.js';

export const OUTCOME_FILE = 'outcome.json';
const SIZE = 4096;

type Outcome = Pick<JobStatus, 'state' | 'error' | 'finished_at'>;

function padded(value: unknown): string {
  const text = JSON.stringify(value);
  return text + ' '.repeat(Math.max(0, SIZE - Buffer.byteLength(text)));
}

/** Reserves the space (part of creating a job folder). */
export async function reserveOutcome(dir: string): Promise<void> {
  await writeFileAtomic(join(dir, OUTCOME_FILE), padded({ state: null }));
}

/** Writes a job's end into its reserved space, durably. */
export async function recordOutcome(dir: string, status: JobStatus): Promise<void> {
  const error = status.error && { code: status.error.code, message: status.error.message.slice(0, 1000) };
  const text = padded({ state: status.state, finished_at: status.finished_at, ...(error ? { error } : {}) });
  if (Buffer.byteLength(text) > SIZE) throw new RangeError('outcome larger than its reserved space');
  const fh = await open(join(dir, OUTCOME_FILE), 'r+');
  try {
    await fh.write(text, 0, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The recorded end of a job, if it has one. */
export async function readOutcome(dir: string): Promise<Outcome | null> {
  try {
    const fh = await open(join(dir, OUTCOME_FILE), 'r');
    try {
      const value = JSON.parse((await fh.readFile('utf8')).trim()) as Outcome;
      return TERMINAL_STATES.includes(value.state) ? value : null;
    } finally {
      await fh.close();
    }
  } catch {
    return null; // none (a job of an older daemon) or unreadable: state.json stands
  }
}
