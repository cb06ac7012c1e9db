/**
 * A job's frames through the library's one frame codec (src/io/frame-codec.ts): input files of the job folder
 * are decoded as [3,H,W] float32 in [-1,1] at the job's working size (short side `work_size`, by default the
 * model's native size; brought to a multiple of VAE factor × 8, as `vidprior stylize` does), and results are
 * encoded in memory as PNG bytes at the input's size (stored once by the queue, no scratch file).
 */
import { decodeFrame, encodeFrame } from '../../src/io/frame-codec.js';
import { defaultWorkSize, planWork, type FitPlan } from '../../src/io/size.js';
import { nativeSize, sizeMultiple } from '../../src/pipelines/img2img.js';
import type { StableDiffusionModel } from '../../src/models/types.js';
import type { Tensor } from '../../src/tensor.js';

/** The working size of a frame: `workSize` if the job set one (0 = the frame's own), else defaultWorkSize. */
export function jobWorkSize(width: number, height: number, workSize: number | undefined, native: number): number {
  return workSize ?? defaultWorkSize(width, height, native);
}

/** How frames of this size reach the model (the CLI's default: scale to the working size, resize to a multiple). */
export function fitPlan(model: StableDiffusionModel, width: number, height: number, workSize?: number): FitPlan {
  return planWork(width, height, {
    multiple: sizeMultiple(model),
    workSize: jobWorkSize(width, height, workSize, nativeSize(model)),
  });
}

export async function readJobFrame(path: string, plan: FitPlan): Promise<Tensor<'float32'>> {
  // The job was accepted for frames of plan.original's size: a file of more pixels is not decoded.
  return decodeFrame(path, plan, { maxPixels: plan.original.width * plan.original.height });
}

/** PNG bytes of an output frame at the input's size. */
export function encodeJobFrame(image: Tensor<'float32'>, plan: FitPlan): Promise<Uint8Array> {
  return encodeFrame(image, plan);
}
