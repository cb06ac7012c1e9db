/**
 * What a job looks like on the wire: a JobRecord (spec + status on disk) turned into the protocol's JobSummary,
 * JobDetail, progress event and terminal event. Pure: the queue passes what only it knows (the job's place in
 * the line, the last training iteration reported).
 */
import { join } from 'node:path';
import {
  type JobDetail,
  type JobEvent,
  type JobSummary,
  type Progress,
  plainDetails,
} from '../../protocol/messages.js';
import type { ProgressUpdate } from './executor.js';
import type { JobRecord } from './store.js';

/** What the queue knows of a job beyond its record. */
export interface QueueFacts {
  /** Place in the waiting line (0: next), for a queued job. */
  position?: number;
  /** The last training iteration reported while the job runs. */
  iterationsDone?: number;
}

function framesDone(job: JobRecord): number {
  return job.outputDone.filter(Boolean).length;
}

/** Iterations of a training job (its `iters`), done ones as last reported (all of them once done). */
function iterationsOf(
  job: JobRecord,
  done: number | undefined,
): { iterations_total?: number; iterations_done?: number } {
  const total = job.spec.params.iters;
  if (typeof total !== 'number' || !['finetune', 'run'].includes(job.spec.kind)) return {};
  const reached = job.status.state === 'done' ? total : (done ?? 0);
  return { iterations_total: total, iterations_done: Math.min(total, reached) };
}

export function jobSummary(job: JobRecord, facts: QueueFacts = {}): JobSummary {
  const s = job.status;
  return {
    id: job.spec.id,
    kind: job.spec.kind,
    state: s.state,
    ...(job.spec.name ? { name: job.spec.name } : {}),
    created_at: job.spec.created_at,
    ...(s.started_at ? { started_at: s.started_at } : {}),
    ...(s.finished_at ? { finished_at: s.finished_at } : {}),
    frames_total: job.spec.outputs.length,
    frames_done: framesDone(job),
    fraction: s.state === 'done' ? 1 : s.fraction,
    ...iterationsOf(job, facts.iterationsDone),
    ...(s.error ? { error: { code: s.error.code, message: s.error.message } } : {}),
  };
}

/** The summary plus what was asked, the inputs, the finished outputs ('' for one not written yet). */
export function jobDetail(job: JobRecord, facts: QueueFacts = {}): JobDetail {
  return {
    ...jobSummary(job, facts),
    params: job.spec.params,
    inputs: job.spec.inputs.map((i) => i.name),
    outputs: job.spec.outputs.map((n, i) => (job.outputDone[i] ? n : '')),
    ...(facts.position !== undefined ? { position: facts.position } : {}),
    ...(job.status.adapter ? { adapter: job.status.adapter } : {}),
  };
}

/** The progress event that describes a job now (sent on attach and on state changes). */
export function progressEvent(job: JobRecord, facts: QueueFacts = {}, update?: Partial<ProgressUpdate>): Progress {
  return {
    type: 'progress',
    job: job.spec.id,
    state: job.status.state,
    stage: job.status.stage,
    fraction: job.status.state === 'done' ? 1 : job.status.fraction,
    frames_done: framesDone(job),
    frames_total: job.spec.outputs.length,
    ...(facts.position !== undefined ? { position: facts.position } : {}),
    ...update,
  };
}

/** One finished output frame (live, or replayed to a client that attaches later). */
export function frameEvent(
  job: JobRecord,
  index: number,
  png: Uint8Array,
  replay: boolean,
  seed?: number,
): Extract<JobEvent, { type: 'frame' }> {
  return {
    type: 'frame',
    job: job.spec.id,
    index,
    name: job.spec.outputs[index]!,
    png,
    replay,
    ...(seed !== undefined ? { seed } : {}),
  };
}

/** The event that ends a job's stream: done, or error with the job's code. */
export function terminalEvent(job: JobRecord): JobEvent {
  if (job.status.state === 'done') {
    return {
      type: 'done',
      job: job.spec.id,
      outputs: {
        frames: job.spec.outputs.length,
        names: job.spec.outputs,
        ...(job.status.adapter ? { adapter: job.status.adapter } : {}),
        dir: join(job.dir, 'outputs'),
      },
      elapsed_s: Math.round(job.status.elapsed_s * 1000) / 1000,
    };
  }
  const e = job.status.error ?? {
    code: 'E_INTERNAL' as const,
    message: `job ended as ${job.status.state} without an error`,
  };
  return {
    type: 'error',
    job: job.spec.id,
    code: e.code,
    message: e.message,
    ...(e.details ? { details: plainDetails(e.details) } : {}),
  };
}
