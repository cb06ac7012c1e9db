/**
 * finetune (steps 2–3 of the method) and run (the whole method). Their requests are checked in full now —
 * parameters, edits — so clients can be written against them; running them needs the LoRA training code
 * (issue 3), and until this build has it they are refused at submit with E_BAD_REQUEST saying so.
 */
import { VidpriorError } from '../../src/errors.js';
import type { JobExecutor } from './executor.js';
import { stylizeExecutor } from './img2img-jobs.js';

const NOT_YET = 'per-video fine-tuning (LoRA training, issue 3) is not wired into the daemon yet';

function checkEdits(edits: { frame: number }[]): void {
  if (edits.length === 0) {
    throw new VidpriorError('E_BAD_REQUEST', 'fine-tuning needs at least one edited keyframe in "edits" (the conditional samples of the method)', { field: 'edits' });
  }
  const seen = new Set<number>();
  for (const [i, e] of edits.entries()) {
    if (seen.has(e.frame)) throw new VidpriorError('E_BAD_REQUEST', `edits[${i}].frame ${e.frame} is edited twice`, { field: `edits[${i}].frame` });
    seen.add(e.frame);
  }
}

export const finetuneExecutor: JobExecutor = {
  kind: 'finetune',
  unavailable: () => NOT_YET,
  plan({ edits }) {
    checkEdits(edits);
    return [];
  },
  async run() {
    throw new VidpriorError('E_BAD_REQUEST', `finetune jobs are not available in this build yet: ${NOT_YET}`);
  },
};

export const runExecutor: JobExecutor = {
  kind: 'run',
  unavailable: () => NOT_YET,
  plan(job) {
    checkEdits(job.edits);
    return stylizeExecutor.plan(job);
  },
  async run() {
    throw new VidpriorError('E_BAD_REQUEST', `run jobs are not available in this build yet: ${NOT_YET}`);
  },
};
