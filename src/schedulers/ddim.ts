/**
 * DDIM (Song et al. 2020) exactly as diffusers' DDIMScheduler computes it, float32 operation by operation:
 * diffusers keeps alphas_cumprod in a float32 tensor and every scalar (ᾱ_t, √ᾱ_t, 1−ᾱ_t…) is a 0-dim float32
 * tensor, so each product, sum and quotient below is rounded to float32 (Math.fround) where torch rounds it.
 * Pure math with its config: no model, no I/O, random draws only from an explicit Rng.
 */
import { roundHalfEven } from '../numeric.js';
import { VidpriorError } from '../errors.js';
import type { Rng } from '../random.js';
import { cumprodF32, makeBetas, oneMinusF32 } from './betas.js';
import { DDIM_DEFAULTS, ddimConfigFrom, type DdimConfig } from './config.js';

const f = Math.fround;

export interface DdimStepOptions {
  /** η of the DDIM paper: 0 is deterministic DDIM, 1 is DDPM-like ancestral sampling. */
  eta?: number;
  /** Re-derive ε from the clipped x̂₀ (diffusers' use_clipped_model_output). */
  useClippedModelOutput?: boolean;
  /** The noise added when eta > 0 (same length as the sample); else drawn from `rng`. */
  varianceNoise?: Float32Array;
  rng?: Rng;
  /** Samples in the batch, for dynamic thresholding (per-sample quantiles); default 1. */
  batch?: number;
}

export interface DdimStepResult {
  /** x_{t−1}. */
  prevSample: Float32Array;
  /** x̂₀, the model's estimate of the clean sample. */
  predOriginalSample: Float32Array;
}

export class DdimScheduler {
  readonly config: DdimConfig;
  readonly betas: Float32Array;
  readonly alphas: Float32Array;
  /** ᾱ_t for t = 0 … num_train_timesteps−1 (float32, as diffusers' alphas_cumprod). Training needs it. */
  readonly alphasCumprod: Float32Array;
  /** ᾱ used for the step after the last timestep: 1 with set_alpha_to_one, else ᾱ_0. */
  readonly finalAlphaCumprod: number;
  readonly initNoiseSigma = 1;
  /** DDIM is a first-order scheduler (img2img's timestep slicing multiplies by it). */
  readonly order = 1;
  private inferenceSteps: number | null = null;
  private steps: number[];

  constructor(config: Partial<DdimConfig> = {}) {
    this.config = ddimConfigFrom({ ...DDIM_DEFAULTS, ...config } as Record<string, unknown>).config;
    this.betas = makeBetas(this.config);
    this.alphas = oneMinusF32(this.betas);
    this.alphasCumprod = cumprodF32(this.alphas);
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
    const n = this.config.num_train_timesteps;
    this.steps = Array.from({ length: n }, (_, i) => n - 1 - i);
  }

  get numInferenceSteps(): number | null {
    return this.inferenceSteps;
  }

  /** The timesteps of the current schedule, high noise first (all training timesteps before setTimesteps). */
  get timesteps(): readonly number[] {
    return this.steps;
  }

