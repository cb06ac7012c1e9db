/**
 * Classifier-free guidance + one DDIM step (eta 0) as a small ONNX graph, so that on a GPU provider the
 * latents never leave the GPU between UNet runs: the UNet's output (kept on the GPU) and the current latents
 * go in, the next latents and the next UNet input (duplicated for guidance, cast to the UNet's float type)
 * come out, still on the GPU. Only the final latents are read back.
 *
 * The arithmetic is the scheduler's (src/schedulers/ddim.ts), node for node in float32:
 *   ε̂  = u + g·(c − u)                                  (with guidance; u first in the batch)
 *   x̂₀ = (x − √(1−ᾱ_t)·ε̂) / √ᾱ_t,  ε = ε̂                  (epsilon prediction; v and sample below)
 *   x_prev = √ᾱ_prev·x̂₀ + √(1−ᾱ_prev)·ε
 * so on the CPU provider it gives the host path's numbers exactly.
 */
import { GraphBuilder } from '../onnx/builder.js';
import { encodeModel } from '../onnx/codec.js';
import type { PredictionType } from '../schedulers/config.js';
import type { DdimScheduler } from '../schedulers/ddim.js';
import { float32, type Tensor } from '../tensor.js';

export interface StepGraphSpec {
  guidance: boolean;
  prediction: PredictionType;
  /** Float type of the UNet's output and sample input. */
  unetType: 'float32' | 'float16';
}

/** Input and output names of the step graph. */
export const STEP_IO = {
  latents: 'latents',
  modelOutput: 'model_output',
  guidance: 'guidance_scale',
  sqrtAlpha: 'sqrt_alpha_prod',
  sqrtBeta: 'sqrt_beta_prod',
  sqrtAlphaPrev: 'sqrt_alpha_prod_prev',
  dirScale: 'direction_scale',
  nextLatents: 'next_latents',
  nextUnetSample: 'next_unet_sample',
} as const;

/** Builds the step graph (opset 17) and returns it as ONNX bytes for `runtime.createSession`. */
export function buildStepGraph(spec: StepGraphSpec): Uint8Array {
  const b = new GraphBuilder(`ddim_step_${spec.prediction}${spec.guidance ? '_cfg' : ''}`, { opset: 17 });
  const x = b.input(STEP_IO.latents, 'float32', ['batch', 'channels', 'height', 'width']);
  const out = b.input(STEP_IO.modelOutput, spec.unetType, [
    spec.guidance ? 'unet_batch' : 'batch',
    'channels',
    'height',
    'width',
  ]);
  const g = spec.guidance ? b.input(STEP_IO.guidance, 'float32', []) : null;
  const sqrtA = b.input(STEP_IO.sqrtAlpha, 'float32', []);
  const sqrtB = b.input(STEP_IO.sqrtBeta, 'float32', []);
  const sqrtAPrev = b.input(STEP_IO.sqrtAlphaPrev, 'float32', []);
  const dirScale = b.input(STEP_IO.dirScale, 'float32', []);

  let m = spec.unetType === 'float32' ? out : b.op('Cast', [out], { to: 1 });
  if (g) {
    // The batch is [uncond × B, cond × B]: two equal halves along axis 0 (opset 17 Split without sizes).
    const [u, c] = b.opMulti('Split', [m], 2, { axis: 0 });
    m = b.op('Add', [u!, b.op('Mul', [g, b.op('Sub', [c!, u!])])]);
  }
  let x0: string;
  let eps: string;
  if (spec.prediction === 'epsilon') {
    x0 = b.op('Div', [b.op('Sub', [x, b.op('Mul', [sqrtB, m])]), sqrtA]);
    eps = m;
  } else if (spec.prediction === 'v_prediction') {
    x0 = b.op('Sub', [b.op('Mul', [sqrtA, x]), b.op('Mul', [sqrtB, m])]);
    eps = b.op('Add', [b.op('Mul', [sqrtA, m]), b.op('Mul', [sqrtB, x])]);
  } else {
    x0 = m;
    eps = b.op('Div', [b.op('Sub', [x, b.op('Mul', [sqrtA, m])]), sqrtB]);
  }
  const prev = b.op('Add', [b.op('Mul', [sqrtAPrev, x0]), b.op('Mul', [dirScale, eps])]);
  b.output(prev, STEP_IO.nextLatents, 'float32', ['batch', 'channels', 'height', 'width']);
  let next = spec.guidance ? b.op('Concat', [prev, prev], { axis: 0 }) : b.op('Identity', [prev]);
  if (spec.unetType === 'float16') next = b.op('Cast', [next], { to: 10 });
  b.output(next, STEP_IO.nextUnetSample, spec.unetType, [
    spec.guidance ? 'unet_batch' : 'batch',
    'channels',
    'height',
    'width',
  ]);
  return encodeModel(b.build());
}

/** The scalar feeds of one eta-0 DDIM step at timestep `t`, rounded as the scheduler rounds them. */
export function stepScalars(scheduler: DdimScheduler, t: number, guidance: number | null): Record<string, Tensor> {
  const f = Math.fround;
  const prev = scheduler.prevTimestep(t);
  const a = scheduler.alphasCumprod[t]!;
  const aPrev = prev >= 0 ? scheduler.alphasCumprod[prev]! : scheduler.finalAlphaCumprod;
  const scalar = (v: number): Tensor => float32([], [v]);
  const feeds: Record<string, Tensor> = {
    [STEP_IO.sqrtAlpha]: scalar(f(Math.sqrt(a))),
    [STEP_IO.sqrtBeta]: scalar(f(Math.sqrt(f(1 - a)))),
    [STEP_IO.sqrtAlphaPrev]: scalar(f(Math.sqrt(aPrev))),
    // √(1 − ᾱ_prev − σ²) with σ = 0 (eta 0)
    [STEP_IO.dirScale]: scalar(f(Math.sqrt(f(1 - aPrev)))),
  };
  if (guidance !== null) feeds[STEP_IO.guidance] = scalar(f(guidance));
  return feeds;
}
