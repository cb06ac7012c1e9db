/**
 * UNet speed: steps/s of one UNet run on 512×512-image latents (64×64 for SD 1.x), timestep 500, at the
 * classifier-free-guidance batch of one frame (2) and of two frames (4); each with host feeds and outputs
 * (a round trip per step) and with GPU-resident feeds and outputs. Then the whole denoising loop of one frame
 * (guidance on) with the DDIM step on the host vs in the step graph on the GPU. Ratios are to the baselines
 * measured in the same run: batch 4 vs batch 2 per frame, resident vs round trip, device loop vs host loop.
 */
import { DdimScheduler } from '../src/schedulers/ddim.js';
import { img2imgTimesteps } from '../src/schedulers/img2img.js';
import { Rng } from '../src/random.js';
import { openRuntime } from '../src/runtime/index.js';
import { type Feed, isGpuTensor } from '../src/runtime/types.js';
import { type Tensor, castFloat, float32 } from '../src/tensor.js';
import { type DenoiseContext, denoiseOnDevice, denoiseOnHost, timestepTensor } from '../src/pipelines/denoise.js';
import { buildStepGraph } from '../src/pipelines/step-graph.js';
import { type BenchContext, type BenchModule, hostInfo, loadBenchModel, round, timeInterleaved } from './common.js';

