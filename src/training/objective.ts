/**
 * The method's training objective, on the host (cheap elementwise math on one latent per step):
 *
 * - Unconditional sample (a frame of the clip, empty prompt): x_t = √ᾱ·z + √(1−ᾱ)·ε, target ε
 *   (or v = √ᾱ·ε − √(1−ᾱ)·z for v-prediction models).
 * - Conditional sample (original frame z_o, edited frame z_e, the prompt): the noisy input is made from the
 *   ORIGINAL, x_t = √ᾱ·z_o + √(1−ᾱ)·ε; the target is the noise ε* that makes the model's x0-prediction
 *   equal the EDITED latent: x0 = (x_t − √(1−ᾱ)·ε*)/√ᾱ = z_e  ⇒  ε* = (x_t − √ᾱ·z_e)/√(1−ᾱ);
 *   for v-prediction the matching v* = √ᾱ·ε* − √(1−ᾱ)·z_e.
 */
import { VidpriorError } from '../errors.js';

export type PredictionKind = 'epsilon' | 'v_prediction';

export interface NoisedSample {
  /** The UNet's input x_t. */
  noisy: Float32Array;
  /** What the UNet should predict at x_t. */
  target: Float32Array;
}

/**
 * @param source   the latent the noisy input is made from (the original frame)
 * @param goal     the latent the model's x0-prediction should reach (the same frame, or the edited one)
 * @param noise    ε, standard normal
 * @param alphaBar ᾱ_t of the training timestep
 */
export function noisedSample(
  source: Float32Array,
  goal: Float32Array,
  noise: Float32Array,
  alphaBar: number,
  prediction: PredictionKind,
): NoisedSample {
  if (source.length !== goal.length || source.length !== noise.length) {
    throw new VidpriorError(
      'E_BAD_INPUT',
      `latents of different sizes: ${source.length}, ${goal.length}, ${noise.length}`,
    );
  }
  if (prediction !== 'epsilon' && prediction !== 'v_prediction') {
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `fine-tuning supports epsilon and v_prediction models, not ${JSON.stringify(prediction)}`,
    );
  }
  const sa = Math.sqrt(alphaBar);
  const sb = Math.sqrt(1 - alphaBar);
  const n = source.length;
  const noisy = new Float32Array(n);
  const target = new Float32Array(n);
  const same = source === goal;
  for (let i = 0; i < n; i++) {
    const xt = sa * source[i]! + sb * noise[i]!;
    noisy[i] = xt;
    const eps = same ? noise[i]! : (xt - sa * goal[i]!) / sb;
    target[i] = prediction === 'epsilon' ? eps : sa * eps - sb * goal[i]!;
  }
  return { noisy, target };
}
