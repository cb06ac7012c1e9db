/**
 * Synthetic video with a known answer, for the metrics' tests and benchmark: a smooth random texture (a sum
 * of random sinusoids, so any sub-pixel shift is evaluated exactly, with no interpolation error) that moves
 * by a known displacement, optionally with a square object moving over it.
 */
import { Rng } from '../random.js';
import type { RgbImage } from './image.js';

export interface Texture {
  /** Intensity in [0, 1] of channel c at continuous position (x, y). */
  at(x: number, y: number, c: number): number;
}

/** A band-limited random colour texture: wavelengths log-uniform in [minWavelength, maxWavelength] pixels. */
export function smoothTexture(seed: number, minWavelength = 6, maxWavelength = 4 * minWavelength, waves = 24): Texture {
  const rng = new Rng(seed);
  const comps: { fx: number; fy: number; phase: number; amp: number[] }[] = [];
  for (let k = 0; k < waves; k++) {
    const wavelength = minWavelength * (maxWavelength / minWavelength) ** rng.uniform();
    const angle = 2 * Math.PI * rng.uniform();
    comps.push({
      fx: Math.cos(angle) / wavelength,
      fy: Math.sin(angle) / wavelength,
      phase: 2 * Math.PI * rng.uniform(),
      amp: [0, 1, 2].map(() => (0.35 / Math.sqrt(waves)) * (0.5 + rng.uniform())),
    });
  }
  return {
    at(x, y, c) {
      let s = 0.5;
      for (const k of comps) s += k.amp[c] * Math.sin(2 * Math.PI * (k.fx * x + k.fy * y) + k.phase);
      return s < 0 ? 0 : Math.min(s, 1);
    },
  };
}

/** Renders frame(x, y) = texture(x − dx, y − dy): content moves by (+dx, +dy), so the true flow is (dx, dy). */
export function renderShifted(tex: Texture, width: number, height: number, dx: number, dy: number): RgbImage {
  const n = width * height;
  const data = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) data[c * n + y * width + x] = tex.at(x - dx, y - dy, c);
    }
  }
  return { width, height, data };
}

export interface MovingSquare {
  /** Top-left corner in the frame, and side, in pixels. */
  x: number;
  y: number;
  size: number;
  /** The square's own texture (it moves with the square). */
  texture: Texture;
}

/** A static background texture with a textured square pasted at (sq.x, sq.y). */
export function renderWithSquare(background: Texture, width: number, height: number, sq: MovingSquare): RgbImage {
  const img = renderShifted(background, width, height, 0, 0);
  const n = width * height;
  for (let y = Math.max(0, Math.ceil(sq.y)); y < Math.min(height, sq.y + sq.size); y++) {
    for (let x = Math.max(0, Math.ceil(sq.x)); x < Math.min(width, sq.x + sq.size); x++) {
      for (let c = 0; c < 3; c++) img.data[c * n + y * width + x] = sq.texture.at(x - sq.x, y - sq.y, c);
    }
  }
  return img;
}

/** A fixed colour transform (the same for every frame): a perfectly consistent "stylization". */
export function consistentStyle(img: RgbImage): RgbImage {
  const n = img.width * img.height;
  const d = img.data;
  const out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    const r = d[i];
    const g = d[n + i];
    const b = d[2 * n + i];
    out[i] = clamp01(0.2 + 0.5 * g + 0.3 * b * b);
    out[n + i] = clamp01(0.9 - 0.6 * r);
    out[2 * n + i] = clamp01(Math.sqrt(b) * 0.8 + 0.1 * r);
  }
  return { width: img.width, height: img.height, data: out };
}

/** Multiplies a frame by a brightness factor (per-frame random brightness = flicker). */
export function scaleBrightness(img: RgbImage, factor: number): RgbImage {
  const out = new Float32Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = clamp01(img.data[i] * factor);
  return { width: img.width, height: img.height, data: out };
}

function clamp01(v: number): number {
  return v < 0 ? 0 : Math.min(v, 1);
}