async function runUnetBench(ctx: BenchContext): Promise<unknown> {
  const runtime = await openRuntime({ ep: ctx.ep });
  ctx.log(`unet: ${runtime.decision.ep} (${runtime.decision.reason})`);
  const gpu = runtime.decision.ep === 'webgpu';
  const model = await loadBenchModel(ctx, runtime, gpu);
  const { facts, io } = model;
  try {
    const side = Math.round(512 / facts.vaeScaleFactor);
    const rng = new Rng(0);
    const latents = (b: number): Tensor<'float32'> =>
      float32([b, facts.latentChannels, side, side], rng.normalArray(b * facts.latentChannels * side * side));
    const text = (b: number): Tensor =>
      castFloat(
        float32([b, facts.textLength, facts.textWidth], rng.normalArray(b * facts.textLength * facts.textWidth, 0.5)),
        facts.unetTextType,
      );
    const t500 = timestepTensor(model, 500);
    const [warmup, repeats] = ctx.quick ? [1, 2] : gpu ? [2, 5] : [1, 4];
    const chain = gpu && !ctx.quick ? 5 : gpu ? 2 : 1;

    // 1. One UNet step: host round trip vs resident feeds, at UNet batch 2 (one frame) and 4 (two frames).
    const perBatch: Record<string, unknown> = {};
    const stepsPerSecond: Record<string, number> = {};
    for (const b of [2, 4]) {
      const sampleHost = castFloat(latents(b), facts.unetType);
      const textHost = text(b);
      const sample: Feed = await runtime.upload(sampleHost);
      const textFeed: Feed = await runtime.upload(textHost);
      // Each timed call runs a chain of `chain` UNet steps. GPU runs return once queued, so the resident chain
      // ends by reading its last output back: the time then covers the GPU's work, not just the submission.
      const { roundTrip, resident } = await timeInterleaved(
        {
          // Feeds from the host, every output read back: what a step costs when latents live on the host.
          roundTrip: async () => {
            for (let k = 0; k < chain; k++) {
              const out = await model.unet.run(
                { [io.unetSample]: sampleHost, [io.unetTimestep]: t500, [io.unetText]: textHost },
                [io.unetOut],
              );
              const y = out[io.unetOut]!;
              if (isGpuTensor(y)) {
                await runtime.read(y);
                await runtime.dispose(y);
              }
            }
          },
          // Feeds on the GPU, each output fed back as the next sample (same shape and type), the last one read.
          resident: async () => {
            let x: Feed = sample;
            for (let k = 0; k < chain; k++) {
              const out = await model.unet.run(
                { [io.unetSample]: x, [io.unetTimestep]: t500, [io.unetText]: textFeed },
                [io.unetOut],
              );
              if (x !== sample && isGpuTensor(x)) await runtime.dispose(x);
              x = out[io.unetOut]!;
            }
            if (isGpuTensor(x)) {
              await runtime.read(x);
              await runtime.dispose(x);
            }
          },
        },
        warmup,
        repeats,
      );
      for (const r of [roundTrip, resident]) {
        r.median /= chain;
        r.min /= chain;
      }
      for (const f of [sample, textFeed]) if (isGpuTensor(f)) await runtime.dispose(f);
      stepsPerSecond[`batch${b}RoundTrip`] = 1 / roundTrip.median;
      stepsPerSecond[`batch${b}Resident`] = 1 / resident.median;
      perBatch[`unetBatch${b}`] = {
        framesPerRun: b / 2,
        roundTrip: {
          stepsPerSecond: round(1 / roundTrip.median),
          secondsMedian: round(roundTrip.median),
          secondsMin: round(roundTrip.min),
        },
        resident: {
          stepsPerSecond: round(1 / resident.median),
          secondsMedian: round(resident.median),
          secondsMin: round(resident.min),
        },
        residentVsRoundTrip: round(roundTrip.median / resident.median),
      };
      ctx.log(
        `unet batch ${b}: ${(1 / roundTrip.median).toFixed(2)} steps/s round trip, ${(1 / resident.median).toFixed(2)} resident`,
      );
    }

    // 2. The denoising loop of one frame with guidance: DDIM on the host vs in the step graph.
    const scheduler = new DdimScheduler(model.schedulerConfig);
    const steps = ctx.quick ? 10 : 20;
    const { timesteps } = img2imgTimesteps(scheduler.setTimesteps(steps), steps, 1);
    const start = latents(1);
    const loopText = text(2);
    const context = (): DenoiseContext => ({
      runtime,
      model,
      unet: model.unet,
      scheduler,
      timesteps,
      guidance: 7.5,
      text: loopText,
    });
    const stepSession = await runtime.createSession(
      buildStepGraph({ guidance: true, prediction: model.schedulerConfig.prediction_type, unetType: facts.unetType }),
      { label: 'ddim-step', keepOutputsOnGpu: true },
    );
    const loopRepeats = ctx.quick ? 1 : gpu ? 3 : 2;
    const { hostLoop, deviceLoop } = await timeInterleaved(
      {
        hostLoop: () => denoiseOnHost(context(), start),
        deviceLoop: () => denoiseOnDevice(context(), start, stepSession),
      },
      1,
      loopRepeats,
    );
    await stepSession.release();
    ctx.log(
      `denoise loop (${timesteps.length} steps): host ${(timesteps.length / hostLoop.median).toFixed(2)} steps/s, device ${(timesteps.length / deviceLoop.median).toFixed(2)}`,
    );

    return {
      ep: runtime.decision.ep,
      epReason: runtime.decision.reason,
      preset: ctx.preset,
      dtype: facts.unetType,
      latent: [facts.latentChannels, side, side],
      timestep: 500,
      warmup,
      repeats,
      stepsPerTimedChain: chain,
      host: hostInfo(),
      ...perBatch,
      // The headline number: UNet steps/s at batch 2 (one frame with guidance), resident feeds.
      unetStepsPerSecondBatch2: round(stepsPerSecond.batch2Resident!),
      framesPerUnetSecond: {
        batch1Frame: round(stepsPerSecond.batch2Resident!),
        batch2Frames: round(2 * stepsPerSecond.batch4Resident!),
      },
      batch2FramesVsBatch1PerFrame: round((2 * stepsPerSecond.batch4Resident!) / stepsPerSecond.batch2Resident!),
      denoiseLoop: {
        steps: timesteps.length,
        hostStepsPerSecond: round(timesteps.length / hostLoop.median),
        deviceStepsPerSecond: round(timesteps.length / deviceLoop.median),
        deviceVsHost: round(hostLoop.median / deviceLoop.median),
      },
    };
  } finally {
    await model.release();
    await runtime.close();
  }
}

export const unetBench: BenchModule = {
  name: 'unet',
  describe: 'UNet steps/s (batch 2 and 4, round trip vs resident) and the denoising loop (host vs GPU step graph)',
  run: runUnetBench,
};
