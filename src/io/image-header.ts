/**
 * The size of a PNG or JPEG read from its header alone, and the pixel caps checked against it before anything
 * is decoded. A compressed image says nothing about its decoded size: a 207-byte PNG can be 1024² pixels, a
 * few-KB one 16000², and decoding (then running the model on) such a frame takes gigabytes. Two caps:
 *   - input pixels: what decoding a frame costs (raw samples, then a float32 tensor);
 *   - working pixels: the frame as the model works on it, where self-attention at 1/8 of the resolution costs
 *     memory in the square of the pixel count (the VAE's mid-block: (W·H/64)² float32 scores).
 * Their defaults derive from the machine's memory (defaultPixelLimits); sharp's limitInputPixels, set from
 * the size accepted here, guards the decode itself (frames.ts).
 */
import { VidpriorError } from '../errors.js';

export interface ImageHeader {
  format: 'png' | 'jpeg';
  /** As stored (before any EXIF orientation; the pixel count is the same either way). */
  width: number;
  height: number;
  /** Samples per pixel as stored (a palette PNG counts 1). */
  channels: number;
  /** Bits per sample. */
  bitDepth: number;
}

export interface PixelLimits {
  /** Most pixels (width × height) of a frame that is decoded. */
  maxInputPixels: number;
  /** Most pixels of a frame as the model works on it. */
  maxWorkingPixels: number;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); C4, C8 and CC are not frames. */
const JPEG_SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

function bad(field: string, why: string): VidpriorError {
  return new VidpriorError('E_BAD_INPUT', `${field} is not a readable image: ${why}`, { field });
}

/** Reads the size of a PNG (IHDR) or JPEG (first SOF segment) without decoding; E_BAD_INPUT naming `field`. */
export function readImageHeader(bytes: Uint8Array, field: string): ImageHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    // The first chunk must be IHDR: length 13, then width, height, bit depth, colour type.
    const ihdr = String.fromCharCode(...bytes.subarray(12, 16));
    if (bytes.length < 29 || view.getUint32(8) !== 13 || ihdr !== 'IHDR') throw bad(field, 'a PNG without an IHDR');
    const width = view.getUint32(16);
    const height = view.getUint32(20);
    const bitDepth = bytes[24]!;
    const channels = PNG_CHANNELS[bytes[25]!];
    if (!width || !height || !channels || ![1, 2, 4, 8, 16].includes(bitDepth))
      throw bad(field, `a PNG header with size ${width}×${height}, bit depth ${bitDepth}, colour type ${bytes[25]}`);
    return { format: 'png', width, height, channels, bitDepth };
  }
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    let p = 2;
    while (p + 4 <= bytes.length) {
      if (bytes[p] !== 0xff) throw bad(field, `a JPEG marker expected at byte ${p}`);
      const marker = bytes[p + 1]!;
      if (marker === 0xff) {
        p++; // fill byte
        continue;
      }
      if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
        p += 2; // markers without a length
        continue;
      }
      const length = view.getUint16(p + 2);
      if (length < 2) throw bad(field, `a JPEG segment of length ${length} at byte ${p}`);
      if (JPEG_SOF.has(marker)) {
        if (p + 10 > bytes.length) break;
        const bitDepth = bytes[p + 4]!;
        const height = view.getUint16(p + 5);
        const width = view.getUint16(p + 7);
        const channels = bytes[p + 9]!;
        // A height of 0 is defined later by a DNL marker, which decoders rarely support: refuse it.
        if (!width || !height || !channels) throw bad(field, `a JPEG frame header with size ${width}×${height}`);
        return { format: 'jpeg', width, height, channels, bitDepth };
      }
      if (marker === 0xda || marker === 0xd9) throw bad(field, 'a JPEG without a frame header before its data');
      p += 2 + length;
    }
    throw bad(field, 'a JPEG that ends before its frame header');
  }
  throw new VidpriorError(
    'E_BAD_INPUT',
    `${field} is not a PNG or JPEG image (${bytes.length} bytes starting ${Buffer.from(bytes.subarray(0, 8)).toString('hex')})`,
    { field },
  );
}

const mp = (pixels: number) => `${(pixels / 1e6).toFixed(1)} megapixels`;

/**
 * E_TOO_LARGE when a frame of `size` has more pixels than is decoded, or when `working` (its size as the model
 * works on it; by default the frame's own) is more than the model can work on.
 */
export function checkPixels(
  size: { width: number; height: number },
  field: string,
  limits: PixelLimits,
  working: { width: number; height: number } = size,
): void {
  const input = size.width * size.height;
  if (input > limits.maxInputPixels) {
    throw new VidpriorError(
      'E_TOO_LARGE',
      `${field} is ${size.width}×${size.height} (${mp(input)}): more than this daemon decodes (${mp(limits.maxInputPixels)}; serve --max-input-mp)`,
      { field, pixels: input, limit: limits.maxInputPixels },
    );
  }
  const work = working.width * working.height;
  if (work > limits.maxWorkingPixels) {
    const at = working === size ? '' : ` at its working size ${working.width}×${working.height}`;
    throw new VidpriorError(
      'E_TOO_LARGE',
      `${field} is ${size.width}×${size.height}${at} (${mp(work)}): more than the model can work on in this machine's memory (${mp(limits.maxWorkingPixels)}; serve --max-working-mp)`,
      { field, pixels: work, limit: limits.maxWorkingPixels },
    );
  }
}

/** Bytes one decoded input pixel takes on the way to the model: up to 16-bit RGB samples, then float32 RGB. */
const DECODE_BYTES_PER_PIXEL = 3 * 2 + 3 * 4;
/**
 * Bytes of the attention scores at working size P pixels, per (P/64)² entry: float32 scores, and the several
 * buffers a runtime holds around them (measured: a 1024² frame took 5.2 GB, about 5 × (1024²/64)² × 4 bytes).
 */
const ATTENTION_BYTES_PER_ENTRY = 5 * 4;
/** One frame may use this share of the machine's memory (the model, the training graph and others need the rest). */
const FRAME_MEMORY_SHARE = 1 / 8;

/** The caps a machine with `memoryBytes` of memory can hold (24 GiB: 179 megapixels decoded, 0.81 worked on). */
export function defaultPixelLimits(memoryBytes: number): PixelLimits {
  const budget = memoryBytes * FRAME_MEMORY_SHARE;
  return {
    // Never more than sharp's own default limit (16383 × 16383).
    maxInputPixels: Math.min(0x3fff * 0x3fff, Math.floor(budget / DECODE_BYTES_PER_PIXEL)),
    maxWorkingPixels: Math.floor(64 * Math.sqrt(budget / ATTENTION_BYTES_PER_ENTRY)),
  };
}
