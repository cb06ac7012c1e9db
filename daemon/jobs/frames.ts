/**
 * A job's frames through the library's one frame codec (src/io/frame-codec.ts): input files of the job folder
 * are decoded as [3,H,W] float32 in [-1,1] at the job's working size (short side `work_size`, by default the
 * model's native size; brought to a multiple of VAE factor × 8, as `vidprior stylize` does), and results are
 * encoded in memory as PNG bytes at the input's size (stored once by the queue, no scratch file). The same plan
 * decides at submit whether the job fits the daemon's memory (admitJob).
 */
import { VidpriorError } from '../../src/errors.js';
import { decodeFrame, encodeFrame } from '../../src/io/frame-codec.js';
import type { Size } from '../../src/io/frames.js';
import { defaultWorkSize, planWork, type FitPlan } from '../../src/io/size.js';
import { type JobRun, type MemoryModel, estimateJobMemory, gib, memoryModelOf } from '../../src/pipelines/memory.js';
import { nativeSize, sizeMultiple } from '../../src/pipelines/img2img.js';
import type { StableDiffusionModel } from '../../src/models/types.js';
import type { ExecutionProvider } from '../../src/runtime/types.js';
import type { Tensor } from '../../src/tensor.js';

/** What the working size depends on (the model's size multiple and native size) and what memory it takes. */
export interface WorkModel {
  multiple: number;
  native: number;
  memory: MemoryModel;
}

/**
 * SD 1.x's (VAE factor 8): assumed at submit while no model is loaded yet. Neither the model's UNet nor the
 * provider it will run on is known then, so its attention is left out; the run checks again once loaded.
 */
export const SD1_WORK_MODEL: WorkModel = {
  multiple: 64,
  native: 512,
  memory: { vaeFactor: 8, hostUnetAttention: null },
};

/** The loaded model's, on provider `ep`: the UNet's attention counts where it is host memory (CPU). */
export function workModelOf(model: StableDiffusionModel, ep: ExecutionProvider): WorkModel {
  return { multiple: sizeMultiple(model), native: nativeSize(model), memory: memoryModelOf(model, ep) };
}

/** How frames of this size reach the model: `workSize` if the job set one (0 = their own), else the default. */
export function jobPlan(
  work: Pick<WorkModel, 'multiple' | 'native'>,
  width: number,
  height: number,
  workSize?: number,
): FitPlan {
  return planWork(width, height, {
    multiple: work.multiple,
    workSize: workSize ?? defaultWorkSize(width, height, work.native),
  });
}

export function fitPlan(model: StableDiffusionModel, width: number, height: number, workSize?: number): FitPlan {
  return jobPlan({ multiple: sizeMultiple(model), native: nativeSize(model) }, width, height, workSize);
}

/**
 * E_TOO_LARGE, naming the frame size, the working size and the limit, when the run's frames at the plan's
 * working size need more memory than `limit` bytes on this model (src/pipelines/memory.ts).
 */
export function admitJob(plan: FitPlan, run: JobRun, work: WorkModel, limit: number): void {
  const { batch } = run;
  const need = estimateJobMemory(plan.original, plan.working, run, work.memory);
  if (need.bytes <= limit) return;
  const s = (z: Size) => `${z.width}×${z.height}`;
  throw new VidpriorError(
    'E_TOO_LARGE',
    `frames of ${s(plan.original)} worked on at ${s(plan.working)}, ${batch} at a time, need about ${gib(need.bytes)}: more than this daemon's limit of ${gib(limit)} (serve --max-job-memory-gb); lower params.work_size${batch > 1 ? ' or params.batch' : ''}`,
    {
      field: 'params.work_size',
      width: plan.original.width,
      height: plan.original.height,
      working: plan.working,
      batch,
      bytes: need.bytes,
      limit,
    },
  );
}

export async function readJobFrame(path: string, plan: FitPlan): Promise<Tensor<'float32'>> {
  // The job was accepted for frames of plan.original's size: a file of more pixels is not decoded.
  return decodeFrame(path, plan, { maxPixels: plan.original.width * plan.original.height });
}

/** PNG bytes of an output frame at the input's size. */
export function encodeJobFrame(image: Tensor<'float32'>, plan: FitPlan): Promise<Uint8Array> {
  return encodeFrame(image, plan);
}
