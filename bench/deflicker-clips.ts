/**
 * Real footage for the deflicker benchmark: the sample clip (examples/clip, 12 frames) and camera moves over
 * real photographs (bench/fixtures/photos, CC0): a pan with a slow zoom and a slight roll, rendered with
 * bilinear sampling, so the content is a real scene's texture and the motion is a real camera's kind of motion.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readFrame } from '../src/io/frames.js';
import { float32, type Tensor } from '../src/tensor.js';

export interface CameraMove {
  /** Window centre at the first and last frame, as fractions of the photo's size. */
  from: [number, number];
  to: [number, number];
  /** Window width as a fraction of the photo's width, at the first and last frame (smaller = zoomed in). */
  zoom: [number, number];
  /** Roll in degrees over the clip. */
  roll: number;
}

export const MOVES: Record<string, CameraMove> = {
  pan: { from: [0.42, 0.5], to: [0.58, 0.52], zoom: [0.78, 0.72], roll: 1.5 },
  push: { from: [0.5, 0.48], to: [0.52, 0.5], zoom: [0.82, 0.62], roll: -1 },
};

/** `frames` frames of width × height looking at `photo` along `move`. */
export async function cameraClip(
  photo: string,
  move: CameraMove,
  frames: number,
  width: number,
  height: number,
): Promise<Tensor<'float32'>[]> {
  const img = await readFrame(photo);
  const [, ph, pw] = img.dims as [number, number, number];
  const out: Tensor<'float32'>[] = [];
  for (let t = 0; t < frames; t++) {
    const s = frames > 1 ? t / (frames - 1) : 0;
    const cx = pw * (move.from[0] + s * (move.to[0] - move.from[0]));
    const cy = ph * (move.from[1] + s * (move.to[1] - move.from[1]));
    const winW = pw * (move.zoom[0] + s * (move.zoom[1] - move.zoom[0]));
    const scale = winW / width;
    const a = (move.roll * s * Math.PI) / 180;
    const [cos, sin] = [Math.cos(a) * scale, Math.sin(a) * scale];
    const data = new Float32Array(3 * width * height);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const dx = x - width / 2;
        const dy = y - height / 2;
        const sx = Math.min(Math.max(cx + cos * dx - sin * dy, 0), pw - 1.001);
        const sy = Math.min(Math.max(cy + sin * dx + cos * dy, 0), ph - 1.001);
        const x0 = Math.floor(sx);
        const y0 = Math.floor(sy);
        const fx = sx - x0;
        const fy = sy - y0;
        for (let c = 0; c < 3; c++) {
          const p = img.data;
          const base = c * pw * ph;
          const top = p[base + y0 * pw + x0]! * (1 - fx) + p[base + y0 * pw + x0 + 1]! * fx;
          const bottom = p[base + (y0 + 1) * pw + x0]! * (1 - fx) + p[base + (y0 + 1) * pw + x0 + 1]! * fx;
          data[c * width * height + y * width + x] = top * (1 - fy) + bottom * fy;
        }
      }
    }
    out.push(float32([3, height, width], data));
  }
  return out;
}

/** The frames of a folder (the sample clip), at their own size. */
export async function folderClip(dir: string): Promise<Tensor<'float32'>[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.png')).sort();
  const out: Tensor<'float32'>[] = [];
  for (const n of names) out.push(await readFrame(join(dir, n)));
  return out;
}
