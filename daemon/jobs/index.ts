/** The executors of every job kind, as the daemon runs them. */
import type { JobExecutor } from './executor.js';
import { editKeyframeExecutor, stylizeExecutor } from './img2img-jobs.js';
import { finetuneExecutor, runExecutor } from './training-jobs.js';
import { deflickerExecutor } from './deflicker-jobs.js';

export function defaultExecutors(): JobExecutor[] {
  return [stylizeExecutor, editKeyframeExecutor, finetuneExecutor, runExecutor, deflickerExecutor];
}
