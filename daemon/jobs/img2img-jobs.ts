/**
 * The two job kinds that are img2img on the library's pipeline (src/pipelines/img2img.ts):
 *   - stylize: every frame, low strength, the same noise for each (step 4 of the method);
 *   - edit-keyframe: one frame, high strength, one candidate per seed (step 1).
 * Both make each output depend only on the job spec, so a job resumed after a crash writes the same bytes.
 */
import { VidpriorError } from '../../src/errors.js';
import { outputFrameName } from '../../src/io/inputs.js';
import { stylizeFrames, type StylizeProgress } from '../../src/pipelines/img2img.js';
import { float32 } from '../../src/tensor.js';
import type { EditKeyframeParams, StyleLoraParam, StylizeParams } from '../../protocol/params.js';
import type { ExecutorContext, ExecutorResult, JobExecutor } from './executor.js';
import { admitJob, encodeJobFrame, fitPlan, readJobFrame, workModelOf } from './frames.js';

async function loadModel(ctx: ExecutorContext, adapter: string | undefined, loras: StyleLoraParam[] | undefined) {
  ctx.progress({ stage: 'loading', fraction: 0, message: `loading model ${ctx.model.name}` });
  const loaded = await ctx.model.get();
  // Always the host's UNet (plain, styled or adapted), never the model's own field: the host keeps one resident.
  const styles = await ctx.model.styles(loras);
  const unet = await ctx.model.unet(adapter, styles);
  const textEncoder = await ctx.model.textEncoder(styles);
  const model = textEncoder === loaded.model.textEncoder ? loaded.model : { ...loaded.model, textEncoder };
  return { ...loaded, model, unet };
}

async function noiseTensor(ctx: ExecutorContext) {
  const data = await ctx.readNoise();
  return data && ctx.spec.noise ? float32(ctx.spec.noise.dims, data) : undefined;
}

/** img2img runs int(steps × strength) denoising steps: refuse at submit a job that would run none. */
export function checkSomeSteps(p: { steps: number; strength: number }): void {
  if (Math.floor(p.steps * p.strength) < 1) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `params.strength ${p.strength} with params.steps ${p.steps} runs no denoising step (int(${p.steps} × ${p.strength}) = 0): raise one of them`,
      { field: 'params.steps' },
    );
  }
}

