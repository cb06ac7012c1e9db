/**
 * A quick look at submitted frames before a job is accepted: PNG or JPEG, readable header, its size (after
 * EXIF orientation, as src/io/frames.ts reads it). Frames that are not images are refused at submit time
 * (E_BAD_INPUT naming the frame) instead of failing later; only the header is read here.
 */
import sharp from 'sharp';
import { VidpriorError } from '../../src/errors.js';

export interface ImageInfo {
  format: 'png' | 'jpeg';
  width: number;
  height: number;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function sniff(bytes: Uint8Array): ImageInfo['format'] | null {
  if (bytes.length >= 8 && PNG_MAGIC.every((b, i) => bytes[i] === b)) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  return null;
}

/** Format and size of a PNG/JPEG, or E_BAD_INPUT naming `field`. */
export async function probeImage(bytes: Uint8Array, field: string): Promise<ImageInfo> {
  const format = sniff(bytes);
  if (!format)
    throw new VidpriorError(
      'E_BAD_INPUT',
      `${field} is not a PNG or JPEG image (${bytes.length} bytes starting ${Buffer.from(bytes.subarray(0, 8)).toString('hex')})`,
      { field },
    );
  try {
    const meta = await sharp(bytes, { failOn: 'error' }).metadata();
    if (!meta.width || !meta.height) throw new Error('no size in the header');
    // The size as src/io reads it: EXIF orientations 5–8 swap width and height.
    const swap = meta.orientation !== undefined && meta.orientation >= 5;
    return { format, width: swap ? meta.height : meta.width, height: swap ? meta.width : meta.height };
  } catch (err) {
    throw new VidpriorError(
      'E_BAD_INPUT',
      `${field} is not a readable ${format.toUpperCase()} image: ${(err as Error).message}`,
      { field },
      { cause: err },
    );
  }
}
