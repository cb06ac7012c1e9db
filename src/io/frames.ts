/**
 * Image frames on disk ↔ RGB float32 tensors [3, H, W] in [-1, 1], the layout and range the VAE takes.
 * The conversions are diffusers' VaeImageProcessor ones, in float32: in, u8/255·2−1; out,
 * round((x/2 + 0.5).clamp(0,1)·255) with numpy's round-half-even. Reading applies the EXIF orientation (as
 * diffusers' load_image does), drops alpha (PIL's convert("RGB")) or flattens it on a background, widens grey to
 * RGB, and keeps 16-bit PNGs at 16-bit precision.
 */
import { roundHalfEven } from '../numeric.js';
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import sharp from 'sharp';
import { VidpriorError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { float32 } from '../tensor.js';
import { writeFileAtomic } from './atomic-write.js';
import { resizeLanczos } from './resample.js';

export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg'];

export interface FrameFile {
  /** File name inside its folder (e.g. frame_0001.png). */
  name: string;
  path: string;
}

export interface Size {
  width: number;
  height: number;
}

export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
}

/**
 * Natural order: digit runs compare as numbers (frame2 < frame10, 007 = 7 then shorter first), other runs
 * case-insensitively, ties broken by plain code-point order so the order is total and locale-free.
 */
export function naturalCompare(a: string, b: string): number {
  const ra = a.match(/\d+|\D+/g) ?? [];
  const rb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ra[i]!;
    const y = rb[i]!;
    const dx = /^\d/.test(x);
    const dy = /^\d/.test(y);
    if (dx && dy) {
      const nx = x.replace(/^0+(?=\d)/, '');
      const ny = y.replace(/^0+(?=\d)/, '');
      if (nx.length !== ny.length) return nx.length - ny.length;
      if (nx !== ny) return nx < ny ? -1 : 1;
      if (x.length !== y.length) return x.length - y.length;
    } else {
      const lx = x.toLowerCase();
      const ly = y.toLowerCase();
      if (lx !== ly) return lx < ly ? -1 : 1;
    }
  }
  if (ra.length !== rb.length) return ra.length - rb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The PNG/JPEG files of a folder (extensions case-insensitive), in natural order. */
