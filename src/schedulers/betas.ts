/**
 * Noise schedules (betas, alphas_cumprod) exactly as diffusers computes them. diffusers keeps these in float32
 * torch tensors, so every step here is float32 arithmetic (Math.fround after each operation), with two torch CPU
 * details reproduced: `torch.linspace(start, end, n, float32)` fills the first half as start + step·i and the
 * second half as end − step·(n−1−i) with a float32 step, and `torch.cumprod` on a float32 tensor accumulates in
 * double and rounds each output to float32. (torch's SIMD linspace can differ from this by 1 ulp of √β on some
 * elements; that never changes alphas_cumprod by more than ~1e-7 relative.)
 */
import { VidpriorError } from '../errors.js';

const f = Math.fround;

export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';

/** torch.linspace(start, end, steps, dtype=float32) on the CPU. */
export function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = f(start);
    return out;
  }
  const s = f(start);
  const e = f(end);
  const step = f(f(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < halfway ? f(s + f(step * i)) : f(e - f(step * (steps - i - 1)));
  }
  return out;
}

/** diffusers' betas_for_alpha_bar with the cosine ("squaredcos_cap_v2") alpha bar, computed in double, stored as float32. */
export function cosineBetas(n: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number) => Math.cos((((t + 0.008) / 1.008) * Math.PI) / 2) ** 2;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), maxBeta);
  }
  return out;
}

/** torch.cumprod of a float32 vector on the CPU (double accumulator, float32 outputs). */
export function cumprodF32(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  let acc = 1;
  for (let i = 0; i < x.length; i++) {
    acc *= x[i]!;
    out[i] = acc;
  }
  return out;
}

/** 1 − x element-wise in float32 (betas → alphas and back). */
export function oneMinusF32(x: Float32Array): Float32Array {
  return x.map((v) => f(1 - v));
}

/**
 * diffusers' rescale_zero_terminal_snr (Lin et al. 2023, Algorithm 1): shift and scale √ᾱ so that the last
 * timestep has zero signal, then return the betas of that schedule. Float32 throughout, like the reference.
 */
export function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const cum = cumprodF32(oneMinusF32(betas));
  const sqrt = cum.map((v) => f(Math.sqrt(v)));
  const first = sqrt[0]!;
  const last = sqrt[sqrt.length - 1]!;
  const scale = f(first / f(first - last));
  const bar = sqrt.map((v) => {
    const shifted = f(f(v - last) * scale);
    return f(shifted * shifted);
  });
  const alphas = new Float32Array(bar.length);
  alphas[0] = bar[0]!;
  for (let i = 1; i < bar.length; i++) alphas[i] = f(bar[i]! / bar[i - 1]!);
  return oneMinusF32(alphas);
}

export interface BetaConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: string;
  trained_betas: readonly number[] | null;
  rescale_betas_zero_snr: boolean;
}

/** The betas of a scheduler config (float32), as DDIMScheduler.__init__ builds them. */
export function makeBetas(c: BetaConfig): Float32Array {
  let betas: Float32Array;
  if (c.trained_betas) {
    betas = Float32Array.from(c.trained_betas);
  } else if (c.beta_schedule === 'linear') {
    betas = linspaceF32(c.beta_start, c.beta_end, c.num_train_timesteps);
  } else if (c.beta_schedule === 'scaled_linear') {
    // "this schedule is very specific to the latent diffusion model": linear in √β, squared in float32.
    betas = linspaceF32(c.beta_start ** 0.5, c.beta_end ** 0.5, c.num_train_timesteps).map((v) => f(v * v));
  } else if (c.beta_schedule === 'squaredcos_cap_v2') {
    betas = cosineBetas(c.num_train_timesteps);
  } else {
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `beta_schedule ${JSON.stringify(c.beta_schedule)} is not supported (linear, scaled_linear, squaredcos_cap_v2)`,
      { beta_schedule: c.beta_schedule },
    );
  }
  return c.rescale_betas_zero_snr ? rescaleZeroTerminalSnr(betas) : betas;
}
