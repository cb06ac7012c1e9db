/**
 * What a stylize/edit job needs in memory beyond the model's weights, estimated before it starts so that a job
 * that cannot fit is refused (E_TOO_LARGE) instead of killing the daemon. Frames stream through the pipeline
 * `batch` at a time, so the estimate depends on the batch and the working size only, never on the frame count:
 *   - VAE attention: the mid-block attends over all latent pixels at once, T² scores per frame (T = P / f²
 *     for P working pixels and VAE factor f), 5 float32 buffers around them (measured: a 1024² frame took
 *     5.2 GB; src/io/image-header.ts);
 *   - VAE activations: the decoder's full-resolution blocks (SD 1.5: 128 float32 channels, about two live);
 *   - UNet attention, where the UNet runs in host memory (the CPU provider): its largest self-attention has
 *     heads × (T / d²)² scores per UNet batch item (d: the block's downsampling), ×2 items with guidance, with
 *     the same 5 float32 buffers. Each CPU session keeps its own memory arena, so the UNet's and the VAE's add
 *     up (the VAE decode after the denoising loop raised the peak further). Measured on an SD 1.5-sized model
 *     (8 heads at full latent size, 4.0 GiB of weights), CPU, one 1080p frame with guidance: at 896×512 the
 *     peak was 20.0 GiB (estimate 16.8 GiB + weights), at 704×384 11.2 GiB (estimate 6.0 GiB + weights).
 *     On a GPU provider it is device memory, not counted here;
 *   - frames: one input decoded at its own size (up to 16-bit RGB, then float32), its result encoded back.
 */
import { VidpriorError } from '../errors.js';
import type { Size } from '../io/frames.js';
import type { StableDiffusionModel, UnetAttention } from '../models/types.js';
import type { ExecutionProvider } from '../runtime/types.js';

const SCORE_BYTES = 5 * 4;
const ACTIVATION_BYTES_PER_PIXEL = 2 * 128 * 4;
const FRAME_BYTES_PER_PIXEL = 3 * 2 + 3 * 4 + 3 * 4;

/** SD 1.x's (and 2.x's largest): 8 heads (SD 2.x: 5) over the full latent. */
export const SD1_UNET_ATTENTION: UnetAttention = { heads: 8, downsample: 1 };

/** What the estimate needs to know of the model and of where it runs. */
export interface MemoryModel {
  /** Image pixels per latent pixel, per side (8 for SD 1.x). */
  vaeFactor: number;
  /** The UNet's largest attention when the UNet runs in host memory (CPU); null on a GPU or while not known. */
  hostUnetAttention: UnetAttention | null;
}

/** A loaded model's, on provider `ep`: the UNet's attention counts where it is host memory (CPU). */
export function memoryModelOf(model: StableDiffusionModel, ep: ExecutionProvider): MemoryModel {
  const attention = model.facts.unetAttention ?? SD1_UNET_ATTENTION;
  return { vaeFactor: model.facts.vaeScaleFactor, hostUnetAttention: ep === 'cpu' ? attention : null };
}

/** How the frames go through the model: `batch` frames per run, twice through the UNet with guidance. */
export interface JobRun {
  batch: number;
  guided: boolean;
}

export interface JobMemory {
  /** Estimated bytes at the peak, beyond the model's weights. */
  bytes: number;
  working: Size;
  batch: number;
}

/** The estimate for frames of `original` size worked on at `working`. */
export function estimateJobMemory(original: Size, working: Size, run: JobRun, model: MemoryModel): JobMemory {
  const pixels = working.width * working.height;
  const tokens = pixels / model.vaeFactor ** 2;
  const vae = SCORE_BYTES * tokens * tokens + ACTIVATION_BYTES_PER_PIXEL * pixels;
  const attention = model.hostUnetAttention;
  const unetTokens = attention ? tokens / attention.downsample ** 2 : 0;
  const unet = attention ? SCORE_BYTES * attention.heads * unetTokens * unetTokens * (run.guided ? 2 : 1) : 0;
  const io = FRAME_BYTES_PER_PIXEL * (original.width * original.height + pixels);
  return { bytes: Math.ceil(run.batch * (vae + unet + io)), working, batch: run.batch };
}

/** A run's frames against a memory limit that holds the model's weights too (the CLI's `--memory-limit`). */
export interface RunMemoryCheck {
  original: Size;
  working: Size;
  run: JobRun;
  model: MemoryModel;
  /** Bytes of the model's weights (its files). */
  weightBytes: number;
  limit: number;
  /** Where the limit comes from, e.g. "this machine's memory". */
  limitSource: string;
  /** The working size of these frames at a short side of `workSize` pixels (what `--work-size` would give). */
  workingAt: (workSize: number) => Size;
}

/**
 * E_TOO_LARGE when the frames at their working size and the weights need more than the limit, naming both and
 * the largest `--work-size` that fits (short sides in steps of 64 below the current one), if one does.
 */
export function checkRunMemory(c: RunMemoryCheck): void {
  const need = (working: Size) => estimateJobMemory(c.original, working, c.run, c.model).bytes + c.weightBytes;
  const bytes = need(c.working);
  if (bytes <= c.limit) return;
  const s = (z: Size) => `${z.width}×${z.height}`;
  let tip = 'no working size fits: use a GPU provider or a machine with more memory';
  for (let side = Math.min(c.working.width, c.working.height) - 64; side >= 64; side -= 64) {
    const working = c.workingAt(side);
    if (need(working) <= c.limit) {
      tip = `--work-size ${side} fits (${s(working)}, about ${gib(need(working))})`;
      break;
    }
  }
  throw new VidpriorError(
    'E_TOO_LARGE',
    `frames of ${s(c.original)} worked on at ${s(c.working)}, ${c.run.batch} at a time, need about ${gib(bytes)} with the model's weights (${gib(c.weightBytes)}): more than ${gib(c.limit)} (${c.limitSource}); ${tip}`,
    { field: 'work-size', working: c.working, bytes, limit: c.limit },
  );
}

/** The default limit: half of the machine's memory (the model, the runtime and the system need the rest). */
export function defaultJobMemoryLimit(totalMemoryBytes: number): number {
  return Math.floor(totalMemoryBytes / 2);
}

export const gib = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(2)} GiB`;
