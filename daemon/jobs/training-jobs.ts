/**
 * finetune (steps 2–3 of the method) and run (the whole method), on the library's training
 * (src/training/finetune.ts: a LoRA, or with `full` every UNet weight):
 *   - finetune: train_frames frames sampled evenly over the clip (unconditional) plus the edited keyframes
 *     (conditional, noised from their original frame), late timesteps only; the adapter is published as
 *     `<data-dir>/adapters/<adapter_name>.safetensors` and named in `done.outputs.adapter`;
 *   - run: the same, then stylize every frame with the new adapter.
 * Training checkpoints go to the job's adapters/ folder every `checkpoint_every` iterations; a job resumed
 * after a restart continues from the last one, to the same result as an uninterrupted run. Once the adapter is
 * published they are removed.
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { config } from '../../src/config.js';
import { VidpriorError } from '../../src/errors.js';
import { FINETUNE_DEFAULTS, FULL_FINETUNE_LR, finetune, sampleFrameIndices } from '../../src/training/finetune.js';
import { saveFinetuned } from '../../src/training/full-delta.js';
import type { FinetuneParams, RunParams, StylizeParams } from '../../protocol/params.js';
import type { ExecutorContext, JobExecutor, ProgressUpdate } from './executor.js';
import { writeJsonAtomic } from '../../src/io/atomic-write.js';
import { fitPlan, readJobFrame } from './frames.js';
import { checkSomeSteps, stylizeExecutor } from './img2img-jobs.js';

function checkEdits(edits: { frame: number }[]): void {
  if (edits.length === 0) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      'fine-tuning needs at least one edited keyframe in "edits" (the conditional samples of the method)',
      { field: 'edits' },
    );
  }
  const seen = new Set<number>();
  for (const [i, e] of edits.entries()) {
    if (seen.has(e.frame))
      throw new VidpriorError('E_BAD_REQUEST', `edits[${i}].frame ${e.frame} is edited twice`, {
        field: `edits[${i}].frame`,
      });
    seen.add(e.frame);
  }
}

/** Trains the adapter of a finetune/run job and publishes it; `share` is the part of the job's progress it covers. */
async function train(ctx: ExecutorContext, p: FinetuneParams, share: number): Promise<string> {
  const name = p.adapter_name ?? ctx.spec.id;
  // A run job resumed after its training finished goes straight to stylizing.
  if (ctx.checkpoint?.trained === name) return name;

  // 1. The model, and the clip at the size stylize will use (so the adapter sees what it will stylize).
  ctx.progress({ stage: 'loading', fraction: 0, message: `loading model ${ctx.model.name}` });
  const loaded = await ctx.model.get();
  const { runtime } = loaded;
  // Training builds its own graph over the UNet's weights: no inference UNet stays on the device meanwhile.
  await ctx.model.releaseUnet();
  // Style LoRAs: in the text encoder that encodes the prompts, and in the UNet the adapter trains on top of.
  const styles = await ctx.model.styles(p.loras);
  const textEncoder = await ctx.model.textEncoder(styles);
  const model = textEncoder === loaded.model.textEncoder ? loaded.model : { ...loaded.model, textEncoder };
  const plan = fitPlan(model, ctx.spec.width, ctx.spec.height, p.work_size);
  const indices = sampleFrameIndices(ctx.spec.inputs.length, p.train_frames);
  const frames = [];
  for (const i of indices) frames.push(await readJobFrame(ctx.inputPath(i), plan));
  const edits = [];
  for (const [k, e] of ctx.spec.edits.entries()) {
    edits.push({
      original: await readJobFrame(ctx.inputPath(e.frame), plan),
      edited: await readJobFrame(ctx.editPath(k), plan),
    });
  }

  // 2. Train, checkpointing into the job folder (resumed from there after a restart).
  const result = await finetune(
    runtime,
    model,
    { frames, edits, description: `${frames.length} of ${ctx.spec.inputs.length} frames of job ${ctx.spec.id}` },
    {
      prompt: p.prompt,
      iterations: p.iters,
      lr: p.lr ?? (p.full ? FULL_FINETUNE_LR : FINETUNE_DEFAULTS.lr),
      rank: p.rank,
      full: p.full,
      ...(config().memoryLimitGb
        ? { memoryLimit: config().memoryLimitGb! * 2 ** 30, memoryLimitSource: 'VIDPRIOR_MEMORY_LIMIT_GB' }
        : {}),
      maxTimestep: p.max_timestep,
      conditionalShare: FINETUNE_DEFAULTS.conditionalShare,
      seed: p.seed,
      checkpointEvery: p.checkpoint_every,
      checkpointPath: join(ctx.adapterDir, 'checkpoint.safetensors'),
      resume: true,
      baseUnet: await ctx.model.baseUnet(styles),
      signal: ctx.signal,
      onProgress: (f) =>
        ctx.progress({
          stage: f.stage === 'training' ? 'training' : f.stage,
          fraction: share * (f.iteration / Math.max(1, f.iterations)),
          iteration: f.iteration,
          iterations: f.iterations,
          ...(f.loss !== undefined ? { loss: f.emaLoss ?? f.loss } : {}),
          ...(f.message ? { message: f.message } : {}),
        }),
    },
  );

  // 3. Publish the adapter under its name (atomic write), for `list_models` and later stylize jobs.
  ctx.progress({ stage: 'saving', fraction: share, message: `saving adapter ${name}` });
  const file = ctx.model.adapterDestination(name);
  await saveFinetuned(file, result.adapter);
  // A sidecar says where the adapter came from (list_models shows it; foreign adapters have none).
  await writeJsonAtomic(file.replace(/\.safetensors$/, '.json'), {
    job: ctx.spec.id,
    prompt: p.prompt,
    created_at: new Date().toISOString(),
  });
  await ctx.saveCheckpoint({ trained: name });
  // Trained and published: a resumed run skips training now, so its checkpoints only take disk.
  for (const f of await readdir(ctx.adapterDir).catch(() => [] as string[]))
    await rm(join(ctx.adapterDir, f), { recursive: true, force: true });
  return name;
}