export const stylizeExecutor: JobExecutor = {
  kind: 'stylize',
  unavailable: () => null,
  plan({ params, inputNames }) {
    checkSomeSteps(params as StylizeParams);
    const names = inputNames.map(outputFrameName);
    const seen = new Set<string>();
    for (const [i, n] of names.entries()) {
      if (seen.has(n))
        throw new VidpriorError(
          'E_BAD_REQUEST',
          `frames[${i}] would be written as ${n}, like an earlier frame: rename one`,
          { field: `frames[${i}].name` },
        );
      seen.add(n);
    }
    return names;
  },
  async run(ctx): Promise<ExecutorResult> {
    const p = ctx.spec.params as StylizeParams;
    const total = ctx.spec.inputs.length;
    // 1. Which frames are left. Frames are run in batches aligned to multiples of `batch`, as an uninterrupted
    //    run would group them, so a resumed job gives the same bytes even where batching changes rounding.
    const batch = p.batch;
    const todo: number[] = [];
    for (let g = 0; g < total; g += batch) {
      const group = Array.from({ length: Math.min(batch, total - g) }, (_, i) => g + i);
      if (group.some((i) => !ctx.isDone(i))) todo.push(...group);
    }
    if (todo.length === 0) return {};
    const doneBefore = total - todo.filter((i) => !ctx.isDone(i)).length;

    // 2. Model (and adapter) — loaded once per daemon, kept for the next job.
    const { model, runtime, unet } = await loadModel(ctx, p.adapter, p.loras);

    // 3. Run the pipeline over the frames left; each finished frame is stored and streamed at once.
    let finished = 0;
    const onProgress = (s: StylizeProgress): void => {
      const inBatch = s.phase === 'denoise' ? (s.step / Math.max(1, s.steps)) * Math.min(batch, s.frames) : 0;
      const completed = s.phase === 'frame' ? s.frame : Math.max(0, s.frame - Math.min(batch, s.frames));
      ctx.progress({
        stage: s.phase === 'encode' ? 'encoding' : 'denoising',
        fraction: Math.min(1, (doneBefore + Math.max(finished, completed) + inBatch) / total),
        frame: todo[Math.min(todo.length - 1, Math.max(0, s.frame - 1))],
        step: s.step,
        steps: s.steps,
      });
    };
    const plan = fitPlan(model, ctx.spec.width, ctx.spec.height, p.work_size);
    // Admitted at submit with the model then loaded (or SD 1.x's sizes): checked again with this one's.
    const work = workModelOf(model, runtime.decision.ep);
    if (ctx.memoryLimit) admitJob(plan, { batch, guided: p.guidance > 1 }, work, ctx.memoryLimit);
    await stylizeFrames(
      model,
      runtime,
      {
        count: todo.length,
        width: plan.working.width,
        height: plan.working.height,
        read: (i) => readJobFrame(ctx.inputPath(todo[i]!), plan),
      },
      async (i, image) => {
        const index = todo[i]!;
        finished++;
        if (ctx.isDone(index)) return; // re-run only to keep its batch whole
        await ctx.emitFrame(index, await encodeJobFrame(image, plan));
      },
      {
        prompt: p.prompt,
        negativePrompt: p.negative_prompt,
        strength: p.strength,
        steps: p.steps,
        guidance: p.guidance,
        seed: p.seed,
        noise: await noiseTensor(ctx),
        batch,
        unet,
        signal: ctx.signal,
        onProgress,
      },
    );
    return {};
  },
};

export const editKeyframeExecutor: JobExecutor = {
  kind: 'edit-keyframe',
  unavailable: () => null,
  plan({ params, inputNames }) {
    const p = params as EditKeyframeParams;
    checkSomeSteps(p);
    if (p.frame >= inputNames.length) {
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `params.frame is ${p.frame} but the job has ${inputNames.length} frame(s)`,
        { field: 'params.frame' },
      );
    }
    return Array.from({ length: p.candidates }, (_, k) => `candidate-${k}-seed${p.seed + k}.png`);
  },
  async run(ctx): Promise<ExecutorResult> {
    const p = ctx.spec.params as EditKeyframeParams;
    const { model, runtime, unet } = await loadModel(ctx, p.adapter, p.loras);
    const plan = fitPlan(model, ctx.spec.width, ctx.spec.height, p.work_size);
    const work = workModelOf(model, runtime.decision.ep);
    if (ctx.memoryLimit) admitJob(plan, { batch: 1, guided: p.guidance > 1 }, work, ctx.memoryLimit);
    const image = await readJobFrame(ctx.inputPath(p.frame), plan);
    // One pipeline run per candidate: candidate k is img2img of the frame with seed + k.
    for (let k = 0; k < p.candidates; k++) {
      if (ctx.isDone(k)) continue;
      await stylizeFrames(
        model,
        runtime,
        { count: 1, width: plan.working.width, height: plan.working.height, read: () => image },
        async (_i, out) => {
          await ctx.emitFrame(k, await encodeJobFrame(out, plan), { seed: p.seed + k });
        },
        {
          prompt: p.prompt,
          negativePrompt: p.negative_prompt,
          strength: p.strength,
          steps: p.steps,
          guidance: p.guidance,
          seed: p.seed + k,
          unet,
          signal: ctx.signal,
          onProgress: (s) =>
            ctx.progress({
              stage: s.phase === 'encode' ? 'encoding' : 'denoising',
              fraction: (k + (s.phase === 'frame' ? 1 : s.step / Math.max(1, s.steps))) / p.candidates,
              frame: p.frame,
              step: s.step,
              steps: s.steps,
              message: `candidate ${k + 1} of ${p.candidates} (seed ${p.seed + k})`,
            }),
        },
      );
    }
    return {};
  },
};
