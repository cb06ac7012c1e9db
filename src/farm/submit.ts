/**
 * Submitting a farm job's stages to Slurm, resuming it, cancelling it.
 *   submit: sbatch the planned stages in order, each `--dependency=afterok:` on the one before; if sbatch
 *     refuses a later stage, the earlier ones are cancelled (no half-submitted job waits forever).
 *   resume: with nothing of the job running, cancel what still waits (an assembly whose array lost a task waits
 *     forever on DependencyNeverSatisfied), then submit what the shared folder still lacks.
 *   cancel: scancel every job of every submission.
 */
import { VidpriorError } from '../errors.js';
import { type Stage, arraySpec, farmProgress, planStages } from './plan.js';
import { writeStageScripts } from './sbatch-script.js';
import type { Slurm } from './slurm.js';
import type { FarmSpec } from './spec.js';
import { type Submission, jobIds, readState, registerJobs, writeState } from './state.js';

export interface SubmitOutcome {
  submission: Submission | null;
  stages: Stage[];
}

/** Submits `stages` in order; returns their job ids (recorded in state.json, and in the registry when given). */
export async function submitStages(
  spec: FarmSpec,
  stages: Stage[],
  slurm: Slurm,
  registryDir?: string,
): Promise<Submission | null> {
  if (stages.length === 0) return null;
  const scripts = await writeStageScripts(spec);
  const submitted: string[] = [];
  const submission: Partial<Submission> = { at: new Date().toISOString() };
  let after: string | null = null;
  try {
    for (const stage of stages) {
      const args = after ? [`--dependency=afterok:${after}`] : [];
      if (stage.name === 'stylize') args.push(`--array=${arraySpec(stage.chunks ?? [])}`);
      const id = await slurm.sbatch(scripts[stage.name], args);
      submitted.push(id);
      if (stage.name === 'finetune') submission.finetune = id;
      else if (stage.name === 'stylize') submission.stylize = { job: id, chunks: stage.chunks ?? [] };
      else submission.assemble = id;
      after = id;
    }
  } catch (err) {
    await slurm.cancel(submitted).catch(() => {});
    throw err;
  }
  const done = submission as Submission;
  const state = await readState(spec);
  state.submissions.push(done);
  await writeState(spec, state);
  if (registryDir) await registerJobs(registryDir, submitted, spec.shared);
  return done;
}

/** The first submission of a prepared farm job. */
export async function submitFarm(spec: FarmSpec, slurm: Slurm, registryDir?: string): Promise<SubmitOutcome> {
  const stages = planStages(farmProgress(spec));
  return { submission: await submitStages(spec, stages, slurm, registryDir), stages };
}

/** Resubmits only what is missing. Refuses (E_BUSY) while a task of the job still runs. */
export async function resumeFarm(spec: FarmSpec, slurm: Slurm, registryDir?: string): Promise<SubmitOutcome> {
  const state = await readState(spec);
  const queued = await slurm.queue(jobIds(state));
  const running = queued.filter((t) => t.state !== 'PENDING');
  if (running.length > 0) {
    throw new VidpriorError(
      'E_BUSY',
      `farm job ${spec.shared} still has ${running.length} task(s) running (${running.map((t) => t.id).join(', ')}): wait for them, or cancel the job first`,
      { running: running.map((t) => t.id) },
    );
  }
  // What waits would run after (or instead of) what is resubmitted: drop it, the new plan covers it.
  await slurm.cancel(queued.map((t) => t.id));
  const stages = planStages(farmProgress(spec));
  return { submission: await submitStages(spec, stages, slurm, registryDir), stages };
}

export async function cancelFarm(spec: FarmSpec, slurm: Slurm): Promise<string[]> {
  const state = await readState(spec);
  const queued = await slurm.queue(jobIds(state));
  const jobs = [...new Set(queued.map((t) => t.id.split('_')[0]!))];
  await slurm.cancel(jobs);
  return jobs;
}
