/**
 * Frame sequences for the metrics commands, read through the project's one way in (src/io/inputs.ts:
 * folders of PNG/JPEG frames in natural order, single images, or videos decoded by ffmpeg). io gives frames
 * as [3, H, W] float32 in [-1, 1]; the metrics work on planar RGB in [0, 1] (Lai et al.'s convention), so this
 * adapter only rescales.
 */
import { openFrameSource } from '../io/inputs.js';
import type { FrameSequence } from './consistency.js';
import type { RgbImage } from './image.js';

export interface ClosableSequence extends FrameSequence {
  /** Removes temporary files (decoded video frames). */
  close(): Promise<void>;
}

/** Opens a folder of frames, an image, or a video file at its own size (no model-size fitting). */
export async function openSequence(path: string): Promise<ClosableSequence> {
  const source = await openFrameSource(path);
  return {
    path,
    count: source.frames.length,
    width: source.width,
    height: source.height,
    async read(i: number): Promise<RgbImage> {
      const t = await source.read(i);
      const [, h, w] = t.dims;
      const data = new Float32Array(t.data.length);
      for (let k = 0; k < data.length; k++) data[k] = 0.5 * (t.data[k] + 1);
      return { width: w, height: h, data };
    },
    close: () => source.cleanup(),
  };
}