export async function listFrameFiles(dir: string): Promise<FrameFile[]> {
  let names: string[];
  try {
    const info = await stat(dir);
    if (!info.isDirectory()) throw new VidpriorError('E_BAD_INPUT', `not a folder: ${dir}`, { path: dir });
    names = await readdir(dir);
  } catch (err) {
    if (err instanceof VidpriorError) throw err;
    throw new VidpriorError(
      'E_BAD_INPUT',
      `cannot read the frame folder ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { path: dir },
      { cause: err },
    );
  }
  const frames = names.filter((n) => isImageFile(n) && !n.startsWith('.')).sort(naturalCompare);
  if (frames.length === 0) {
    throw new VidpriorError('E_BAD_INPUT', `no frames in ${dir}: expected .png, .jpg or .jpeg files`, { path: dir });
  }
  return frames.map((name) => ({ name, path: join(dir, name) }));
}

export interface ReadFrameOptions {
  /** 'drop' (default, like PIL's convert("RGB")) or 'flatten' onto `background`. */
  alpha?: 'drop' | 'flatten';
  /** Background for 'flatten', 0–255 RGB; white by default. */
  background?: readonly [number, number, number];
  /** Resize to this size after decoding with Pillow's Lanczos (resample.ts), as diffusers resizes before normalizing. */
  resize?: Size;
  /** Refuse (E_BAD_INPUT) an image of more pixels than this before decoding it (sharp's limitInputPixels). */
  maxPixels?: number;
}

function badImage(path: string, err: unknown): VidpriorError {
  const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return new VidpriorError('E_BAD_INPUT', `cannot read image ${path}: ${reason}`, { path }, { cause: err });
}

/** Width and height of an image as it will be read (after the EXIF orientation). */
export async function imageSize(path: string): Promise<Size> {
  try {
    const m = await sharp(path, { failOn: 'error' }).metadata();
    if (!m.width || !m.height) throw new VidpriorError('E_BAD_INPUT', 'no image size');
    const swap = m.orientation !== undefined && m.orientation >= 5;
    return swap ? { width: m.height, height: m.width } : { width: m.width, height: m.height };
  } catch (err) {
    throw badImage(path, err);
  }
}

/** What names a frame in errors: its path, or `image bytes` for an encoded image in memory. */
function frameLabel(input: string | Uint8Array): string {
  return typeof input === 'string' ? input : `image of ${input.length} bytes`;
}

/** Reads an image (a file, or PNG/JPEG bytes in memory) as a float32 tensor [3, H, W] in [-1, 1]. */
export async function readFrame(
  input: string | Uint8Array,
  options: ReadFrameOptions = {},
): Promise<Tensor<'float32'>> {
  const path = frameLabel(input);
  try {
    const meta = await sharp(input, { failOn: 'error' }).metadata();
    const sixteen = meta.depth === 'ushort';
    let img = sharp(input, { failOn: 'error', limitInputPixels: options.maxPixels ?? true }).autoOrient();
    if (meta.hasAlpha) {
      if (options.alpha === 'flatten') {
        const [r, g, b] = options.background ?? [255, 255, 255];
        img = img.flatten({ background: { r, g, b } });
      } else {
        img = img.removeAlpha();
      }
    }
    img = img.toColourspace(sixteen ? 'rgb16' : 'srgb');
    const { data, info } = await img.raw(sixteen ? { depth: 'ushort' } : {}).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3)
      throw new VidpriorError('E_BAD_INPUT', `expected 3 colour channels after conversion, got ${info.channels}`);
    const values = !sixteen
      ? new Uint8Array(data.buffer, data.byteOffset, data.length)
      : data.byteOffset % 2 === 0
        ? new Uint16Array(data.buffer, data.byteOffset, data.length / 2)
        : new Uint16Array(Uint8Array.from(data).buffer);
    const max = sixteen ? 65535 : 255;
    if (options.resize) {
      const { width, height } = options.resize;
      return hwcToTensor(resizeLanczos(values, info.width, info.height, 3, width, height, max), width, height, max);
    }
    return hwcToTensor(values, info.width, info.height, max);
  } catch (err) {
    throw badImage(path, err);
  }
}

/** Interleaved RGB integers (max 255 or 65535) → [3, H, W] float32 in [-1, 1], in diffusers' float32 steps. */
export function hwcToTensor(values: ArrayLike<number>, width: number, height: number, max = 255): Tensor<'float32'> {
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const unit = Math.fround(values[p * 3 + c]! / max);
      out[c * plane + p] = Math.fround(unit * 2) - 1;
    }
  }
  return float32([3, height, width], out);
}

/** [3, H, W] or [1, 3, H, W] float32 in [-1, 1] → interleaved RGB bytes, as diffusers' postprocess does. */
export function tensorToRgb8(image: Tensor<'float32'>): { data: Uint8Array; width: number; height: number } {
  const dims = image.dims.length === 4 && image.dims[0] === 1 ? image.dims.slice(1) : image.dims;
  if (dims.length !== 3 || dims[0] !== 3) {
    throw new VidpriorError(
      'E_SHAPE',
      `an RGB frame must have dims [3, H, W] or [1, 3, H, W], got [${image.dims.join(', ')}]`,
    );
  }
  const height = dims[1]!;
  const width = dims[2]!;
  const plane = width * height;
  const data = new Uint8Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const v = Math.fround(Math.fround(image.data[c * plane + p]! / 2) + 0.5);
      const unit = Number.isNaN(v) ? 0 : Math.min(Math.max(v, 0), 1);
      data[p * 3 + c] = roundHalfEven(Math.fround(unit * 255));
    }
  }
  return { data, width, height };
}

/** A [3, H, W] float32 frame in [-1, 1] as the bytes of an 8-bit RGB PNG, optionally resized (Pillow Lanczos) to `resize`. */
export async function encodeFramePng(image: Tensor<'float32'>, options: { resize?: Size } = {}): Promise<Uint8Array> {
  const rgb = tensorToRgb8(image);
  const size = options.resize ?? rgb;
  const data = resizeLanczos(rgb.data, rgb.width, rgb.height, 3, size.width, size.height);
  return sharp(data, { raw: { width: size.width, height: size.height, channels: 3 } })
    .png({ compressionLevel: 6 })
    .toBuffer();
}

/**
 * Writes a [3, H, W] float32 frame in [-1, 1] as an 8-bit RGB PNG, optionally resized (Pillow Lanczos) to
 * `resize`. The PNG appears whole or not at all (temporary file + rename), so a process killed mid-write (a
 * preempted farm task) leaves no half frame that a resumed run would take for done.
 */
export async function writeFramePng(
  path: string,
  image: Tensor<'float32'>,
  options: { resize?: Size } = {},
): Promise<void> {
  const png = await encodeFramePng(image, options);
  try {
    await writeFileAtomic(path, png, false);
  } catch (err) {
    throw new VidpriorError('E_IO', `cannot write ${path}: ${(err as Error).message}`, { path }, { cause: err });
  }
}
