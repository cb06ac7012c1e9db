/**
 * The tensor type that crosses module boundaries (pipelines ↔ runtime ↔ I/O). Plain data, no onnxruntime
 * types, so it can be posted to and from worker threads. float16 data is a Uint16Array of raw IEEE half
 * bits (Node 20 has no Float16Array); convert with `toFloat16` / `fromFloat16`.
 */
import { VidpriorError } from './errors.js';
export type DType = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8' | 'bool';

export type TensorData<T extends DType = DType> = T extends 'float32'
  ? Float32Array
  : T extends 'float16'
    ? Uint16Array
    : T extends 'int64'
      ? BigInt64Array
      : T extends 'int32'
        ? Int32Array
        : Uint8Array;

export interface Tensor<T extends DType = DType> {
  readonly type: T;
  readonly dims: readonly number[];
  readonly data: TensorData<T>;
}

export function sizeOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function tensor<T extends DType>(type: T, dims: readonly number[], data: TensorData<T>): Tensor<T> {
  if (data.length !== sizeOf(dims)) {
    throw new VidpriorError(
      'E_SHAPE',
      `tensor data has ${data.length} elements but dims [${dims.join(', ')}] need ${sizeOf(dims)}`,
    );
  }
  return { type, dims: [...dims], data };
}

export function float32(dims: readonly number[], data?: Float32Array | number[]): Tensor<'float32'> {
  const d = data instanceof Float32Array ? data : data ? Float32Array.from(data) : new Float32Array(sizeOf(dims));
  return tensor('float32', dims, d);
}

export function int64(dims: readonly number[], data: readonly (number | bigint)[] | BigInt64Array): Tensor<'int64'> {
  const d = data instanceof BigInt64Array ? data : BigInt64Array.from(data, (v) => BigInt(v));
  return tensor('int64', dims, d);
}

export function int32(dims: readonly number[], data: readonly number[] | Int32Array): Tensor<'int32'> {
  return tensor('int32', dims, data instanceof Int32Array ? data : Int32Array.from(data));
}

// ---- float16 ----------------------------------------------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** One float → IEEE half bits, round to nearest even (handles subnormals, inf, NaN). */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow → ±0
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // may carry into the exponent: still correct
  return sign | half;
}

/** IEEE half bits → float. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function toFloat16(data: Float32Array): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = floatToHalf(data[i]!);
  return out;
}

export function fromFloat16(data: Uint16Array): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = halfToFloat(data[i]!);
  return out;
}

/** Returns a float32 tensor whatever the float type of `t` (float16 is widened). */
export function asFloat32(t: Tensor): Tensor<'float32'> {
  if (t.type === 'float32') return t as Tensor<'float32'>;
  if (t.type === 'float16') return tensor('float32', t.dims, fromFloat16(t.data as Uint16Array));
  throw new VidpriorError('E_MODEL_INPUT', `expected a float tensor, got ${t.type}`);
}

/** Casts a float32 tensor to the float type a model input wants. */
export function castFloat(t: Tensor<'float32'>, to: 'float32' | 'float16'): Tensor {
  return to === 'float32' ? t : tensor('float16', t.dims, toFloat16(t.data));
}