  /** diffusers' set_timesteps for the three timestep_spacing modes (numpy arithmetic reproduced). */
  setTimesteps(numInferenceSteps: number): number[] {
    const n = numInferenceSteps;
    const N = this.config.num_train_timesteps;
    if (!Number.isInteger(n) || n < 1 || n > N) {
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `steps must be an integer from 1 to ${N} (the scheduler's num_train_timesteps), got ${JSON.stringify(n)}`,
        { steps: n },
      );
    }
    let ts: number[];
    if (this.config.timestep_spacing === 'linspace') {
      // np.linspace(0, N-1, n).round()[::-1]: i·step + start, the last value set to stop exactly.
      const step = (N - 1) / (n - 1 || 1);
      ts = Array.from({ length: n }, (_, i) => roundHalfEven(n > 1 && i === n - 1 ? N - 1 : i * step)).reverse();
    } else if (this.config.timestep_spacing === 'leading') {
      const ratio = Math.floor(N / n);
      ts = Array.from({ length: n }, (_, i) => i * ratio + this.config.steps_offset).reverse();
    } else {
      // np.round(np.arange(N, 0, -N/n)) - 1: arange's length is ceil(-N / -ratio), its values start + i·delta.
      const ratio = N / n;
      const length = Math.ceil((0 - N) / -ratio);
      const delta = N + -ratio - N;
      ts = Array.from({ length }, (_, i) => roundHalfEven(i === 1 ? N + -ratio : N + i * delta) - 1);
    }
    const beyond = ts.find((t) => t >= N || t < 0);
    if (beyond !== undefined) {
      // diffusers would index alphas_cumprod out of range here (e.g. 1000 "leading" steps with steps_offset 1).
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `steps ${n} with this scheduler's ${this.config.timestep_spacing} spacing and steps_offset ${this.config.steps_offset} reaches timestep ${beyond}, past its ${N} training steps: use fewer steps`,
        { steps: n },
      );
    }
    this.inferenceSteps = n;
    this.steps = ts;
    return ts;
  }

  /** The timestep after `t` in DDIM's schedule (negative past the end). */
  prevTimestep(t: number): number {
    if (this.inferenceSteps === null) {
      throw new VidpriorError('E_INTERNAL', 'DdimScheduler.step called before setTimesteps');
    }
    return t - Math.floor(this.config.num_train_timesteps / this.inferenceSteps);
  }

  private alphaAt(t: number): number {
    if (!Number.isInteger(t) || t < 0 || t >= this.alphasCumprod.length) {
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `timestep must be an integer from 0 to ${this.alphasCumprod.length - 1}, got ${t}`,
        { timestep: t },
      );
    }
    return this.alphasCumprod[t]!;
  }

  /** σ_t² of formula (16): (1−ᾱ_prev)/(1−ᾱ_t) · (1 − ᾱ_t/ᾱ_prev). */
  variance(t: number, prev: number): number {
    const a = this.alphaAt(t);
    const aPrev = prev >= 0 ? this.alphaAt(prev) : this.finalAlphaCumprod;
    return f(f(f(1 - aPrev) / f(1 - a)) * f(1 - f(a / aPrev)));
  }

  /** One DDIM step from x_t to x_{t−Δ} given the model output at timestep t. */
  step(modelOutput: Float32Array, t: number, sample: Float32Array, options: DdimStepOptions = {}): DdimStepResult {
    if (modelOutput.length !== sample.length) {
      throw new VidpriorError(
        'E_SHAPE',
        `model output has ${modelOutput.length} values but the sample has ${sample.length}`,
      );
    }
    const eta = options.eta ?? 0;
    // 1. previous timestep, 2. alphas and betas (0-dim float32 tensors in the reference)
    const prev = this.prevTimestep(t);
    const a = this.alphaAt(t);
    const aPrev = prev >= 0 ? this.alphaAt(prev) : this.finalAlphaCumprod;
    const b = f(1 - a);
    const sqrtA = f(Math.sqrt(a));
    const sqrtB = f(Math.sqrt(b));
    const n = sample.length;
    const x0 = new Float32Array(n);
    const eps = new Float32Array(n);
    // 3. predicted x₀ and ε from the model output
    const type = this.config.prediction_type;
    for (let i = 0; i < n; i++) {
      const s = sample[i]!;
      const m = modelOutput[i]!;
      if (type === 'epsilon') {
        x0[i] = f(s - f(sqrtB * m)) / sqrtA;
        eps[i] = m;
      } else if (type === 'sample') {
        x0[i] = m;
        eps[i] = f(s - f(sqrtA * m)) / sqrtB;
      } else {
        x0[i] = f(sqrtA * s) - f(sqrtB * m);
        eps[i] = f(sqrtA * m) + f(sqrtB * s);
      }
    }
    // 4. thresholding or clipping of x̂₀
    if (this.config.thresholding) {
      thresholdInPlace(x0, options.batch ?? 1, this.config.dynamic_thresholding_ratio, this.config.sample_max_value);
    } else if (this.config.clip_sample) {
      const r = f(this.config.clip_sample_range);
      for (let i = 0; i < n; i++) x0[i] = Math.min(Math.max(x0[i]!, -r), r);
    }
    // 5. σ_t(η)
    const std = f(f(eta) * f(Math.sqrt(this.variance(t, prev))));
    if (options.useClippedModelOutput) {
      for (let i = 0; i < n; i++) eps[i] = f(sample[i]! - f(sqrtA * x0[i]!)) / sqrtB;
    }
    // 6. direction pointing to x_t, 7. x_{t-1} without noise (formula 12)
    const dirScale = f(Math.sqrt(f(f(1 - aPrev) - f(std * std))));
    const sqrtAPrev = f(Math.sqrt(aPrev));
    const prevSample = new Float32Array(n);
    for (let i = 0; i < n; i++) prevSample[i] = f(sqrtAPrev * x0[i]!) + f(dirScale * eps[i]!);
    if (eta > 0) {
      const noise = options.varianceNoise ?? drawNoise(n, options.rng);
      if (noise.length !== n)
        throw new VidpriorError('E_SHAPE', `variance noise has ${noise.length} values but the sample has ${n}`);
      for (let i = 0; i < n; i++) prevSample[i] = prevSample[i]! + f(std * noise[i]!);
    }
    return { prevSample, predOriginalSample: x0 };
  }

  /** q(x_t | x₀): √ᾱ_t·x₀ + √(1−ᾱ_t)·noise. `t` is one timestep, or one per batch item. */
  addNoise(original: Float32Array, noise: Float32Array, t: number | readonly number[]): Float32Array {
    return this.mix(original, noise, t, (sa, so, x, e) => f(sa * x) + f(so * e));
  }

  /** The v-prediction target: √ᾱ_t·noise − √(1−ᾱ_t)·x₀. `t` is one timestep, or one per batch item. */
  getVelocity(sample: Float32Array, noise: Float32Array, t: number | readonly number[]): Float32Array {
    return this.mix(sample, noise, t, (sa, so, x, e) => f(sa * e) - f(so * x));
  }

  private mix(
    x: Float32Array,
    noise: Float32Array,
    t: number | readonly number[],
    fn: (sa: number, so: number, x: number, e: number) => number,
  ): Float32Array {
    if (x.length !== noise.length) {
      throw new VidpriorError('E_SHAPE', `noise has ${noise.length} values but the sample has ${x.length}`);
    }
    const ts = typeof t === 'number' ? [t] : t;
    if (ts.length === 0 || x.length % ts.length !== 0) {
      throw new VidpriorError('E_SHAPE', `${ts.length} timesteps do not divide a batch of ${x.length} values`);
    }
    const per = x.length / ts.length;
    const out = new Float32Array(x.length);
    ts.forEach((step, k) => {
      const a = this.alphaAt(step);
      const sa = f(Math.sqrt(a));
      const so = f(Math.sqrt(f(1 - a)));
      for (let i = k * per; i < (k + 1) * per; i++) out[i] = fn(sa, so, x[i]!, noise[i]!);
    });
    return out;
  }
}

