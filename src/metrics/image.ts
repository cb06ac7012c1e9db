/**
 * Small image toolkit for the temporal-consistency metrics: grayscale planes, planar RGB images, dense flow
 * fields, Gaussian pyramids, bilinear sampling and flow warping. Everything works on Float32Array in
 * row-major order (index = y * width + x); values are intensities in [0, 1].
 *
 * Warping convention (the one Lai et al. 2018 use through FlowNet2's Resample2d layer):
 *   warped(x, y) = src(x + u(x, y), y + v(x, y)), bilinear, sample coordinates clamped to the border
 *   (so a flow that leaves the frame reads the edge pixel, exactly like Resample2d's clamped indices).
 */

/** One channel of an image. */
export interface Plane {
  width: number;
  height: number;
  data: Float32Array;
}

/** A planar RGB image: R plane, then G, then B (length 3·w·h), values in [0, 1]. */
export interface RgbImage {
  width: number;
  height: number;
  data: Float32Array;
}

/** A dense flow field: pixel (x, y) of the first frame moves to (x + u, y + v) in the second. */
export interface Flow {
  width: number;
  height: number;
  u: Float32Array;
  v: Float32Array;
}

export function makePlane(width: number, height: number): Plane {
  return { width, height, data: new Float32Array(width * height) };
}

export function makeFlow(width: number, height: number): Flow {
  return { width, height, u: new Float32Array(width * height), v: new Float32Array(width * height) };
}

/** One channel of a planar RGB image as a Plane (a view, not a copy). */
export function channel(img: RgbImage, c: 0 | 1 | 2): Plane {
  const n = img.width * img.height;
  return { width: img.width, height: img.height, data: img.data.subarray(c * n, (c + 1) * n) };
}

/** Luma (Rec. 601 weights, as OpenCV's RGB→gray) of a planar RGB image. */
export function rgbToGray(img: RgbImage): Plane {
  const n = img.width * img.height;
  const out = makePlane(img.width, img.height);
  const d = img.data;
  for (let i = 0; i < n; i++) out.data[i] = 0.299 * d[i] + 0.587 * d[n + i] + 0.114 * d[2 * n + i];
  return out;
}

/**
 * Bilinear sample of `data` (w×h) at (xf, yf) with Resample2d's border rule: the two neighbours are
 * clamped into the image while the weights come from the unclamped fraction.
 */
export function sampleBilinear(data: Float32Array, w: number, h: number, xf: number, yf: number): number {
  const fx = Math.floor(xf);
  const fy = Math.floor(yf);
  const a = xf - fx;
  const b = yf - fy;
  const xL = fx < 0 ? 0 : Math.min(fx, w - 1);
  const xR = fx + 1 < 0 ? 0 : Math.min(fx + 1, w - 1);
  const yT = fy < 0 ? 0 : Math.min(fy, h - 1);
  const yB = fy + 1 < 0 ? 0 : Math.min(fy + 1, h - 1);
  const rT = yT * w;
  const rB = yB * w;
  return (
    (1 - a) * (1 - b) * data[rT + xL] +
    a * (1 - b) * data[rT + xR] +
    (1 - a) * b * data[rB + xL] +
    a * b * data[rB + xR]
  );
}

/** warped(x) = src(x + flow(x)), written into `out` (allocated when absent). */
export function warpPlane(src: Plane, flow: Flow, out?: Plane): Plane {
  const { width: w, height: h } = flow;
  const dst = out ?? makePlane(w, h);
  const s = src.data;
  const sw = src.width;
  const sh = src.height;
  for (let y = 0, i = 0; y < h; y++) {
    for (let x = 0; x < w; x++, i++) dst.data[i] = sampleBilinear(s, sw, sh, x + flow.u[i], y + flow.v[i]);
  }
  return dst;
}

/** Keys' cubic convolution weights (a = −0.5, Catmull–Rom) for fraction t, into w[0..3]. */
function cubicWeights(t: number, w: Float64Array): void {
  const t2 = t * t;
  const t3 = t2 * t;
  w[0] = -0.5 * t3 + t2 - 0.5 * t;
  w[1] = 1.5 * t3 - 2.5 * t2 + 1;
  w[2] = -1.5 * t3 + 2 * t2 + 0.5 * t;
  w[3] = 0.5 * t3 - 0.5 * t2;
}

