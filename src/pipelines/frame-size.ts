/**
 * Frame sizes the model can take. The VAE divides the size by its scale factor f and SD's UNet halves the
 * latent three times, so the pipeline works on images whose sides are multiples of f × 8. Other sizes are
 * padded at the right and bottom edges (the edge pixels repeated) up to the next multiple and cropped back
 * after decoding, so the output has the input's size and its pixels stay where they were.
 */
import { float32, type Tensor } from '../tensor.js';

/** UNet downsamplings that SD 1.x's UNet (and any config the builder makes) can take: 2³. */
export const UNET_LATENT_MULTIPLE = 8;

export interface WorkSize {
  /** The input frames' size. */
  width: number;
  height: number;
  /** The padded size the model works on (multiples of `multiple`). */
  workWidth: number;
  workHeight: number;
  multiple: number;
}

export function workSize(width: number, height: number, vaeScaleFactor: number): WorkSize {
  const multiple = vaeScaleFactor * UNET_LATENT_MULTIPLE;
  const up = (v: number): number => Math.ceil(v / multiple) * multiple;
  return { width, height, workWidth: up(width), workHeight: up(height), multiple };
}

/** Pads a batch [N,3,H,W] to [N,3,H',W'] by repeating the last row and column. */
export function padToWorkSize(images: Tensor<'float32'>, size: WorkSize): Tensor<'float32'> {
  const [n, c, h, w] = images.dims as [number, number, number, number];
  const { workWidth: W, workHeight: H } = size;
  if (H === h && W === w) return images;
  const out = new Float32Array(n * c * H * W);
  for (let p = 0; p < n * c; p++) {
    const src = images.data.subarray(p * h * w, (p + 1) * h * w);
    const dst = out.subarray(p * H * W, (p + 1) * H * W);
    for (let y = 0; y < H; y++) {
      const row = src.subarray(Math.min(y, h - 1) * w, Math.min(y, h - 1) * w + w);
      const d = y * W;
      dst.set(row, d);
      dst.fill(row[w - 1]!, d + w, d + W);
    }
  }
  return float32([n, c, H, W], out);
}

/** Crops a batch [N,3,H',W'] back to the frames' own size [N,3,H,W]. */
export function cropToFrameSize(images: Tensor<'float32'>, size: WorkSize): Tensor<'float32'> {
  const [n, c, H, W] = images.dims as [number, number, number, number];
  const { width: w, height: h } = size;
  if (H === h && W === w) return images;
  const out = new Float32Array(n * c * h * w);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < h; y++) {
      out.set(images.data.subarray(p * H * W + y * W, p * H * W + y * W + w), p * h * w + y * w);
    }
  }
  return float32([n, c, h, w], out);
}
