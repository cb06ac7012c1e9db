/**
 * Lanczos resampling exactly as Pillow's `Image.resize(size, Image.LANCZOS)` does it (libImaging/Resample.c),
 * which is how diffusers' VaeImageProcessor resizes images: separable, horizontal pass then vertical pass, a
 * Lanczos-3 kernel widened by the scale factor when shrinking, weights normalized per output pixel, and for 8-bit
 * images 22-bit fixed-point weights with rounding and clipping after each pass. Higher bit depths use the same
 * kernel in double precision. (libvips' lanczos3, which sharp uses, differs from Pillow by several levels.)
 */

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

function lanczos(x: number): number {
  return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

interface Coefficients {
  /** Per output pixel: first input index and number of taps. */
  bounds: Int32Array;
  /** outSize × ksize weights, normalized to sum 1. */
  weights: Float64Array;
  ksize: number;
}

/** Pillow's precompute_coeffs for a full-image box [0, inSize). */
export function lanczosCoefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 3 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Float64Array(outSize * ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterScale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let sum = 0;
    for (let x = 0; x < xmax; x++) {
      const w = lanczos((x + xmin - center + 0.5) * ss);
      weights[xx * ksize + x] = w;
      sum += w;
    }
    if (sum !== 0) for (let x = 0; x < xmax; x++) weights[xx * ksize + x]! /= sum;
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { bounds, weights, ksize };
}

/** Pillow's normalize_coeffs_8bpc: weights as 22-bit fixed point, rounded half away from zero. */
function fixedPoint(weights: Float64Array): Float64Array {
  return weights.map((w) => (w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE)));
}

type Pixels = Uint8Array | Uint16Array;

/**
 * One separable pass along x (`horizontal`) or y over interleaved pixels. 8-bit data uses Pillow's integer
 * arithmetic (start at ½, accumulate, shift, clip); wider data accumulates in double and rounds to nearest.
 */
function pass(
  src: Pixels,
  w: number,
  h: number,
  channels: number,
  outLen: number,
  horizontal: boolean,
  c: Coefficients,
  max: number,
): Pixels {
  const eight = max === 255;
  const k = eight ? fixedPoint(c.weights) : c.weights;
  const ow = horizontal ? outLen : w;
  const oh = horizontal ? h : outLen;
  const out = eight ? new Uint8Array(ow * oh * channels) : new Uint16Array(ow * oh * channels);
  const start = eight ? ONE / 2 : 0;
  const sum = new Float64Array(channels);
  for (let yy = 0; yy < oh; yy++) {
    for (let xx = 0; xx < ow; xx++) {
      const o = horizontal ? xx : yy;
      const first = c.bounds[o * 2]!;
      const taps = c.bounds[o * 2 + 1]!;
      sum.fill(start);
      for (let t = 0; t < taps; t++) {
        const weight = k[o * c.ksize + t]!;
        const p = horizontal ? (yy * w + first + t) * channels : ((first + t) * w + xx) * channels;
        for (let ch = 0; ch < channels; ch++) sum[ch]! += src[p + ch]! * weight;
      }
      const q = (yy * ow + xx) * channels;
      for (let ch = 0; ch < channels; ch++) {
        const v = eight ? Math.floor(sum[ch]! / ONE) : Math.round(sum[ch]!);
        out[q + ch] = v < 0 ? 0 : Math.min(v, max);
      }
    }
  }
  return out;
}

/**
 * Resizes interleaved pixels (`channels` per pixel, values up to `max`: 255 for 8-bit, 65535 for 16-bit) to
 * outW × outH like Pillow's LANCZOS resize. Returns the input itself when the size does not change.
 */
export function resizeLanczos(
  src: Pixels,
  w: number,
  h: number,
  channels: number,
  outW: number,
  outH: number,
  max = 255,
): Pixels {
  let data = src;
  if (outW !== w) data = pass(data, w, h, channels, outW, true, lanczosCoefficients(w, outW), max);
  if (outH !== h) data = pass(data, outW, h, channels, outH, false, lanczosCoefficients(h, outH), max);
  return data;
}
