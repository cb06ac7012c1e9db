/**
 * Flickering "processed" versions of a real clip, with a known cause, for the deflicker tests and benchmark.
 * Each is a per-frame image operation whose parameters are drawn per frame (seeded by (seed, frame)), the way
 * an image algorithm run frame by frame flickers:
 *   - `jitter`: a colour grade plus per-frame gain, offset and brightness jitter (exposure/white-balance flicker);
 *   - `style`: a painterly look (saturation, hue, tone curve, ink edges) whose parameters and brush texture are
 *     drawn per frame (what per-frame stylization with a new seed does);
 *   - `flip`: a colourisation whose bright regions take one of two colours per frame (two-mode, multimodal
 *     inconsistency: the case DVP's IRT is for; mode B in about a third of the frames).
 * Frames are [3, H, W] float32 in [-1, 1] (src/io's convention).
 */
import { createHash } from 'node:crypto';
import { Rng } from '../random.js';
import { float32, type Tensor } from '../tensor.js';

export type FlickerKind = 'jitter' | 'style' | 'flip';
export const FLICKER_KINDS: readonly FlickerKind[] = ['jitter', 'style', 'flip'];

function rngFor(seed: number, kind: string, frame: number): Rng {
  const h = createHash('sha256').update(`flicker/${kind}/${seed}/${frame}`).digest();
  return new Rng(h.readUInt32LE(0) + 2 ** 32 * (h.readUInt32LE(4) & 0x1fffff));
}

const clamp01 = (v: number) => Math.min(Math.max(v, 0), 1);
const smoothstep = (a: number, b: number, v: number) => {
  const t = clamp01((v - a) / (b - a));
  return t * t * (3 - 2 * t);
};

/** A smooth random field in about [-1, 1] (bilinear upsampling of coarse noise), `cell` pixels per node. */
function noiseField(rng: Rng, width: number, height: number, cell: number): Float32Array {
  const gw = Math.ceil(width / cell) + 2;
  const gh = Math.ceil(height / cell) + 2;
  const grid = Float32Array.from({ length: gw * gh }, () => 2 * rng.uniform() - 1);
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const gy = y / cell;
    const y0 = Math.floor(gy);
    const fy = gy - y0;
    for (let x = 0; x < width; x++) {
      const gx = x / cell;
      const x0 = Math.floor(gx);
      const fx = gx - x0;
      const a = grid[y0 * gw + x0]! * (1 - fx) + grid[y0 * gw + x0 + 1]! * fx;
      const b = grid[(y0 + 1) * gw + x0]! * (1 - fx) + grid[(y0 + 1) * gw + x0 + 1]! * fx;
      out[y * width + x] = a * (1 - fy) + b * fy;
    }
  }
  return out;
}

/** Rotates RGB around the grey axis by `angle` radians (a hue shift that keeps luminance roughly). */
function hueMatrix(angle: number): number[] {
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  const k = (1 - c) / 3;
  const r = Math.sqrt(1 / 3) * s;
  return [c + k, k - r, k + r, k + r, c + k, k - r, k - r, k + r, c + k];
}

/** The processed version of frame `index` of a clip (frame [3, H, W] in [-1, 1]). */
export function flickerFrame(kind: FlickerKind, frame: Tensor<'float32'>, index: number, seed = 0): Tensor<'float32'> {
  const [, h, w] = frame.dims as [number, number, number];
  const n = w * h;
  const src = frame.data;
  const rgb = (c: number, i: number) => 0.5 * (src[c * n + i]! + 1);
  const out = new Float32Array(3 * n);
  const put = (i: number, r: number, g: number, b: number) => {
    out[i] = 2 * clamp01(r) - 1;
    out[n + i] = 2 * clamp01(g) - 1;
    out[2 * n + i] = 2 * clamp01(b) - 1;
  };
  const rng = rngFor(seed, kind, index);
  const u = () => 2 * rng.uniform() - 1;
  if (kind === 'jitter') {
    const gain = [1 + 0.12 * u(), 1 + 0.12 * u(), 1 + 0.12 * u()];
    const offset = [0.04 * u(), 0.04 * u(), 0.04 * u()];
    const bright = 0.08 * u();
    for (let i = 0; i < n; i++) {
      // The look: warmer, more contrast; then this frame's exposure and white balance.
      const graded = [rgb(0, i) * 1.06, rgb(1, i), rgb(2, i) * 0.92].map((v) => 0.5 + 1.15 * (v - 0.5));
      const [r, g, b] = graded.map((v, c) => v * gain[c]! + offset[c]! + bright) as [number, number, number];
      put(i, r, g, b);
    }
  } else if (kind === 'style') {
    const sat = 1.6 + 0.35 * u();
    const hue = hueMatrix((12 * Math.PI * u()) / 180);
    const gamma = 1 + 0.25 * u();
    const ripplePhase = 2 * Math.PI * rng.uniform();
    const brush = noiseField(rng, w, h, 6);
    for (let i = 0; i < n; i++) {
      const x = i % w;
      const y = (i - x) / w;
      const lum = (j: number) => 0.299 * rgb(0, j) + 0.587 * rgb(1, j) + 0.114 * rgb(2, j);
      const l = lum(i);
      // Ink on the original's edges (the same every frame), a tone ripple and brush texture (new every frame).
      const gx = lum(y * w + Math.min(x + 1, w - 1)) - lum(y * w + Math.max(x - 1, 0));
      const gy = lum(Math.min(y + 1, h - 1) * w + x) - lum(Math.max(y - 1, 0) * w + x);
      const ink = 1 - clamp01(2.5 * Math.hypot(gx, gy));
      const c = [rgb(0, i), rgb(1, i), rgb(2, i)].map((v) => l + sat * (v - l));
      const rotated = [0, 1, 2].map((k) => hue[3 * k]! * c[0]! + hue[3 * k + 1]! * c[1]! + hue[3 * k + 2]! * c[2]!);
      const toned = rotated.map((v) => clamp01(v) ** gamma + 0.05 * Math.sin(8 * Math.PI * v + ripplePhase));
      const [r, g, b] = toned.map((v) => (v + 0.06 * brush[i]!) * ink) as [number, number, number];
      put(i, r, g, b);
    }
  } else {
    const modeB = rng.uniform() < 0.35;
    const tint = modeB ? [0.35, 0.75, 1.25] : [1.3, 0.85, 0.45];
    for (let i = 0; i < n; i++) {
      const l = 0.299 * rgb(0, i) + 0.587 * rgb(1, i) + 0.114 * rgb(2, i);
      const m = smoothstep(0.45, 0.65, l);
      const sepia = [l * 1.07, l * 0.98, l * 0.86];
      const [r, g, b] = sepia.map((v, c) => v * (1 - m) + l * tint[c]! * m) as [number, number, number];
      put(i, r, g, b);
    }
  }
  return float32([3, h, w], out);
}
