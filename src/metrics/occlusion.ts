/**
 * Occlusion mask of a frame pair, exactly as Lai et al. 2018 compute it (fast_blind_video_consistency,
 * utils.detect_occlusion, called from compute_flow_occlusion.py as detect_occlusion(bw_flow, fw_flow)):
 *
 *   F = forward flow t → t+1, B = backward flow t+1 → t, B̂(x) = B(x + F(x))  (B warped by F, Resample2d)
 *   1. forward–backward check:  |F + B̂|² > 0.01·(|F|² + |B̂|²) + 0.5
 *   2. motion boundary of F:    |∇F_x|² + |∇F_y|² > 0.01·|F|² + 0.002,
 *      with ∇ the forward differences F[x] − F[x+1] (and F[y] − F[y+1]), zero on the last column / row.
 *
 * A pixel of frame t is occluded when either test fires. The mask lives in frame t's coordinates, which
 * is where the warping error compares frame t with frame t+1 warped back.
 */
import { warpFlow, type Flow } from './image.js';

export interface OcclusionMask {
  width: number;
  height: number;
  /** 1 = occluded or on a motion boundary (left out of E_warp), 0 = visible in both frames. */
  data: Uint8Array;
  /** Fraction of the frame flagged. */
  fraction: number;
}

/** The occlusion mask of frame t given F (t → t+1) and B (t+1 → t), both computed on the original video. */
export function detectOcclusion(forward: Flow, backward: Flow): OcclusionMask {
  const { width: w, height: h } = forward;
  const bHat = warpFlow(backward, forward);
  const fu = forward.u;
  const fv = forward.v;
  const data = new Uint8Array(w * h);
  let flagged = 0;
  for (let y = 0, i = 0; y < h; y++) {
    for (let x = 0; x < w; x++, i++) {
      const su = fu[i] + bHat.u[i];
      const sv = fv[i] + bHat.v[i];
      const magF = fu[i] * fu[i] + fv[i] * fv[i];
      const magB = bHat.u[i] * bHat.u[i] + bHat.v[i] * bHat.v[i];
      const fbFails = su * su + sv * sv > 0.01 * (magF + magB) + 0.5;
      // Forward differences of both flow components; the last column / row has none (zero).
      const uDx = x < w - 1 ? fu[i] - fu[i + 1] : 0;
      const vDx = x < w - 1 ? fv[i] - fv[i + 1] : 0;
      const uDy = y < h - 1 ? fu[i] - fu[i + w] : 0;
      const vDy = y < h - 1 ? fv[i] - fv[i + w] : 0;
      const boundary = uDx * uDx + uDy * uDy + vDx * vDx + vDy * vDy > 0.01 * magF + 0.002;
      if (fbFails || boundary) {
        data[i] = 1;
        flagged++;
      }
    }
  }
  return { width: w, height: h, data, fraction: flagged / (w * h) };
}
