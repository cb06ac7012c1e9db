/**
 * The contract between the job queue and the code that does a job's work. The queue owns persistence,
 * ordering, events and cancellation; an executor only computes, through its context:
 *   - `signal` aborts at the next step (cancel, or daemon shutdown — the queue tells them apart);
 *   - `progress` reports where it is (throttled and broadcast by the queue);
 *   - `emitFrame` hands over a finished output frame (written durably, then streamed);
 *   - `isDone(i)` says which outputs already exist, so a resumed job skips them;
 *   - `checkpoint` keeps executor data across a restart.
 * Executors must make every output frame depend only on the job's spec (not on what ran before in this
 * process), so that a job resumed after a crash gives the same frames as an uninterrupted run.
 */
import type { JobKind } from '../../protocol/params.js';
import type { ModelHost } from './model-host.js';
import type { JobSpec } from './types.js';

export interface ProgressUpdate {
  stage: string;
  /** Whole-job progress, 0..1. */
  fraction: number;
  frame?: number;
  step?: number;
  steps?: number;
  iteration?: number;
  iterations?: number;
  loss?: number;
  message?: string;
}

export interface ExecutorContext {
  readonly spec: JobSpec;
  readonly signal: AbortSignal;
  readonly model: ModelHost;
  progress(update: ProgressUpdate): void;
  /** Stores output `index` (PNG bytes) durably and streams it to subscribers. */
  emitFrame(index: number, png: Uint8Array, extra?: { seed?: number }): Promise<void>;
  isDone(index: number): boolean;
  /** The file of input frame `index` / edited keyframe `index` in the job folder. */
  inputPath(index: number): string;
  editPath(index: number): string;
  /** Bytes a job may need beyond the model (checked again with the loaded model's working size); absent: no check. */
  readonly memoryLimit?: number;
  /** The client's explicit initial noise, if it sent one. */
  readNoise(): Promise<Float32Array | undefined>;
  /** This job's folder for training checkpoints (exists). */
  readonly adapterDir: string;
  /** Executor data that survives a restart (persisted durably by `saveCheckpoint`). */
  readonly checkpoint: Record<string, unknown> | undefined;
  saveCheckpoint(data: Record<string, unknown>): Promise<void>;
}

export interface ExecutorResult {
  /** The adapter a training job produced (its name, listed by `list_models`). */
  adapter?: string;
}

export interface JobExecutor {
  readonly kind: JobKind;
  /** null when this build can run the kind, else why not (sent as E_BAD_REQUEST at submit). */
  unavailable(): string | null;
  /**
   * Checks a submitted job beyond its parameter schema (frame count, edits, the `frame` index…) and returns
   * its output frame names, by output index. Throws VidpriorError naming the bad value.
   */
  plan(job: { params: Record<string, unknown>; inputNames: string[]; edits: { frame: number }[] }): string[];
  run(ctx: ExecutorContext): Promise<ExecutorResult>;
}
