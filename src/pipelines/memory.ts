/**
 * What a stylize/edit job needs in memory beyond the model's weights, estimated before it starts so that a job
 * that cannot fit is refused (E_TOO_LARGE) instead of killing the daemon. Frames stream through the pipeline
 * `batch` at a time, so the estimate depends on the batch and the working size only, never on the frame count:
 *   - attention: the VAE's mid-block attends over all H/8 × W/8 latent pixels at once, (P/64)² scores per frame
 *     (5 float32 buffers around them, measured: a 1024² frame took 5.2 GB; src/io/image-header.ts);
 *   - activations: the VAE decoder's full-resolution blocks (SD 1.5: 128 float32 channels, about two live);
 *   - frames: one input decoded at its own size (up to 16-bit RGB, then float32), its result encoded back.
 */
import type { Size } from '../io/frames.js';

const ATTENTION_BYTES_PER_ENTRY = 5 * 4;
const ACTIVATION_BYTES_PER_PIXEL = 2 * 128 * 4;
const FRAME_BYTES_PER_PIXEL = 3 * 2 + 3 * 4 + 3 * 4;

export interface JobMemory {
  /** Estimated bytes at the peak, beyond the model's weights. */
  bytes: number;
  working: Size;
  batch: number;
}

/** The estimate for frames of `original` size worked on at `working`, `batch` frames per UNet/VAE run. */
export function estimateJobMemory(original: Size, working: Size, batch: number): JobMemory {
  const pixels = working.width * working.height;
  const tokens = pixels / 64;
  const perFrame = ATTENTION_BYTES_PER_ENTRY * tokens * tokens + ACTIVATION_BYTES_PER_PIXEL * pixels;
  const io = FRAME_BYTES_PER_PIXEL * (original.width * original.height + pixels);
  return { bytes: Math.ceil(batch * (perFrame + io)), working, batch };
}

/** The default limit: half of the machine's memory (the model, the runtime and the system need the rest). */
export function defaultJobMemoryLimit(totalMemoryBytes: number): number {
  return Math.floor(totalMemoryBytes / 2);
}

export const gib = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(2)} GiB`;
