/**
 * Training speed and memory: steps/s of the fine-tuning step (UNet + LoRA forward, backward, AdamW in one
 * ONNX graph) at batch 1 on 512×512-frame latents, beside the UNet's forward step/s at batch 1 measured in the
 * same run (the ratio says what the backward pass costs), plus the graph's size and the process's peak
 * resident memory while training. On the GPU machine: `--ep webgpu --preset sd15`; the reference there is
 * PyTorch training the attention projections at 8.0 steps/s (bf16, batch 1, 7.1 GB): see ../shared/gpu/README.md.
 */
import { Rng } from '../src/random.js';
import { openRuntime } from '../src/runtime/index.js';
import { isGpuTensor } from '../src/runtime/types.js';
import { float32 } from '../src/tensor.js';
import { castFloat } from '../src/tensor.js';
import { timestepTensor } from '../src/pipelines/denoise.js';
import { finetune } from '../src/training/finetune.js';
import { type BenchContext, type BenchModule, hostInfo, loadBenchModel, round, timeInterleaved } from './common.js';

async function runTrainingBench(ctx: BenchContext): Promise<unknown> {
  const runtime = await openRuntime({ ep: ctx.ep });
  ctx.log(`training: ${runtime.decision.ep} (${runtime.decision.reason})`);
  const model = await loadBenchModel(ctx, runtime, false);
  const { facts, io } = model;
  try {
    if (facts.unetType !== 'float32') {
      return { skipped: `training needs a float32 UNet; this bench model is ${facts.unetType} (use --dtype float32)` };
    }
    const side = Math.round(512 / facts.vaeScaleFactor);
    const pixels = side * facts.vaeScaleFactor;
    const rng = new Rng(0);
    const iterations = ctx.quick ? 4 : runtime.decision.ep === 'cpu' ? 12 : 40;

    // 1. Baseline: the UNet's forward step at batch 1, same latents.
    const sample = float32([1, facts.latentChannels, side, side], rng.normalArray(facts.latentChannels * side * side));
    const text = castFloat(
      float32([1, facts.textLength, facts.textWidth], rng.normalArray(facts.textLength * facts.textWidth, 0.5)),
      facts.unetTextType,
    );
    const t = timestepTensor(model, 300);
    const forward = await timeInterleaved(
      {
        forward: async () => {
          const out = await model.unet.run({ [io.unetSample]: sample, [io.unetTimestep]: t, [io.unetText]: text }, [
            io.unetOut,
          ]);
          const y = out[io.unetOut]!;
          if (isGpuTensor(y)) {
            await runtime.read(y);
            await runtime.dispose(y);
          }
        },
      },
      1,
      ctx.quick ? 2 : 4,
    );

    // 2. Training steps: finetune() on two synthetic frames, peak RSS sampled meanwhile (the worker's ORT
    //    allocations are in this process's RSS).
    const frames = [0, 1].map(() =>
      float32(
        [3, pixels, pixels],
        rng.normalArray(3 * pixels * pixels, 0.5).map((v) => Math.max(-1, Math.min(1, v))),
      ),
    );
    let peak = process.memoryUsage().rss;
    const before = peak;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);
    let result: Awaited<ReturnType<typeof finetune>>;
    try {
      result = await finetune(
        runtime,
        model,
        { frames, edits: [{ original: frames[0]!, edited: frames[1]! }] },
        {
          prompt: 'a watercolor painting',
          iterations,
          lr: 1e-4,
          rank: 4,
          maxTimestep: 500,
          conditionalShare: 0.25,
          seed: 0,
          checkpointEvery: 0,
          onProgress: (p) => {
            if (p.stage !== 'training') ctx.log(`training: ${p.message ?? p.stage}`);
          },
        },
      );
    } finally {
      clearInterval(sampler);
    }
    // The first iterations include ORT's first-run planning: report the steady rate from the later half too.
    const stepSeconds = result.secondsPerIteration;
    const forwardSeconds = forward.forward.median;
    return {
      host: hostInfo(),
      ep: runtime.decision.ep,
      preset: ctx.preset,
      latent: [1, facts.latentChannels, side, side],
      iterations,
      lora: { rank: 4, layers: result.adapter.weights.size },
      trainingStepsPerSecond: round(1 / stepSeconds),
      forwardStepsPerSecond: round(1 / forwardSeconds),
      trainingStepVsForward: round(stepSeconds / forwardSeconds),
      peakRssMiB: Math.round(peak / 2 ** 20),
      rssBeforeTrainingMiB: Math.round(before / 2 ** 20),
      validationLoss: { before: round(result.validationBefore), after: round(result.validationAfter) },
      note: 'steps/s include the host work per step (noising, feeds, reading the loss); peak RSS is the whole process (model sessions included)',
    };
  } finally {
    await model.release();
    await runtime.close();
  }
}

export const trainingBench: BenchModule = {
  name: 'training',
  describe:
    'fine-tuning step (UNet+LoRA forward, backward, AdamW) steps/s and peak memory, vs the forward step in the same run',
  run: runTrainingBench,
};
