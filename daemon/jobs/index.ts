/** The executors of every job kind, as the daemon runs them. */
import type { JobExecutor } from './executor.js';
import { editKeyframeExecutor, stylizeExecutor } from './img2img-jobs.js';
import { finetuneExecutor, runExecutor } from './training-jobs.js';
import { deflickerExecutor } from './deflicker-jobs.js';
import { type SlurmTarget, farmExecutor } from './farm-jobs.js';

/** `slurm`: where farm jobs go (without it, the farm kind is listed as unavailable). */
export function defaultExecutors(opts: { slurm?: SlurmTarget } = {}): JobExecutor[] {
  return [
    stylizeExecutor,
    editKeyframeExecutor,
    finetuneExecutor,
    runExecutor,
    deflickerExecutor,
    farmExecutor(opts.slurm ?? null),
  ];
}
