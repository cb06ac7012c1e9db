/**
 * Seeded random weights for the model builder, one tensor at a time.
 *
 * Every parameter draws from its own generator, seeded by (seed, parameter name): the value of a tensor does
 * not depend on the order tensors are built or written in, so a big model can be built without weights and
 * its tensors filled one by one while they are streamed to disk (see src/onnx/external-data.ts).
 *
 * Scales keep activations O(1) through deep random nets: weights ~ N(0,1)/√fan_in, norm γ ≈ 1 + small noise,
 * biases and β small. Outputs of random models are then neither exploding nor flat.
 */
import { VidpriorError } from '../../errors.js';
import type { ElemType, TypedData } from '../../onnx/ir.js';
import { Rng } from '../../random.js';
import { toFloat16 } from '../../tensor.js';

/** How a parameter is initialised. */
export type InitKind =
  /** N(0,1)·gain/√fanIn (conv and linear weights). */
  | 'fan-in'
  /** 1 + N(0,1)·0.02 (norm scales). */
  | 'norm-scale'
  /** N(0,1)·0.02 (biases, norm shifts). */
  | 'small'
  /** N(0,1)·gain (embedding tables). */
  | 'embedding';

export interface ParamSpec {
  /** The initializer's name (its state-dict key). */
  name: string;
  dims: number[];
  init: InitKind;
  /** Inputs summed per output (fan-in kinds). */
  fanIn?: number;
  /** Extra factor on the standard deviation (default 1). */
  gain?: number;
  /**
   * Stored transposed from PyTorch's layout: nn.Linear weights as MatMul's [in, out] (PyTorch keeps [out, in]).
   * Binding real weights (src/models/checkpoint/) transposes them.
   */
  transposed?: boolean;
}

/** `random`: seeded random values; `none`: shapes only (parameter counts, lazy filling while writing). */
export type WeightMode = 'random' | 'none';

const SMALL = 0.02;

/** 53 bits of seed from (seed, name) through two FNV-1a hashes, so nearby names give unrelated streams. */
export function paramSeed(seed: number, name: string): number {
  let h1 = 0x811c9dc5 ^ (seed >>> 0);
  let h2 = 0x01000193 ^ Math.imul(seed >>> 0, 0x9e3779b9);
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
  }
  return (h1 >>> 0) + ((h2 >>> 11) & 0x1fffff) * 4294967296;
}

/**
 * `n` normal values · scale + offset. Box–Muller over an inlined xoshiro128** seeded from `rng`: a tight
 * loop without method calls, about 4× faster than `Rng.normal()` per value, which matters at SD 1.5's
 * billion weights.
 */
function normals(rng: Rng, n: number, scale: number, offset = 0): Float32Array {
  const out = new Float32Array(n);
  let s0 = rng.nextUint32() | 0,
    s1 = rng.nextUint32() | 0,
    s2 = rng.nextUint32() | 0,
    s3 = rng.nextUint32() | 0;
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
  const TWO_PI = 2 * Math.PI;
  for (let i = 0; i < n; i += 2) {
    // Two 32-bit draws (xoshiro128**, as in src/random.ts) → u1 ∈ (0, 1], u2 ∈ [0, 1).
    let r = Math.imul(s1, 5);
    r = Math.imul((r << 7) | (r >>> 25), 9) >>> 0;
    let t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    const u1 = (r + 1) / 4294967296;
    r = Math.imul(s1, 5);
    r = Math.imul((r << 7) | (r >>> 25), 9) >>> 0;
    t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    const u2 = r / 4294967296;
    const radius = Math.sqrt(-2 * Math.log(u1)) * scale;
    out[i] = radius * Math.cos(TWO_PI * u2) + offset;
    if (i + 1 < n) out[i + 1] = radius * Math.sin(TWO_PI * u2) + offset;
  }
  return out;
}

/** The float32 values of one parameter. */
export function paramValues(spec: ParamSpec, seed: number): Float32Array {
  let n = 1;
  for (const d of spec.dims) n *= d;
  const rng = new Rng(paramSeed(seed, spec.name));
  const gain = spec.gain ?? 1;
  switch (spec.init) {
    case 'fan-in':
      return normals(rng, n, gain / Math.sqrt(spec.fanIn ?? 1));
    case 'embedding':
      return normals(rng, n, gain);
    case 'small':
      return normals(rng, n, SMALL * gain);
    case 'norm-scale':
      return normals(rng, n, SMALL * gain, 1);
  }
}

/** The values of one parameter in the model's float type. */
export function paramData(spec: ParamSpec, seed: number, type: ElemType): TypedData {
  const v = paramValues(spec, seed);
  if (type === 'float32') return v;
  if (type === 'float16') return toFloat16(v);
  throw new VidpriorError('E_INTERNAL', `parameters of type ${type} are not supported`);
}

export function paramCount(specs: Iterable<ParamSpec>): number {
  let total = 0;
  for (const s of specs) {
    let n = 1;
    for (const d of s.dims) n *= d;
    total += n;
  }
  return total;
}