function drawNoise(n: number, rng: Rng | undefined): Float32Array {
  if (!rng) throw new VidpriorError('E_INTERNAL', 'DDIM with eta > 0 needs varianceNoise or an rng');
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal();
  return out;
}

/**
 * diffusers' _threshold_sample (Imagen's dynamic thresholding): per sample, s = the `ratio` quantile of |x̂₀|
 * (torch.quantile, linear interpolation), clamped to [1, maxValue]; x̂₀ is clamped to [−s, s] and divided by s.
 */
function thresholdInPlace(x: Float32Array, batch: number, ratio: number, maxValue: number): void {
  if (!Number.isInteger(batch) || batch < 1 || x.length % batch !== 0) {
    throw new VidpriorError('E_SHAPE', `batch ${batch} does not divide a sample of ${x.length} values`);
  }
  const per = x.length / batch;
  for (let k = 0; k < batch; k++) {
    const part = x.subarray(k * per, (k + 1) * per);
    const sorted = Float32Array.from(part, Math.abs).sort();
    const rank = f(f(ratio) * (per - 1));
    const lo = Math.floor(rank);
    const hi = Math.ceil(rank);
    const w = f(rank - lo);
    const below = sorted[lo]!;
    const above = sorted[hi]!;
    const q = w < 0.5 ? f(below + f(w * f(above - below))) : f(above - f(f(above - below) * f(1 - w)));
    const s = f(Math.min(Math.max(q, 1), maxValue));
    for (let i = 0; i < per; i++) part[i] = f(Math.min(Math.max(part[i]!, -s), s) / s);
  }
}
