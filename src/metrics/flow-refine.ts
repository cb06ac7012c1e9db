/**
 * Variational refinement of a dense flow field, the last step of DIS at every pyramid level (the same energy
 * as OpenCV's VariationalRefinement, after DeepFlow / Brox et al. 2004):
 *
 *   E(du, dv) = Σ δ·Ψ(brightness constancy²) + γ·Ψ(gradient constancy²) + α·Ψ(|∇(u+du)|² + |∇(v+dv)|²)
 *
 * with Ψ(s²) = √(s² + ε²) (robust, L1-like), linearised around the current flow. Solved by a few
 * fixed-point iterations (re-weighting Ψ') each with successive over-relaxation sweeps. Why it matters here:
 * patch flow is piecewise constant, and the motion-boundary test of the occlusion mask (|∇F|² > 0.01|F|² +
 * 0.002) would flag every patch seam; the refinement makes the field smooth where the image supports it.
 *
 * Intensities are scaled to 0..255 inside, so the weights mean what they mean in OpenCV
 * (α = 20, δ = 5, γ = 10, ε = 0.001, ω = 1.6).
 */
import { gaussianBlur, gradients, warpPlaneBicubic, type Flow, type Plane } from './image.js';

export interface RefineOptions {
  /** Fixed-point (re-weighting) iterations. */
  iterations: number;
  /** Pre-smoothing of both frames (Gaussian σ, pixels) before the data terms; 0 = none. */
  presmooth: number;
  /** SOR sweeps per fixed-point iteration. */
  sorIterations: number;
  alpha: number;
  delta: number;
  gamma: number;
  omega: number;
}

export const REFINE_DEFAULTS: RefineOptions = {
  presmooth: 0.8,
  iterations: 5,
  sorIterations: 5,
  alpha: 20,
  delta: 5,
  gamma: 10,
  omega: 1.6,
};

const EPS2 = 0.001 * 0.001;

interface Derivatives {
  Ix: Float32Array;
  Iy: Float32Array;
  Iz: Float32Array;
  Ixx: Float32Array;
  Ixy: Float32Array;
  Iyy: Float32Array;
  Ixz: Float32Array;
  Iyz: Float32Array;
}

/** The unknowns (du, dv), the per-pixel 2×2 data systems, and the sweep's fixed parts. */
interface System {
  du: Float32Array;
  dv: Float32Array;
  A11: Float32Array;
  A12: Float32Array;
  A22: Float32Array;
  b1: Float32Array;
  b2: Float32Array;
  psiS: Float32Array;
  wL: Float32Array;
  wR: Float32Array;
  wU: Float32Array;
  wD: Float32Array;
  inv1: Float32Array;
  inv2: Float32Array;
  cu: Float32Array;
  cv: Float32Array;
}

/**
 * Refines `flow` (from frame0 to frame1) in place. Each step is its own function: V8 optimises a small hot
 * loop at once, where one long function would run its loops in slower tiers (and allocate) for a while.
 */
export function refineFlow(frame0: Plane, frame1: Plane, flow: Flow, options: Partial<RefineOptions> = {}): void {
  const o: RefineOptions = { ...REFINE_DEFAULTS, ...options };
  // Detail near the Nyquist limit is where interpolation is least exact; damping it keeps the data term's
  // minimum on the true motion instead of on the resampling error.
  const i0 = o.presmooth > 0 ? gaussianBlur(frame0, o.presmooth) : frame0;
  const i1 = o.presmooth > 0 ? gaussianBlur(frame1, o.presmooth) : frame1;
  const n = flow.width * flow.height;
  const d = derivatives(i0, i1, flow);
  const f = () => new Float32Array(n);
  const sys: System = {
    du: f(),
    dv: f(),
    A11: f(),
    A12: f(),
    A22: f(),
    b1: f(),
    b2: f(),
    psiS: f(),
    wL: f(),
    wR: f(),
    wU: f(),
    wD: f(),
    inv1: f(),
    inv2: f(),
    cu: f(),
    cv: f(),
  };
  for (let it = 0; it < o.iterations; it++) {
    robustSystem(d, sys, flow, o);
    sweepSetup(sys, flow);
    for (let s = 0; s < o.sorIterations; s++) sorSweep(sys, flow.width, flow.height, o.omega);
  }
  const { u, v } = flow;
  for (let i = 0; i < n; i++) {
    u[i] += sys.du[i];
    v[i] += sys.dv[i];
  }
}

