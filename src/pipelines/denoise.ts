/**
 * The denoising loop of diffusers' Stable Diffusion pipelines, for one batch of B frames:
 *
 *   for t in timesteps:
 *     unet_in = cat([latents] * 2) if guidance else latents        (DDIM's scale_model_input is the identity)
 *     ε = unet(unet_in, t, text)                                    (text = [uncond × B, cond × B])
 *     ε = ε_u + g·(ε_c − ε_u)                                       (guidance)
 *     latents = scheduler.step(ε, t, latents)
 *
 * Two ways to run it, with the same numbers on the CPU provider:
 *   - host: the UNet output comes back to the host and DDIM steps in float32 in JS (src/schedulers/ddim.ts);
 *   - device: the UNet output stays on the GPU and a small step graph (step-graph.ts) does guidance and the
 *     DDIM step there; the latents are read back once at the end.
 */
import { VidpriorError } from '../errors.js';
import type { StableDiffusionModel } from '../models/types.js';
import type { Feed, GpuTensor, Runtime, Session } from '../runtime/types.js';
import { isGpuTensor } from '../runtime/types.js';
import type { DdimScheduler } from '../schedulers/ddim.js';
import { type Tensor, asFloat32, castFloat, float32, tensor, toFloat16 } from '../tensor.js';
import { STEP_IO, stepScalars } from './step-graph.js';

export interface DenoiseContext {
  runtime: Runtime;
  model: StableDiffusionModel;
  /** The UNet to run (the model's, or one with an adapter). Must have the model's inputs. */
  unet: Session;
  scheduler: DdimScheduler;
  timesteps: readonly number[];
  /** The guidance scale when classifier-free guidance is on, else null. */
  guidance: number | null;
  /** encoder_hidden_states for this batch: [uncond × B, cond × B] (or cond × B), in the UNet's text type. */
  text: Feed;
  signal?: AbortSignal;
  /** Called after each step (1-based). */
  onStep?: (step: number, steps: number) => void;
}

/** The UNet's timestep feed: the model's element type, as a scalar or [1]. */
export function timestepTensor(model: StableDiffusionModel, t: number): Tensor {
  const { timestepType, timestepDims } = model.facts;
  switch (timestepType) {
    case 'int64':
      return tensor('int64', timestepDims, BigInt64Array.of(BigInt(t)));
    case 'int32':
      return tensor('int32', timestepDims, Int32Array.of(t));
    case 'float32':
      return tensor('float32', timestepDims, Float32Array.of(t));
    case 'float16':
      return tensor('float16', timestepDims, toFloat16(Float32Array.of(t)));
  }
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new VidpriorError('E_CANCELLED', 'stylization was cancelled');
}

/** [x, x] along the batch axis (the guidance batch). */
function duplicate(x: Tensor<'float32'>): Tensor<'float32'> {
  const data = new Float32Array(x.data.length * 2);
  data.set(x.data, 0);
  data.set(x.data, x.data.length);
  return float32([x.dims[0]! * 2, ...x.dims.slice(1)], data);
}

/** ε_u + g·(ε_c − ε_u) in float32, as torch computes it on the two halves of the batch. */
export function applyGuidance(pred: Float32Array, guidance: number): Float32Array {
  const half = pred.length / 2;
  const g = Math.fround(guidance);
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const u = pred[i]!;
    out[i] = u + Math.fround(g * Math.fround(pred[half + i]! - u));
  }
  return out;
}

/** Runs the loop with the scheduler on the host. Returns the final latents [B,C,h,w]. */
export async function denoiseOnHost(ctx: DenoiseContext, start: Tensor<'float32'>): Promise<Tensor<'float32'>> {
  const { model, unet, scheduler, timesteps, guidance } = ctx;
  const { io, facts } = model;
  let latents = start;
  for (let i = 0; i < timesteps.length; i++) {
    throwIfAborted(ctx.signal);
    const t = timesteps[i]!;
    const input = guidance !== null ? duplicate(latents) : latents;
    const out = await unet.run(
      {
        [io.unetSample]: castFloat(input, facts.unetType),
        [io.unetTimestep]: timestepTensor(model, t),
        [io.unetText]: ctx.text,
      },
      [io.unetOut],
    );
    let pred = out[io.unetOut]!;
    if (isGpuTensor(pred)) pred = await readAndDispose(ctx.runtime, pred);
    const eps = guidance !== null ? applyGuidance(asFloat32(pred).data, guidance) : asFloat32(pred).data;
    latents = float32(latents.dims, scheduler.step(eps, t, latents.data, { batch: latents.dims[0] }).prevSample);
    ctx.onStep?.(i + 1, timesteps.length);
  }
  return latents;
}

async function readAndDispose(runtime: Runtime, t: GpuTensor): Promise<Tensor> {
  try {
    return await runtime.read(t);
  } finally {
    await runtime.dispose(t);
  }
}

/**
 * Runs the loop with guidance and the DDIM step in `stepSession` (see step-graph.ts). With a GPU provider and
 * sessions that keep their outputs on the GPU, nothing but the timestep and the scalars crosses to the GPU per
 * step. Returns the final latents on the host.
 */
export async function denoiseOnDevice(
  ctx: DenoiseContext,
  start: Tensor<'float32'>,
  stepSession: Session,
): Promise<Tensor<'float32'>> {
  const { model, unet, scheduler, timesteps, guidance, runtime } = ctx;
  const { io, facts } = model;
  let latents: Feed = start;
  let unetIn: Feed = castFloat(guidance !== null ? duplicate(start) : start, facts.unetType);
  const owned = new Set<GpuTensor>();
  const release = async (t: Feed): Promise<void> => {
    if (isGpuTensor(t) && owned.delete(t)) await runtime.dispose(t);
  };
  const own = <T extends Tensor | GpuTensor>(t: T): T => {
    if (isGpuTensor(t)) owned.add(t);
    return t;
  };
  try {
    for (let i = 0; i < timesteps.length; i++) {
      throwIfAborted(ctx.signal);
      const t = timesteps[i]!;
      const out = await unet.run(
        {
          [io.unetSample]: unetIn,
          [io.unetTimestep]: timestepTensor(model, t),
          [io.unetText]: ctx.text,
        },
        [io.unetOut],
      );
      const pred = own(out[io.unetOut]!);
      const next = await stepSession.run(
        {
          [STEP_IO.latents]: latents,
          [STEP_IO.modelOutput]: pred,
          ...stepScalars(scheduler, t, guidance),
        },
        [STEP_IO.nextLatents, STEP_IO.nextUnetSample],
      );
      await release(pred);
      await release(latents);
      await release(unetIn);
      latents = own(next[STEP_IO.nextLatents]!);
      unetIn = own(next[STEP_IO.nextUnetSample]!);
      ctx.onStep?.(i + 1, timesteps.length);
    }
    const final = isGpuTensor(latents) ? await runtime.read(latents) : latents;
    return asFloat32(final);
  } finally {
    for (const t of owned) await runtime.dispose(t).catch(() => {});
  }
}
