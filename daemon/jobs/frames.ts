/**
 * A job's frames through the library's one way in and out (src/io): input files of the job folder are read
 * as [3,H,W] float32 in [-1,1] at the model's working size (resized or padded to a multiple of VAE factor × 8,
 * as `vidprior stylize` does), and output frames are restored to the input size and written as PNG.
 */
import { readFile, rm } from 'node:fs/promises';
import { readFrame, writeFramePng } from '../../src/io/frames.js';
import { cropFrame, fitIsIdentity, padFrame, planFit, type FitPlan } from '../../src/io/size.js';
import { sizeMultiple } from '../../src/pipelines/img2img.js';
import type { StableDiffusionModel } from '../../src/models/types.js';
import type { Tensor } from '../../src/tensor.js';

/** How frames of this size reach the model (the CLI's default: resize to the nearest multiple). */
export function fitPlan(model: StableDiffusionModel, width: number, height: number): FitPlan {
  return planFit(width, height, sizeMultiple(model));
}

export async function readJobFrame(path: string, plan: FitPlan): Promise<Tensor<'float32'>> {
  const identity = fitIsIdentity(plan);
  // The job was accepted for frames of plan.original's size: a file of more pixels is not decoded.
  const maxPixels = plan.original.width * plan.original.height;
  const image = await readFrame(
    path,
    plan.mode === 'resize' && !identity ? { resize: plan.working, maxPixels } : { maxPixels },
  );
  return plan.mode === 'pad' && !identity ? padFrame(image, plan) : image;
}

/** PNG bytes of an output frame at the input's size; `scratch` is a temporary file path in the job folder. */
export async function encodeJobFrame(image: Tensor<'float32'>, plan: FitPlan, scratch: string): Promise<Uint8Array> {
  const identity = fitIsIdentity(plan);
  const restored = plan.mode === 'pad' && !identity ? cropFrame(image, plan) : image;
  await writeFramePng(scratch, restored, plan.mode === 'resize' && !identity ? { resize: plan.original } : {});
  try {
    return await readFile(scratch);
  } finally {
    await rm(scratch, { force: true });
  }
}
