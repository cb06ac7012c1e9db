/**
 * Dense Inverse Search optical flow (Kroeger, Timofte, Dai, Van Gool, ECCV 2016), the method behind
 * OpenCV's DISOpticalFlow, written for Float32Array grayscale planes.
 *
 * Coarse to fine over a Gaussian pyramid; at each level:
 *   1. Patch grid: square patches of `patchSize` every `patchStride` pixels (the last row/column of patches
 *      is pinned to the image edge so every pixel is covered).
 *   2. Each patch starts from the best of three candidates (the upsampled coarser flow at its centre, and
 *      the results of its left and upper neighbours: DIS's spatial propagation), then runs inverse
 *      compositional Gauss–Newton on the translation. The template gradients and Hessian come from the
 *      first image only, so they are computed once per patch. Patch means are removed (DIS's mean
 *      normalisation), which makes the search robust to a brightness change between the frames.
 *   3. Densification: every pixel averages the displacements of the patches that cover it, each weighted by
 *      1 / max(|photometric residual|, 1/255) at that pixel.
 *   4. Variational refinement (flow-refine.ts; on by default) smooths the field while keeping it on the data.
 */
import { buildPyramid, gradients, makeFlow, sampleBilinear, upsampleFlow, type Flow, type Plane } from './image.js';
import { refineFlow } from './flow-refine.js';
import { check } from '../errors.js';

export interface DisOptions {
  /** Side of the square patches, in pixels (OpenCV: 8). */
  patchSize: number;
  /** Distance between patch origins (OpenCV's "medium" preset: 3; 4 is faster with the same accuracy here). */
  patchStride: number;
  /** Gauss–Newton iterations per patch (OpenCV "medium": 25; it stops early once the update is tiny). */
  iterations: number;
  /** Finest pyramid level computed (0 = full resolution; 1 = half, then upsampled). */
  finestLevel: number;
  /** Variational refinement iterations per level (0 turns it off). */
  refineIterations: number;
  /** Refinement iterations at the finest level computed (the most expensive one; 0 turns it off there). */
  refineIterationsFinest: number;
}

export const DIS_DEFAULTS: DisOptions = {
  patchSize: 8,
  patchStride: 4,
  iterations: 16,
  finestLevel: 0,
  refineIterations: 5,
  refineIterationsFinest: 2,
};

/** A short, stable name of the method and its settings, reported with every metric. */
export function disMethodName(o: DisOptions = DIS_DEFAULTS): string {
  return `DIS (TypeScript; patch ${o.patchSize}, stride ${o.patchStride}, ${o.iterations} it, finest level ${o.finestLevel}, variational refinement ${o.refineIterations} it, ${o.refineIterationsFinest} at the finest level)`;
}

/** Number of pyramid levels so that the coarsest keeps at least two patches across its smaller side. */
export function pyramidLevels(width: number, height: number, patchSize: number): number {
  let levels = 1;
  let m = Math.min(width, height);
  while (m / 2 >= 2 * patchSize && levels < 12) {
    m /= 2;
    levels++;
  }
  return levels;
}

/** Forward flow from `i0` to `i1`: pixel x of i0 is seen at x + flow(x) in i1. */
export function disFlow(i0: Plane, i1: Plane, options: Partial<DisOptions> = {}): Flow {
  const o: DisOptions = { ...DIS_DEFAULTS, ...options };
  check(
    i0.width === i1.width && i0.height === i1.height,
    'frame size',
    `${i1.width}x${i1.height}`,
    `${i0.width}x${i0.height} like the first frame`,
  );
  check(Number.isInteger(o.patchSize) && o.patchSize >= 4, 'patchSize', o.patchSize, 'an integer ≥ 4');
  check(
    Number.isInteger(o.patchStride) && o.patchStride >= 1 && o.patchStride <= o.patchSize,
    'patchStride',
    o.patchStride,
    'an integer in [1, patchSize]',
  );
  const levels = pyramidLevels(i0.width, i0.height, o.patchSize);
  const finest = Math.min(o.finestLevel, levels - 1);
  const p0 = buildPyramid(i0, levels);
  const p1 = buildPyramid(i1, levels);
  let flow = makeFlow(p0[levels - 1].width, p0[levels - 1].height);
  for (let l = levels - 1; l >= finest; l--) {
    if (flow.width !== p0[l].width || flow.height !== p0[l].height)
      flow = upsampleFlow(flow, p0[l].width, p0[l].height);
    if (Math.min(p0[l].width, p0[l].height) >= o.patchSize) flow = disLevel(p0[l], p1[l], flow, o);
    const refineIterations = l === finest ? o.refineIterationsFinest : o.refineIterations;
    if (refineIterations > 0) refineFlow(p0[l], p1[l], flow, { iterations: refineIterations });
  }
  for (let l = finest - 1; l >= 0; l--) flow = upsampleFlow(flow, p0[l].width, p0[l].height);
  return flow;
}

