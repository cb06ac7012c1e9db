/**
 * Deflickering a processed video against its original (Deep Video Prior as a blind post-pass), in numbered
 * steps that report progress through a callback:
 *   1. frames at the working size (the processed frames' size, or smaller with `workingSize`), padded by
 *      reflection to a multiple of 2^(scales−1);
 *   2. training on them (train.ts);
 *   3. applying the trained network to every ORIGINAL frame at the output size (the processed frames' own
 *      size), `applyBatch` frames per run, each result handed to `write` with its PSNR to the processed frame.
 * Originals of another size than the processed frames are resized to it (Lanczos), so the pair lines up.
 */
import { VidpriorError, check } from '../errors.js';
import { imageSize, readFrame, type Size } from '../io/frames.js';
import { cropFrame, fitIsIdentity, padFrame, planFit, type FitPlan } from '../io/size.js';
import type { Runtime } from '../runtime/types.js';
import type { Tensor } from '../tensor.js';
import { DeflickerApplier } from './apply.js';
import { sideMultiple } from './network.js';
import {
  type DeflickerTrainOptions,
  type TrainingFrame,
  frameToBytes,
  isEightBit,
  type TrainProgress,
  type TrainResult,
  TRAIN_DEFAULTS,
  trainDeflicker,
} from './train.js';

/** The pair of videos, frame by frame, as files (what the CLI and the daemon both have). */
export interface DeflickerClip {
  originals: string[];
  processed: string[];
  /** The processed frames' size: the output's. */
  width: number;
  height: number;
}

export interface DeflickerOptions extends Omit<DeflickerTrainOptions, 'onProgress'> {
  /** Short side of the training frames (the output is always made at full size); 0 = train at full size. */
  workingSize: number;
  /** Frames per forward run when applying. */
  applyBatch: number;
  /** Outputs that exist already (a resumed daemon job): not computed again. */
  isDone?: (index: number) => boolean;
  onProgress?: (p: DeflickerProgress) => void;
}

export const DEFLICKER_DEFAULTS = { ...TRAIN_DEFAULTS, workingSize: 0, applyBatch: 1 } as const;

export type DeflickerProgress =
  | (TrainProgress & { fraction: number })
  | {
      stage: 'reading' | 'applying';
      frame: number;
      frames: number;
      fraction: number;
      etaSeconds?: number;
      message?: string;
    };

export interface DeflickerResult {
  training: TrainResult;
  /** Size the network was trained at (before padding), and the output size. */
  trainSize: Size;
  outputSize: Size;
  /** Mean over the frames written of the PSNR (dB, RGB in [0, 1]) of the result to the processed frame. */
  psnrToProcessed: number;
  framesWritten: number;
  seconds: { reading: number; training: number; applying: number };
}

/** The training size: the short side brought to `workingSize` (never up), aspect kept. */
export function trainingSize(width: number, height: number, workingSize: number): Size {
  if (!workingSize || workingSize >= Math.min(width, height)) return { width, height };
  const s = workingSize / Math.min(width, height);
  return { width: Math.max(1, Math.round(width * s)), height: Math.max(1, Math.round(height * s)) };
}

/** PSNR (dB) of two [3, H, W] frames in [-1, 1], compared in [0, 1] after clamping. */
export function psnr(a: Tensor<'float32'>, b: Tensor<'float32'>): number {
  let sum = 0;
  for (let i = 0; i < a.data.length; i++) {
    const x = Math.min(Math.max(a.data[i]!, -1), 1);
    const y = Math.min(Math.max(b.data[i]!, -1), 1);
    const d = 0.5 * (x - y);
    sum += d * d;
  }
  const mse = sum / a.data.length;
  return mse === 0 ? 100 : Math.min(100, -10 * Math.log10(mse));
}

async function readAt(path: string, native: Size, size: Size): Promise<Tensor<'float32'>> {
  return readFrame(path, native.width === size.width && native.height === size.height ? {} : { resize: size });
}

