/**
 * The submissions of a farm job (state.json: the Slurm job ids of each submit or resume) and its status:
 * Slurm's view of those jobs joined with what the shared folder holds (frames written, adapter, summary).
 * A small registry (<data dir>/farm/<job id> → shared folder) lets `status 1234` find the folder.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { VidpriorError } from '../errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic-write.js';
import { type FarmProgress, farmProgress } from './plan.js';
import { type Slurm, type TaskState, isActive } from './slurm.js';
import { type FarmSpec, farmPaths } from './spec.js';

export interface Submission {
  at: string;
  finetune?: string;
  /** The stylize job array and the chunks it runs. */
  stylize?: { job: string; chunks: number[] };
  assemble: string;
}

export interface FarmState {
  submissions: Submission[];
}

export async function readState(spec: FarmSpec): Promise<FarmState> {
  try {
    return JSON.parse(await readFile(farmPaths(spec.shared).state, 'utf8')) as FarmState;
  } catch {
    return { submissions: [] };
  }
}

export async function writeState(spec: FarmSpec, state: FarmState): Promise<void> {
  await writeJsonAtomic(farmPaths(spec.shared).state, state);
}

/** Every Slurm job id of the farm job, oldest first. */
export function jobIds(state: FarmState): string[] {
  return state.submissions.flatMap((s) => [s.finetune, s.stylize?.job, s.assemble].filter((x): x is string => !!x));
}

/** Remembers which folder a job id belongs to, so `status <id>` works from anywhere. */
export async function registerJobs(dataDir: string, ids: string[], shared: string): Promise<void> {
  for (const id of ids) await writeFileAtomic(join(dataDir, 'farm', id), `${resolve(shared)}\n`, false);
}

/** A farm folder (or its farm.json) as given, or the folder a registered job id belongs to. */
export async function findFarmFolder(job: string, dataDir: string): Promise<string> {
  if (existsSync(job)) return job.endsWith('farm.json') ? resolve(job, '..') : resolve(job);
  const id = /^(\d+)(?:_\d+)?$/.exec(job)?.[1];
  if (id) {
    const entry = join(dataDir, 'farm', id);
    if (existsSync(entry)) return (await readFile(entry, 'utf8')).trim();
  }
  throw new VidpriorError(
    'E_NOT_FOUND',
    `no farm job ${JSON.stringify(job)}: give the folder \`farm slurm submit\` printed, or one of its job ids`,
    { job },
  );
}

export type FarmPhase = 'done' | 'running' | 'queued' | 'stopped';

export interface FarmStatus {
  shared: string;
  output: string;
  /** done: assembled; running/queued: Slurm still has work; stopped: nothing queued and not done (resume). */
  phase: FarmPhase;
  progress: FarmProgress;
  /** Slurm's word on each task that is queued, running, or (when it remembers) finished. */
  tasks: TaskState[];
  /** Tasks that ended other than COMPLETED (failed, cancelled, timed out, out of memory). */
  failed: TaskState[];
  jobs: string[];
}

export async function farmStatus(spec: FarmSpec, slurm: Slurm): Promise<FarmStatus> {
  const state = await readState(spec);
  const ids = jobIds(state);
  const queued = await slurm.queue(ids);
  const seen = new Set(queued.map((t) => t.id));
  const finished = (await slurm.history(ids)).filter((t) => !seen.has(t.id) && !isActive(t.state));
  const tasks = [...queued, ...finished];
  const progress = farmProgress(spec);
  let phase: FarmPhase;
  if (progress.assembled) phase = 'done';
  else if (queued.some((t) => t.state === 'RUNNING' || t.state === 'COMPLETING')) phase = 'running';
  else if (queued.some((t) => t.reason !== 'DependencyNeverSatisfied')) phase = 'queued';
  else phase = 'stopped';
  return {
    shared: spec.shared,
    output: spec.output.path,
    phase,
    progress,
    tasks,
    failed: finished.filter((t) => t.state !== 'COMPLETED'),
    jobs: ids,
  };
}