/** 1. Derivatives of the pair, averaged over I0 and the (bicubic) warped I1, in 0..255 units. */
function derivatives(i0: Plane, i1: Plane, flow: Flow): Derivatives {
  const { width: w, height: h } = flow;
  const n = w * h;
  const S = 255;
  const i1w = warpPlaneBicubic(i1, flow);
  matchBrightness(i0, i1w, flow);
  const g0 = gradients(i0);
  const g1 = gradients(i1w);
  const g0x = gradients({ width: w, height: h, data: g0.gx });
  const g0y = gradients({ width: w, height: h, data: g0.gy });
  const g1x = gradients({ width: w, height: h, data: g1.gx });
  const g1y = gradients({ width: w, height: h, data: g1.gy });
  const f = () => new Float32Array(n);
  const d: Derivatives = { Ix: f(), Iy: f(), Iz: f(), Ixx: f(), Ixy: f(), Iyy: f(), Ixz: f(), Iyz: f() };
  for (let y = 0, i = 0; y < h; y++) {
    for (let x = 0; x < w; x++, i++) {
      // Pixels whose match leaves the frame get no data term: only smoothness fills them in.
      const xs = x + flow.u[i];
      const ys = y + flow.v[i];
      if (xs < 0 || xs > w - 1 || ys < 0 || ys > h - 1) continue;
      d.Ix[i] = 0.5 * S * (g0.gx[i] + g1.gx[i]);
      d.Iy[i] = 0.5 * S * (g0.gy[i] + g1.gy[i]);
      d.Iz[i] = S * (i1w.data[i] - i0.data[i]);
      d.Ixx[i] = 0.5 * S * (g0x.gx[i] + g1x.gx[i]);
      d.Ixy[i] = 0.25 * S * (g0x.gy[i] + g1x.gy[i] + g0y.gx[i] + g1y.gx[i]);
      d.Iyy[i] = 0.5 * S * (g0y.gy[i] + g1y.gy[i]);
      d.Ixz[i] = S * (g1.gx[i] - g0.gx[i]);
      d.Iyz[i] = S * (g1.gy[i] - g0.gy[i]);
    }
  }
  return d;
}

/**
 * Brightness and gradient constancy fail under an exposure change between the frames (the patch search is
 * immune: it removes patch means). Fitting warped-I1 ≈ a·I0 + b over the pixels that stay in the frame and
 * undoing it keeps the data terms' minimum on the motion: a 10% exposure step otherwise costs ~0.15 px.
 */
function matchBrightness(i0: Plane, i1w: Plane, flow: Flow): void {
  const { width: w, height: h } = flow;
  let n = 0;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  for (let y = 0, i = 0; y < h; y++) {
    for (let x = 0; x < w; x++, i++) {
      const xs = x + flow.u[i];
      const ys = y + flow.v[i];
      if (xs < 0 || xs > w - 1 || ys < 0 || ys > h - 1) continue;
      const p = i0.data[i];
      const q = i1w.data[i];
      n++;
      sx += p;
      sy += q;
      sxx += p * p;
      sxy += p * q;
    }
  }
  const varX = n > 0 ? sxx / n - (sx / n) * (sx / n) : 0;
  if (n < 16 || varX < 1e-6) return;
  const a = (sxy / n - (sx / n) * (sy / n)) / varX;
  if (!(a > 0.25 && a < 4) || Math.abs(a - 1) < 1e-3) return;
  const b = sy / n - a * (sx / n);
  for (let i = 0; i < w * h; i++) i1w.data[i] = (i1w.data[i] - b) / a;
}

/** 2. Robust weights Ψ' at the current estimate, and the per-pixel 2×2 data system. */
function robustSystem(d: Derivatives, sys: System, flow: Flow, o: RefineOptions): void {
  const { width: w, height: h, u: U, v: V } = flow;
  const { Ix, Iy, Iz, Ixx, Ixy, Iyy, Ixz, Iyz } = d;
  const { du, dv, A11, A12, A22, b1, b2, psiS } = sys;
  for (let y = 0, i = 0; y < h; y++) {
    for (let x = 0; x < w; x++, i++) {
      const eI = Iz[i] + Ix[i] * du[i] + Iy[i] * dv[i];
      const psiI = o.delta / Math.sqrt(eI * eI + EPS2);
      const eGx = Ixz[i] + Ixx[i] * du[i] + Ixy[i] * dv[i];
      const eGy = Iyz[i] + Ixy[i] * du[i] + Iyy[i] * dv[i];
      const psiG = o.gamma / Math.sqrt(eGx * eGx + eGy * eGy + EPS2);
      A11[i] = psiI * Ix[i] * Ix[i] + psiG * (Ixx[i] * Ixx[i] + Ixy[i] * Ixy[i]);
      A12[i] = psiI * Ix[i] * Iy[i] + psiG * (Ixx[i] * Ixy[i] + Ixy[i] * Iyy[i]);
      A22[i] = psiI * Iy[i] * Iy[i] + psiG * (Ixy[i] * Ixy[i] + Iyy[i] * Iyy[i]);
      b1[i] = -psiI * Ix[i] * Iz[i] - psiG * (Ixx[i] * Ixz[i] + Ixy[i] * Iyz[i]);
      b2[i] = -psiI * Iy[i] * Iz[i] - psiG * (Ixy[i] * Ixz[i] + Iyy[i] * Iyz[i]);
      const ux = x < w - 1 ? U[i + 1] + du[i + 1] - U[i] - du[i] : 0;
      const vx = x < w - 1 ? V[i + 1] + dv[i + 1] - V[i] - dv[i] : 0;
      const uy = y < h - 1 ? U[i + w] + du[i + w] - U[i] - du[i] : 0;
      const vy = y < h - 1 ? V[i + w] + dv[i + w] - V[i] - dv[i] : 0;
      psiS[i] = o.alpha / Math.sqrt(ux * ux + vx * vx + uy * uy + vy * vy + EPS2);
    }
  }
}