/** Patch origins along one axis: every `stride`, with the last patch flush with the far edge. */
function gridPositions(size: number, patch: number, stride: number): number[] {
  const pos: number[] = [];
  for (let p = 0; p + patch <= size; p += stride) pos.push(p);
  if (pos[pos.length - 1] !== size - patch) pos.push(size - patch);
  return pos;
}

/** One pyramid level of DIS: patch search seeded by `init`, then densification. */
function disLevel(i0: Plane, i1: Plane, init: Flow, o: DisOptions): Flow {
  const { width: w, height: h } = i0;
  const d0 = i0.data;
  const d1 = i1.data;
  const { gx, gy } = gradients(i0);
  const ps = o.patchSize;
  const n = ps * ps;
  const xs = gridPositions(w, ps, o.patchStride);
  const ys = gridPositions(h, ps, o.patchStride);
  const nx = xs.length;
  const pu = new Float32Array(nx * ys.length);
  const pv = new Float32Array(nx * ys.length);
  const pOffset = new Float32Array(nx * ys.length); // mean brightness change of each patch (I1 − I0)
  const tmpl = new Float32Array(n);
  const gxc = new Float32Array(n);
  const gyc = new Float32Array(n);
  const half = (ps - 1) / 2;

  /**
   * Mean-normalised SSD per sample of the patch at (px, py) displaced by (u, v), and the mean offset.
   * Samples whose match falls outside the second frame are left out (clamping would invent a match along
   * the border and pull border patches off the frame); a displacement with fewer than half of the patch
   * inside costs +∞.
   */
  const warped = new Float32Array(n);
  const valid = new Uint8Array(n);
  let costOffset = 0; // second result of cost(): the patch's mean brightness offset (no tuple: no allocation)
  const cost = (px: number, py: number, u: number, v: number): number => {
    const m = warpPatch(d1, w, h, px, py, u, v, ps, warped, valid);
    costOffset = 0;
    if (2 * m < n) return Infinity;
    let s = 0;
    let s2 = 0;
    for (let k = 0; k < n; k++) {
      if (!valid[k]) continue;
      const r = warped[k] - tmpl[k];
      s += r;
      s2 += r * r;
    }
    costOffset = s / m;
    return (s2 - (s * s) / m) / m;
  };

  for (let by = 0; by < ys.length; by++) {
    const py = ys[by];
    for (let bx = 0; bx < nx; bx++) {
      const px = xs[bx];
      const b = by * nx + bx;
      // 2a. Template, its zero-mean gradients and the 2×2 Hessian (first image only: inverse compositional).
      let mgx = 0;
      let mgy = 0;
      for (let j = 0, k = 0; j < ps; j++) {
        const row = (py + j) * w + px;
        for (let i = 0; i < ps; i++, k++) {
          tmpl[k] = d0[row + i];
          gxc[k] = gx[row + i];
          gyc[k] = gy[row + i];
          mgx += gxc[k];
          mgy += gyc[k];
        }
      }
      mgx /= n;
      mgy /= n;
      let hxx = 0;
      let hxy = 0;
      let hyy = 0;
      for (let k = 0; k < n; k++) {
        gxc[k] -= mgx;
        gyc[k] -= mgy;
        hxx += gxc[k] * gxc[k];
        hxy += gxc[k] * gyc[k];
        hyy += gyc[k] * gyc[k];
      }
      const det = hxx * hyy - hxy * hxy;

      // 2b. Starting point: best of the upsampled flow at the centre and the already-solved neighbours.
      const c = Math.round(py + half) * w + Math.round(px + half);
      let u = init.u[c];
      let v = init.v[c];
      let best = cost(px, py, u, v);
      let offset = costOffset;
      for (let c2 = 0; c2 < 2; c2++) {
        const nb = c2 === 0 ? (bx > 0 ? b - 1 : -1) : by > 0 ? b - nx : -1;
        if (nb < 0) continue;
        const cc = cost(px, py, pu[nb], pv[nb]);
        if (cc < best) {
          best = cc;
          offset = costOffset;
          u = pu[nb];
          v = pv[nb];
        }
      }
      const startU = u;
      const startV = v;
      const startCost = best;

      // 2c. Inverse compositional Gauss–Newton on the translation (skipped on flat patches).
      // The smaller eigenvalue of H says how well the patch pins down both directions; below about a
      // quarter grey level of gradient per pixel the patch is flat and keeps its starting point.
      const lambdaMin = 0.5 * (hxx + hyy) - Math.sqrt(0.25 * (hxx - hyy) * (hxx - hyy) + hxy * hxy);
      if (lambdaMin > n * 1e-6) {
        const ixx = hyy / det;
        const ixy = -hxy / det;
        const iyy = hxx / det;
        for (let it = 0; it < o.iterations; it++) {
          let bxs = 0;
          let bys = 0;
          warpPatch(d1, w, h, px, py, u, v, ps, warped, valid);
          for (let k = 0; k < n; k++) {
            if (!valid[k]) continue; // outside: no residual (a damped step; the cost check guards)
            const r = warped[k] - tmpl[k];
            bxs += gxc[k] * r; // gradients are zero-mean, so the patch's mean residual drops out
            bys += gyc[k] * r;
          }
          const du = ixx * bxs + ixy * bys;
          const dv = ixy * bxs + iyy * bys;
          u -= du;
          v -= dv;
          if (du * du + dv * dv < 1e-6) break;
        }
        const endCost = cost(px, py, u, v);
        const endOffset = costOffset;
        // A patch that drifted far or got worse keeps its starting point (DIS's outlier guard).
        const drift = (u - startU) * (u - startU) + (v - startV) * (v - startV);
        if (!(endCost <= startCost) || drift > ps * ps) {
          u = startU;
          v = startV;
        } else {
          offset = endOffset;
        }
      }
      pu[b] = u;
      pv[b] = v;
      pOffset[b] = offset;
    }
  }
  return densify(i0, i1, init, xs, ys, pu, pv, pOffset, ps);
}

