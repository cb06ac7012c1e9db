/**
 * deflicker: Deep Video Prior as a post-pass on any processed video (src/deflicker). The job's `frames` are
 * the original clip and its `edits` the processed version of every frame (`edits[k].frame` says which); each
 * output is the deflickered frame, named like its input. Training checkpoints go to the job's adapters/
 * folder at every epoch end: a job resumed after a restart continues training from there (to the same
 * weights as an uninterrupted run) or, when training had finished, only makes the frames still missing.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { VidpriorError } from '../../src/errors.js';
import { DEFLICKER_DEFAULTS, deflicker } from '../../src/deflicker/deflicker.js';
import { outputFrameName } from '../../src/io/inputs.js';
import { planFit } from '../../src/io/size.js';
import type { DeflickerParams } from '../../protocol/params.js';
import type { JobExecutor } from './executor.js';
import { encodeJobFrame } from './frames.js';

/** Every frame needs exactly one processed version. */
function checkPairs(frames: number, edits: { frame: number }[]): void {
  const seen = new Set<number>();
  for (const [i, e] of edits.entries()) {
    if (seen.has(e.frame))
      throw new VidpriorError('E_BAD_REQUEST', `edits[${i}].frame ${e.frame} has a processed frame already`, {
        field: `edits[${i}].frame`,
      });
    seen.add(e.frame);
  }
  if (edits.length !== frames) {
    const missing = [...Array(frames).keys()].find((i) => !seen.has(i));
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `deflicker needs the processed version of every frame in "edits" (${frames} frames, ${edits.length} edits${missing !== undefined ? `; frame ${missing} has none` : ''})`,
      { field: 'edits' },
    );
  }
}

export const deflickerExecutor: JobExecutor = {
  kind: 'deflicker',
  unavailable: () => null,
  plan({ inputNames, edits }) {
    checkPairs(inputNames.length, edits);
    const names = inputNames.map(outputFrameName);
    const seen = new Set<string>();
    for (const [i, n] of names.entries()) {
      if (seen.has(n))
        throw new VidpriorError(
          'E_BAD_REQUEST',
          `frames[${i}] would be written as ${n}, like an earlier frame: rename one`,
          {
            field: `frames[${i}].name`,
          },
        );
      seen.add(n);
    }
    return names;
  },
  async run(ctx) {
    const p = ctx.spec.params as DeflickerParams;
    const n = ctx.spec.inputs.length;
    const checkpointPath = join(ctx.adapterDir, 'deflicker-checkpoint.safetensors');
    // A job resumed after its last frame was stored has nothing left to do.
    if ([...Array(n).keys()].every((i) => ctx.isDone(i))) {
      await rm(checkpointPath, { force: true });
      return {};
    }
    // 1. A runtime (the model host's: one provider per daemon); the UNet is not needed meanwhile.
    ctx.progress({ stage: 'loading', fraction: 0, message: 'starting the runtime' });
    const { runtime } = await ctx.model.get();
    await ctx.model.releaseUnet();
    const processed: string[] = [];
    for (const [k, e] of ctx.spec.edits.entries()) processed[e.frame] = ctx.editPath(k);
    const identity = planFit(ctx.spec.width, ctx.spec.height, 1);

    // 2. Train (or resume) and apply; each frame is stored as soon as it is made.
    await deflicker(
      runtime,
      {
        originals: ctx.spec.inputs.map((_, i) => ctx.inputPath(i)),
        processed,
        width: ctx.spec.width,
        height: ctx.spec.height,
      },
      {
        width: p.width,
        scales: p.scales,
        seed: p.seed,
        irt: p.irt,
        epochs: p.epochs,
        irtInitEpochs: p.irt_init_epochs,
        lr: p.lr,
        batch: p.batch,
        gradientWeight: p.gradient_weight,
        gradientScales: DEFLICKER_DEFAULTS.gradientScales,
        earlyStop: p.early_stop ? DEFLICKER_DEFAULTS.earlyStop : null,
        checkpointEvery: 0,
        checkpointPath,
        resume: true,
        workingSize: p.working_size,
        applyBatch: p.apply_batch,
        isDone: (i) => ctx.isDone(i),
        signal: ctx.signal,
        onProgress: (u) =>
          ctx.progress(
            'frame' in u
              ? { stage: u.stage, fraction: u.fraction, frame: u.frame - 1, message: `frame ${u.frame}/${u.frames}` }
              : {
                  stage: u.stage,
                  fraction: u.fraction,
                  iteration: u.step,
                  iterations: u.steps,
                  ...(u.loss !== undefined ? { loss: u.loss } : {}),
                  message: `epoch ${u.epoch}/${u.epochs}`,
                },
          ),
      },
      async (i, frame) => {
        await ctx.emitFrame(i, await encodeJobFrame(frame, identity));
      },
    );
    // 3. Every frame is stored: the checkpoint is no longer needed.
    if ([...Array(n).keys()].every((i) => ctx.isDone(i))) await rm(checkpointPath, { force: true });
    return {};
  },
};