/**
 * 3. Neighbour weights (0 across the border) and what stays fixed during the sweeps: the inverse diagonals
 *    and the right-hand sides including the neighbours' differences of the current flow.
 */
function sweepSetup(sys: System, flow: Flow): void {
  const { width: w, height: h, u: U, v: V } = flow;
  const { A11, A22, b1, b2, psiS, wL, wR, wU, wD, inv1, inv2, cu, cv } = sys;
  for (let y = 0, i = 0; y < h; y++) {
    for (let x = 0; x < w; x++, i++) {
      const kL = x > 0 ? 0.5 * (psiS[i] + psiS[i - 1]) : 0;
      const kR = x < w - 1 ? 0.5 * (psiS[i] + psiS[i + 1]) : 0;
      const kU = y > 0 ? 0.5 * (psiS[i] + psiS[i - w]) : 0;
      const kD = y < h - 1 ? 0.5 * (psiS[i] + psiS[i + w]) : 0;
      wL[i] = kL;
      wR[i] = kR;
      wU[i] = kU;
      wD[i] = kD;
      const sumW = kL + kR + kU + kD;
      inv1[i] = A11[i] + sumW > 0 ? 1 / (A11[i] + sumW) : 0;
      inv2[i] = A22[i] + sumW > 0 ? 1 / (A22[i] + sumW) : 0;
      const ui = U[i];
      const vi = V[i];
      cu[i] =
        b1[i] +
        (kL ? kL * (U[i - 1] - ui) : 0) +
        (kR ? kR * (U[i + 1] - ui) : 0) +
        (kU ? kU * (U[i - w] - ui) : 0) +
        (kD ? kD * (U[i + w] - ui) : 0);
      cv[i] =
        b2[i] +
        (kL ? kL * (V[i - 1] - vi) : 0) +
        (kR ? kR * (V[i + 1] - vi) : 0) +
        (kU ? kU * (V[i - w] - vi) : 0) +
        (kD ? kD * (V[i + w] - vi) : 0);
    }
  }
}

/**
 * 4. One SOR sweep (Gauss–Seidel over du then dv at each pixel). Rows 1..h−2 read all four neighbours
 *    without checks (a missing left/right neighbour has weight 0); the first and last rows check.
 */
function sorSweep(sys: System, w: number, h: number, omega: number): void {
  const { du, dv, A12, wL, wR, wU, wD, inv1, inv2, cu, cv } = sys;
  sweepEdgeRow(sys, w, h, 0, omega);
  for (let i = w, end = (h - 1) * w; i < end; i++) {
    const nu = cu[i] + wL[i] * du[i - 1] + wR[i] * du[i + 1] + wU[i] * du[i - w] + wD[i] * du[i + w] - A12[i] * dv[i];
    du[i] += omega * (nu * inv1[i] - du[i]);
    const nv = cv[i] + wL[i] * dv[i - 1] + wR[i] * dv[i + 1] + wU[i] * dv[i - w] + wD[i] * dv[i + w] - A12[i] * du[i];
    dv[i] += omega * (nv * inv2[i] - dv[i]);
  }
  if (h > 1) sweepEdgeRow(sys, w, h, h - 1, omega);
}

function sweepEdgeRow(sys: System, w: number, h: number, y: number, omega: number): void {
  const { du, dv, A12, wL, wR, wU, wD, inv1, inv2, cu, cv } = sys;
  for (let x = 0, i = y * w; x < w; x++, i++) {
    const l = x > 0 ? i - 1 : i;
    const r = x < w - 1 ? i + 1 : i;
    const up = y > 0 ? i - w : i;
    const dn = y < h - 1 ? i + w : i;
    const nu = cu[i] + wL[i] * du[l] + wR[i] * du[r] + wU[i] * du[up] + wD[i] * du[dn] - A12[i] * dv[i];
    du[i] += omega * (nu * inv1[i] - du[i]);
    const nv = cv[i] + wL[i] * dv[l] + wR[i] * dv[r] + wU[i] * dv[up] + wD[i] * dv[dn] - A12[i] * du[i];
    dv[i] += omega * (nv * inv2[i] - dv[i]);
  }
}