/**
 * The second frame sampled under a patch displaced by (u, v), into `out`; `valid[k]` = 0 where the sample
 * falls outside the frame. Returns the number of valid samples. The displacement is the same for the whole
 * patch, so the bilinear weights are too: patches fully inside take a fast path without clamping.
 */
function warpPatch(
  d1: Float32Array,
  w: number,
  h: number,
  px: number,
  py: number,
  u: number,
  v: number,
  ps: number,
  out: Float32Array,
  valid: Uint8Array,
): number {
  const xs = px + u;
  const ys = py + v;
  const fx = Math.floor(xs);
  const fy = Math.floor(ys);
  const a = xs - fx;
  const b = ys - fy;
  if (fx >= 0 && fy >= 0 && fx + ps <= w - 1 && fy + ps <= h - 1) {
    const w00 = (1 - a) * (1 - b);
    const w10 = a * (1 - b);
    const w01 = (1 - a) * b;
    const w11 = a * b;
    for (let j = 0, k = 0; j < ps; j++) {
      const r0 = (fy + j) * w + fx;
      const r1 = r0 + w;
      for (let i = 0; i < ps; i++, k++) {
        out[k] = w00 * d1[r0 + i] + w10 * d1[r0 + i + 1] + w01 * d1[r1 + i] + w11 * d1[r1 + i + 1];
        valid[k] = 1;
      }
    }
    return ps * ps;
  }
  let m = 0;
  for (let j = 0, k = 0; j < ps; j++) {
    const yf = ys + j;
    for (let i = 0; i < ps; i++, k++) {
      const xf = xs + i;
      if (xf < 0 || xf > w - 1 || yf < 0 || yf > h - 1) {
        valid[k] = 0;
        continue;
      }
      out[k] = sampleBilinear(d1, w, h, xf, yf);
      valid[k] = 1;
      m++;
    }
  }
  return m;
}

/** 3. Each pixel: average of the covering patches' displacements, weighted by 1/max(|residual|, 1/255). */
function densify(
  i0: Plane,
  i1: Plane,
  init: Flow,
  xs: number[],
  ys: number[],
  pu: Float32Array,
  pv: Float32Array,
  pOffset: Float32Array,
  ps: number,
): Flow {
  const { width: w, height: h } = i0;
  const d0 = i0.data;
  const d1 = i1.data;
  const su = new Float32Array(w * h);
  const sv = new Float32Array(w * h);
  const sw = new Float32Array(w * h);
  const minResidual = 1 / 255;
  const outsideResidual = 0.25;
  for (let by = 0; by < ys.length; by++) {
    for (let bx = 0; bx < xs.length; bx++) {
      const b = by * xs.length + bx;
      const u = pu[b];
      const v = pv[b];
      const off = pOffset[b];
      const px = xs[bx];
      const py = ys[by];
      for (let j = 0; j < ps; j++) {
        const y = py + j;
        for (let i = 0; i < ps; i++) {
          const x = px + i;
          const idx = y * w + x;
          const xf = x + u;
          const yf = y + v;
          // A match outside the frame has no residual to judge it by: it gets the weight of a poor match.
          const r =
            xf < 0 || xf > w - 1 || yf < 0 || yf > h - 1
              ? outsideResidual
              : Math.abs(sampleBilinear(d1, w, h, xf, yf) - d0[idx] - off);
          const wt = 1 / Math.max(r, minResidual);
          su[idx] += wt * u;
          sv[idx] += wt * v;
          sw[idx] += wt;
        }
      }
    }
  }
  const out = makeFlow(w, h);
  for (let i = 0; i < w * h; i++) {
    if (sw[i] > 0) {
      out.u[i] = su[i] / sw[i];
      out.v[i] = sv[i] / sw[i];
    } else {
      out.u[i] = init.u[i];
      out.v[i] = init.v[i];
    }
  }
  return out;
}
