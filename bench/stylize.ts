/**
 * `stylize` speed end to end (prompt encoding, VAE encode, denoising with guidance, VAE decode) on in-memory
 * 512×512 frames: frames/s at batch 1 and batch 2, the ratio between them (same run), and which loop ran
 * (host, or GPU-resident latents on WebGPU). The method's settings on a GPU (50 DDIM steps, strength 0.45 →
 * 22 steps per frame); fewer steps on the CPU so the run stays short, as recorded in the result.
 */
import { Rng } from '../src/random.js';
import { openRuntime } from '../src/runtime/index.js';
import { float32, type Tensor } from '../src/tensor.js';
import { stylizeFrames } from '../src/pipelines/img2img.js';
import { type BenchContext, type BenchModule, hostInfo, loadBenchModel, round } from './common.js';

async function runStylizeBench(ctx: BenchContext): Promise<unknown> {
  const runtime = await openRuntime({ ep: ctx.ep });
  ctx.log(`stylize: ${runtime.decision.ep} (${runtime.decision.reason})`);
  const gpu = runtime.decision.ep === 'webgpu' || runtime.decision.ep === 'cuda';
  const model = await loadBenchModel(ctx, runtime, runtime.decision.ep === 'webgpu');
  try {
    const size = 512;
    const frames = ctx.quick ? 2 : gpu ? 8 : 4;
    const steps = ctx.quick ? 10 : gpu ? 50 : 20;
    const strength = 0.45;
    const rng = new Rng(1);
    const images: Tensor<'float32'>[] = Array.from({ length: frames }, () =>
      float32([3, size, size], rng.normalArray(3 * size * size, 0.3)),
    );
    const source = { count: frames, width: size, height: size, read: (i: number) => images[i]! };
    const options = { prompt: 'an oil painting of a city at night', steps, strength, guidance: 7.5, seed: 0 };
    // Warm-up: one frame (session initialisation and, on WebGPU, shader compilation are not per-frame costs).
    await stylizeFrames(model, runtime, { ...source, count: 1 }, () => {}, { ...options, steps: Math.min(steps, 10) });
    const results: Record<string, unknown> = {};
    const fps: Record<number, number> = {};
    for (const batch of [1, 2]) {
      const t0 = performance.now();
      const summary = await stylizeFrames(model, runtime, source, () => {}, { ...options, batch });
      const seconds = (performance.now() - t0) / 1000;
      fps[batch] = frames / seconds;
      results[`batch${batch}`] = {
        framesPerSecond: round(frames / seconds),
        secondsPerFrame: round(seconds / frames),
        unetStepsPerFrame: summary.steps,
        loop: summary.loop,
      };
      ctx.log(
        `stylize batch ${batch}: ${(frames / seconds).toFixed(3)} frames/s (${summary.steps} steps per frame, ${summary.loop} loop)`,
      );
    }
    return {
      ep: runtime.decision.ep,
      epReason: runtime.decision.reason,
      preset: ctx.preset,
      dtype: model.facts.unetType,
      frames,
      size: [size, size],
      steps,
      strength,
      guidance: 7.5,
      host: hostInfo(),
      ...results,
      batch2VsBatch1: round(fps[2]! / fps[1]!),
    };
  } finally {
    await model.release();
    await runtime.close();
  }
}

export const stylizeBench: BenchModule = {
  name: 'stylize',
  describe: 'stylize frames/s end to end at batch 1 and 2 (512×512 frames, guidance 7.5)',
  run: runStylizeBench,
};
