/**
 * Per-pair temporal-consistency measures, following Lai et al. 2018 (evaluate_WarpError.py of
 * fast_blind_video_consistency, the evaluation Deep Video Prior reports):
 *
 *   E_warp(t) = Σ_{c,x} M(x)·(Ŝ_{t+1}(x) − S_t(x))²  /  Σ_{c,x} M(x)
 *
 *   - Ŝ_{t+1}(x) = S_{t+1}(x + F(x)): the stylized frame t+1 warped BACK to frame t with the forward flow
 *     F (t → t+1) of the ORIGINAL video (Resample2d: bilinear, border clamped).
 *   - M = 1 − occlusion mask of frame t (occlusion.ts), the same for every channel: the reference reads the
 *     mask PNG as a 3-channel image, so the denominator Σ_{c,x} M counts each visible pixel 3 times; the
 *     result is therefore the mean over visible pixels AND channels of the squared difference.
 *   - RGB in [0, 1]. When no pixel is visible the reference divides by all H·W·3 values (then the sum is 0).
 *   - The video's figure is the plain mean of E_warp(t) over its pairs (every pair weighs the same).
 *
 * Flicker is the plain mean absolute difference of consecutive frames over all pixels and channels (no flow):
 * it measures how much the picture changes, motion included, and serves for scale.
 */
import { warpRgb, type Flow, type RgbImage } from './image.js';
import type { OcclusionMask } from './occlusion.js';

/** E_warp of one pair: frame t `a`, frame t+1 `b`, forward flow of the original, occlusion mask of frame t. */
export function pairWarpError(a: RgbImage, b: RgbImage, forward: Flow, mask: OcclusionMask): number {
  const n = a.width * a.height;
  const warped = warpRgb(b, forward);
  let sum = 0;
  let visible = 0;
  for (let i = 0; i < n; i++) {
    if (mask.data[i]) continue;
    visible++;
    for (let c = 0; c < 3; c++) {
      const d = warped.data[c * n + i] - a.data[c * n + i];
      sum += d * d;
    }
  }
  return visible > 0 ? sum / (3 * visible) : 0;
}

/** Mean absolute difference of two frames over all pixels and channels. */
export function pairFlicker(a: RgbImage, b: RgbImage): number {
  let sum = 0;
  const d = a.data;
  const e = b.data;
  for (let i = 0; i < d.length; i++) sum += Math.abs(e[i] - d[i]);
  return sum / d.length;
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) return 0;
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}
