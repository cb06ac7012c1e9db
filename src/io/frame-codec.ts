/**
 * The one frame codec of the CLI and the daemon: a frame (a file, or PNG/JPEG bytes) → RGB float32 [3, H, W] in
 * [-1, 1] at the working size of a plan (size.ts: scale, then resize or pad to the model's multiple), and a
 * result at the working size → PNG bytes at the frame's own size (crop, then scale back). One decode and one
 * encode per frame, in memory: no scratch files.
 */
import type { Tensor } from '../tensor.js';
import { encodeFramePng, readFrame, type ReadFrameOptions, type Size } from './frames.js';
import { cropFrame, fitPads, fitScales, padFrame, type FitPlan } from './size.js';

export type FrameData = string | Uint8Array;

/** Frame `input` at `plan.working` size: decoded, resampled (Pillow Lanczos) to plan.scaled, padded to plan.working. */
export async function decodeFrame(
  input: FrameData,
  plan: FitPlan,
  options: Omit<ReadFrameOptions, 'resize'> = {},
): Promise<Tensor<'float32'>> {
  const image = await readFrame(input, fitScales(plan) ? { ...options, resize: plan.scaled } : options);
  return fitPads(plan) ? padFrame(image, plan) : image;
}

/** How a result at plan.working goes back to the frame's size: the crop done here, and the resize left to encoding. */
export function unfitFrame(
  image: Tensor<'float32'>,
  plan: FitPlan | null,
): { image: Tensor<'float32'>; resize?: Size } {
  if (!plan) return { image };
  const cropped = fitPads(plan) ? cropFrame(image, plan) : image;
  return fitScales(plan) ? { image: cropped, resize: plan.original } : { image: cropped };
}

/** A result at plan.working size as PNG bytes at plan.original size. */
export async function encodeFrame(image: Tensor<'float32'>, plan: FitPlan | null): Promise<Uint8Array> {
  const r = unfitFrame(image, plan);
  return encodeFramePng(r.image, r.resize ? { resize: r.resize } : {});
}
