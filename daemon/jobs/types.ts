/**
 * What a job is on disk. A job folder under `<data-dir>/jobs/<id>/` holds:
 *   spec.json    what was asked (kind, parameters with defaults, input and output names) — written once
 *   inputs/      the input frames, as received (00000.png, 00001.jpg, …); edits/ the edited keyframes
 *   noise.bin    explicit initial noise when the client sent one (float32 little-endian)
 *   outputs/     finished output frames; a file exists only once complete (atomic rename)
 *   state.json   where the job stands (state, stage, timestamps, error, executor checkpoint data)
 *   outcome.json the job's end, in 4 KiB reserved at create, for when state.json cannot be written (outcome.ts)
 *   adapters/    what a finetune/run job trains (its checkpoints)
 * The folder alone is enough to resume the job after a restart. Once the job has ended, what only served to
 * run it (inputs/, edits/, noise.bin, adapters/) is removed; the rest goes after the retention time (retention.ts).
 */
import type { ErrorCode } from '../../src/errors.js';
import type { JobKind } from '../../protocol/params.js';
import type { JobState } from '../../protocol/messages.js';

export const SPEC_VERSION = 1;

export interface JobSpec {
  version: typeof SPEC_VERSION;
  id: string;
  kind: JobKind;
  /** Parameters with defaults filled in (checked by protocol/params.ts). */
  params: Record<string, unknown>;
  name?: string;
  created_at: string;
  /** Input frames in order: the name given by the client and the file under the job folder. */
  inputs: { name: string; file: string }[];
  /** Edited keyframes (finetune/run): the input frame they edit and their file. */
  edits: { frame: number; file: string }[];
  noise?: { dims: number[]; file: string };
  /** Frame size of the inputs (all the same). */
  width: number;
  height: number;
  /** Output frame names by output index, fixed at submit (so progress, replay and resume agree). */
  outputs: string[];
  /** Also copy output frames to this folder (already checked against the allowed folders). */
  output_dir?: string;
  /** Where the job came from: a websocket client or a watched folder (its path). */
  origin: { via: 'socket' } | { via: 'watch'; folder: string };
}

export interface JobStatus {
  state: JobState;
  stage: string;
  fraction: number;
  started_at?: string;
  finished_at?: string;
  error?: { code: ErrorCode; message: string; details?: Record<string, unknown> };
  /** The adapter a training job wrote. */
  adapter?: string;
  /**
   * Starts of this job that did not end: counted up (durably) when it starts running, down when the daemon stops
   * cleanly. At 2, the daemon died twice while running it: the next start fails it with E_CRASHED.
   */
  unfinished_starts?: number;
  /** Seconds spent running, summed over restarts. */
  elapsed_s: number;
  /** Executor-private data that must survive a restart (e.g. the last training checkpoint). */
  checkpoint?: Record<string, unknown>;
}