/**
 * warped(x) = src(x + flow(x)) with bicubic interpolation (border clamped). Bilinear interpolation
 * smooths the image by a shift-dependent amount; the variational refinement needs the warped frame to
 * match the first one at the true flow, so it warps with this instead.
 */
export function warpPlaneBicubic(src: Plane, flow: Flow): Plane {
  const { width: w, height: h } = flow;
  const dst = makePlane(w, h);
  const s = src.data;
  const sw = src.width;
  const sh = src.height;
  const wx = new Float64Array(4);
  const wy = new Float64Array(4);
  for (let y = 0, i = 0; y < h; y++) {
    for (let x = 0; x < w; x++, i++) {
      const xf = x + flow.u[i];
      const yf = y + flow.v[i];
      const fx = Math.floor(xf);
      const fy = Math.floor(yf);
      cubicWeights(xf - fx, wx);
      cubicWeights(yf - fy, wy);
      let acc = 0;
      for (let j = 0; j < 4; j++) {
        let yy = fy - 1 + j;
        yy = yy < 0 ? 0 : Math.min(yy, sh - 1);
        const row = yy * sw;
        let r = 0;
        for (let k = 0; k < 4; k++) {
          let xx = fx - 1 + k;
          xx = xx < 0 ? 0 : Math.min(xx, sw - 1);
          r += wx[k] * s[row + xx];
        }
        acc += wy[j] * r;
      }
      dst.data[i] = acc;
    }
  }
  return dst;
}

/** Warps every channel of a planar RGB image by the same flow (Resample2d over a 3-channel tensor). */
export function warpRgb(src: RgbImage, flow: Flow): RgbImage {
  const n = flow.width * flow.height;
  const out: RgbImage = { width: flow.width, height: flow.height, data: new Float32Array(3 * n) };
  for (let c = 0; c < 3; c++) {
    warpPlane(channel(src, c as 0 | 1 | 2), flow, channel(out, c as 0 | 1 | 2));
  }
  return out;
}

/** Warps a flow field by another: out(x) = f(x + by(x)) for both components. */
export function warpFlow(f: Flow, by: Flow): Flow {
  const out = makeFlow(by.width, by.height);
  warpPlane({ width: f.width, height: f.height, data: f.u }, by, { width: out.width, height: out.height, data: out.u });
  warpPlane({ width: f.width, height: f.height, data: f.v }, by, { width: out.width, height: out.height, data: out.v });
  return out;
}

/** Separable convolution with a symmetric kernel (border: replicate). */
export function convolveSeparable(src: Plane, kernel: Float32Array): Plane {
  const { width: w, height: h } = src;
  const r = (kernel.length - 1) >> 1;
  const tmp = new Float32Array(w * h);
  const out = makePlane(w, h);
  const s = src.data;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      let acc = 0;
      for (let k = -r; k <= r; k++) {
        let xx = x + k;
        xx = xx < 0 ? 0 : xx >= w ? w - 1 : xx;
        acc += kernel[k + r] * s[row + xx];
      }
      tmp[row + x] = acc;
    }
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let acc = 0;
      for (let k = -r; k <= r; k++) {
        let yy = y + k;
        yy = yy < 0 ? 0 : yy >= h ? h - 1 : yy;
        acc += kernel[k + r] * tmp[yy * w + x];
      }
      out.data[y * w + x] = acc;
    }
  }
  return out;
}

/** A normalised Gaussian kernel of standard deviation sigma (radius ⌈3σ⌉). */
export function gaussianKernel(sigma: number): Float32Array {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) {
    k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
    sum += k[i + r];
  }
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  return k;
}

export function gaussianBlur(src: Plane, sigma: number): Plane {
  return convolveSeparable(src, gaussianKernel(sigma));
}

const BINOMIAL5 = new Float32Array([1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16]);

/**
 * One pyramid step: binomial (≈ Gaussian σ≈1) blur, then keep the even pixels. Coarse pixel i sits on fine
 * pixel 2i, which is the convention `upsampleFlow` relies on. Size: ⌈w/2⌉ × ⌈h/2⌉.
 */
export function pyrDown(src: Plane): Plane {
  const blurred = convolveSeparable(src, BINOMIAL5);
  const w2 = (src.width + 1) >> 1;
  const h2 = (src.height + 1) >> 1;
  const out = makePlane(w2, h2);
  for (let y = 0; y < h2; y++) {
    const srow = 2 * y * src.width;
    for (let x = 0; x < w2; x++) out.data[y * w2 + x] = blurred.data[srow + 2 * x];
  }
  return out;
}