export async function deflicker(
  runtime: Runtime,
  clip: DeflickerClip,
  o: DeflickerOptions,
  write: (index: number, frame: Tensor<'float32'>) => Promise<void>,
): Promise<DeflickerResult> {
  const progress = o.onProgress ?? (() => {});
  const n = clip.originals.length;
  // 1. Check the pair and the options.
  if (n === 0) throw new VidpriorError('E_BAD_INPUT', 'deflicker needs at least one frame');
  if (clip.processed.length !== n) {
    throw new VidpriorError(
      'E_BAD_INPUT',
      `the original has ${n} frames but the processed video has ${clip.processed.length}: they must pair up frame by frame`,
      { original: n, processed: clip.processed.length },
    );
  }
  check(
    Number.isInteger(o.workingSize) && o.workingSize >= 0,
    'working-size',
    o.workingSize,
    'a whole number ≥ 0 (0 = full size)',
  );
  check(
    Number.isInteger(o.applyBatch) && o.applyBatch >= 1 && o.applyBatch <= 64,
    'apply-batch',
    o.applyBatch,
    'a whole number from 1 to 64',
  );
  const throwIfCancelled = (): void => {
    if (o.signal?.aborted) throw new VidpriorError('E_CANCELLED', 'deflicker was cancelled');
  };
  const outputSize = { width: clip.width, height: clip.height };
  const trainSize = trainingSize(clip.width, clip.height, o.workingSize);
  const m = sideMultiple(o);
  const trainPlan = planFit(trainSize.width, trainSize.height, m, 'pad', 'reflect');
  const applyPlan = planFit(clip.width, clip.height, m, 'pad', 'reflect');
  const pad = (t: Tensor<'float32'>, plan: FitPlan) => (fitIsIdentity(plan) ? t : padFrame(t, plan));
  const originalSize = await imageSize(clip.originals[0]!);
  // Shares of the whole job's progress: reading ~ 5 %, applying ~ one forward per frame at full size.
  const trainShare = 0.85;

  // 2. The training frames.
  const t0 = performance.now();
  const original: TrainingFrame[] = [];
  const processed: TrainingFrame[] = [];
  for (let i = 0; i < n; i++) {
    throwIfCancelled();
    progress({ stage: 'reading', frame: i + 1, frames: n, fraction: (0.05 * i) / n });
    for (const [path, size, what] of [
      [clip.processed[i]!, outputSize, 'processed'],
      [clip.originals[i]!, originalSize, 'original'],
    ] as const) {
      const own = await imageSize(path);
      if (own.width !== size.width || own.height !== size.height) {
        throw new VidpriorError(
          'E_BAD_INPUT',
          `${path} is ${own.width}×${own.height} but the first ${what} frame is ${size.width}×${size.height}: all frames of a video must have one size`,
          { path },
        );
      }
    }
    // Kept as bytes when the frames are 8-bit (the usual case): a quarter of the memory, the same floats.
    for (const [list, path, own] of [
      [original, clip.originals[i]!, originalSize],
      [processed, clip.processed[i]!, outputSize],
    ] as const) {
      const frame = pad(await readAt(path, own, trainSize), trainPlan).data;
      list.push(isEightBit(frame) ? frameToBytes(frame) : frame);
    }
  }
  const t1 = performance.now();

  // 3. Train.
  const training = await trainDeflicker(
    runtime,
    { original, processed, width: trainPlan.working.width, height: trainPlan.working.height },
    {
      ...o,
      onProgress: (p) => progress({ ...p, fraction: 0.05 + (trainShare - 0.05) * (p.step / Math.max(1, p.steps)) }),
    },
  );
  original.length = 0;
  processed.length = 0;
  const t2 = performance.now();

  // 4. Apply at full size, batch by batch, skipping outputs that exist.
  const todo = [...Array(n).keys()].filter((i) => !o.isDone?.(i));
  const applier = await DeflickerApplier.open(
    runtime,
    training.weights,
    { width: o.width, scales: o.scales, irt: o.irt, batch: Math.min(o.applyBatch, Math.max(1, todo.length)) },
    applyPlan.working,
  );
  let psnrSum = 0;
  try {
    for (let k = 0; k < todo.length; k += applier.batch) {
      throwIfCancelled();
      const picks = todo.slice(k, k + applier.batch);
      const inputs = [];
      for (const i of picks) inputs.push(pad(await readAt(clip.originals[i]!, originalSize, outputSize), applyPlan));
      const outputs = await applier.run(inputs);
      for (const [j, i] of picks.entries()) {
        const result = fitIsIdentity(applyPlan) ? outputs[j]! : cropFrame(outputs[j]!, applyPlan);
        psnrSum += psnr(result, await readFrame(clip.processed[i]!));
        await write(i, result);
      }
      const done = k + picks.length;
      const perFrame = (performance.now() - t2) / 1000 / done;
      progress({
        stage: 'applying',
        frame: done,
        frames: todo.length,
        fraction: trainShare + (1 - trainShare) * (done / todo.length),
        etaSeconds: perFrame * (todo.length - done),
      });
    }
  } finally {
    await applier.close();
  }
  const t3 = performance.now();
  return {
    training,
    trainSize,
    outputSize,
    psnrToProcessed: todo.length ? psnrSum / todo.length : Number.NaN,
    framesWritten: todo.length,
    seconds: { reading: (t1 - t0) / 1000, training: (t2 - t1) / 1000, applying: (t3 - t2) / 1000 },
  };
}