export const finetuneExecutor: JobExecutor = {
  kind: 'finetune',
  unavailable: () => null,
  plan({ edits }) {
    checkEdits(edits);
    return [];
  },
  async run(ctx) {
    return { adapter: await train(ctx, ctx.spec.params as FinetuneParams, 1) };
  },
};

export const runExecutor: JobExecutor = {
  kind: 'run',
  unavailable: () => null,
  plan(job) {
    checkEdits(job.edits);
    checkSomeSteps(job.params as RunParams);
    return stylizeExecutor.plan(job);
  },
  async run(ctx) {
    const p = ctx.spec.params as RunParams;
    // Progress shares by UNet work: a training iteration ≈ 3 UNet passes (forward + backward), a stylized
    // frame ≈ 2 passes (guidance) per denoising step.
    const trainCost = 3 * p.iters;
    const stylizeCost = 2 * ctx.spec.inputs.length * Math.floor(p.steps * p.strength);
    const share = trainCost / (trainCost + stylizeCost);
    const adapter = await train(ctx, p, share);
    const stylize: StylizeParams = {
      prompt: p.prompt,
      negative_prompt: p.negative_prompt,
      strength: p.strength,
      steps: p.steps,
      guidance: p.guidance,
      seed: p.seed,
      batch: p.batch,
      adapter,
      ...(p.loras ? { loras: p.loras } : {}),
      ...(p.work_size !== undefined ? { work_size: p.work_size } : {}),
    };
    await stylizeExecutor.run({
      ...ctx,
      spec: { ...ctx.spec, params: stylize },
      progress: (u: ProgressUpdate) => ctx.progress({ ...u, fraction: share + (1 - share) * u.fraction }),
    });
    return { adapter };
  },
};