/** levels[0] is the image itself, levels[k] is k times halved. */
export function buildPyramid(src: Plane, levels: number): Plane[] {
  const pyr = [src];
  for (let l = 1; l < levels; l++) pyr.push(pyrDown(pyr[l - 1]));
  return pyr;
}

/** Flow of a coarse level brought to a finer size: positions and vectors scale by 2 (coarse i ↔ fine 2i). */
export function upsampleFlow(coarse: Flow, width: number, height: number): Flow {
  const out = makeFlow(width, height);
  const { width: cw, height: ch } = coarse;
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++, i++) {
      out.u[i] = 2 * sampleBilinear(coarse.u, cw, ch, x / 2, y / 2);
      out.v[i] = 2 * sampleBilinear(coarse.v, cw, ch, x / 2, y / 2);
    }
  }
  return out;
}

/** Central-difference image gradients (one-sided at the border), in intensity per pixel. */
export function gradients(src: Plane): { gx: Float32Array; gy: Float32Array } {
  const { width: w, height: h, data: d } = src;
  const gx = new Float32Array(w * h);
  const gy = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    const ym = y > 0 ? y - 1 : 0;
    const yp = y < h - 1 ? y + 1 : h - 1;
    const sy = 1 / Math.max(1, yp - ym);
    for (let x = 0; x < w; x++) {
      const xm = x > 0 ? x - 1 : 0;
      const xp = x < w - 1 ? x + 1 : w - 1;
      const i = y * w + x;
      gx[i] = (d[y * w + xp] - d[y * w + xm]) / Math.max(1, xp - xm);
      gy[i] = (d[yp * w + x] - d[ym * w + x]) * sy;
    }
  }
  return { gx, gy };
}

/**
 * Resamples a planar RGB image to (width, height) with a triangle filter whose support widens when
 * shrinking (antialiased bilinear, like PIL's BILINEAR resize). Used to bring stylized frames to the
 * original's size.
 */
export function resizeRgb(img: RgbImage, width: number, height: number): RgbImage {
  if (img.width === width && img.height === height) return img;
  const horiz = resampleWeights(img.width, width);
  const vert = resampleWeights(img.height, height);
  const out: RgbImage = { width, height, data: new Float32Array(3 * width * height) };
  const tmp = new Float32Array(width * img.height);
  for (let c = 0; c < 3; c++) {
    const src = channel(img, c as 0 | 1 | 2).data;
    const dst = channel(out, c as 0 | 1 | 2).data;
    for (let y = 0; y < img.height; y++) {
      for (let x = 0; x < width; x++) {
        const { start, weights } = horiz[x];
        let acc = 0;
        for (let k = 0; k < weights.length; k++) acc += weights[k] * src[y * img.width + start + k];
        tmp[y * width + x] = acc;
      }
    }
    for (let y = 0; y < height; y++) {
      const { start, weights } = vert[y];
      for (let x = 0; x < width; x++) {
        let acc = 0;
        for (let k = 0; k < weights.length; k++) acc += weights[k] * tmp[(start + k) * width + x];
        dst[y * width + x] = acc;
      }
    }
  }
  return out;
}

/** Resamples one plane like resizeRgb (antialiased triangle filter). */
export function resizePlane(p: Plane, width: number, height: number): Plane {
  if (p.width === width && p.height === height) return p;
  const n = p.width * p.height;
  const rgb: RgbImage = { width: p.width, height: p.height, data: new Float32Array(3 * n) };
  rgb.data.set(p.data);
  const out = resizeRgb(rgb, width, height);
  return { width, height, data: out.data.slice(0, width * height) };
}

function resampleWeights(inSize: number, outSize: number): { start: number; weights: Float32Array }[] {
  const scale = inSize / outSize;
  const support = Math.max(1, scale);
  const table: { start: number; weights: Float32Array }[] = [];
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const start = Math.max(0, Math.floor(center - support));
    const end = Math.min(inSize, Math.ceil(center + support));
    const weights = new Float32Array(end - start);
    let sum = 0;
    for (let i = start; i < end; i++) {
      const wgt = Math.max(0, 1 - Math.abs((i + 0.5 - center) / support));
      weights[i - start] = wgt;
      sum += wgt;
    }
    for (let k = 0; k < weights.length; k++) weights[k] /= sum || 1;
    table.push({ start, weights });
  }
  return table;
}
