/**
 * One checkpoint tensor as the value of one builder parameter: PyTorch layout → the builder's (nn.Linear
 * weights transposed to MatMul's [in, out]; norm scales [C] → [C, 1, 1]), stored type → the model's float
 * type (bfloat16 and float16 widen exactly; float32 → float16 rounds to nearest even).
 */
import { VidpriorError } from '../../errors.js';
import { type ElemType, type TypedData, elementCount } from '../../onnx/ir.js';
import { toFloat16 } from '../../tensor.js';
import type { ParamSpec } from '../builder/weights.js';
import type { FloatType } from '../builder/net.js';
import type { WeightRef } from './recipe.js';

let halfTable: Float32Array | null = null;

/** float16 bits → float32, through a 64K-entry table (exact; SD 1.5 has ~10⁹ weights to widen). */
function halfToFloat32(bits: Uint16Array): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    const u = new Uint32Array(halfTable.buffer);
    for (let h = 0; h < 65536; h++) {
      const sign = (h & 0x8000) << 16;
      const exp = (h >>> 10) & 0x1f;
      const mant = h & 0x3ff;
      if (exp === 0) halfTable[h] = (sign ? -1 : 1) * mant * 2 ** -24;
      else if (exp === 0x1f) u[h] = sign | 0x7f800000 | (mant << 13);
      else u[h] = sign | ((exp + 112) << 23) | (mant << 13);
    }
  }
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfTable[bits[i]!]!;
  return out;
}

function bfloat16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i]! << 16;
  return new Float32Array(out.buffer);
}

/** The data as float32 (a view when it already is). */
function asFloat32(data: TypedData, type: ElemType): Float32Array {
  switch (type) {
    case 'float32':
      return data as Float32Array;
    case 'float16':
      return halfToFloat32(data as Uint16Array);
    case 'bfloat16':
      return bfloat16ToFloat32(data as Uint16Array);
    case 'float64':
      return Float32Array.from(data as Float64Array);
    default:
      throw new VidpriorError('E_MODEL_INPUT', `a ${type} tensor where a float weight is expected`, { type });
  }
}

/** [rows, cols] row-major → [cols, rows]. */
function transpose<T extends Float32Array | Uint16Array>(data: T, rows: number, cols: number): T {
  const out = new (data.constructor as { new (n: number): T })(data.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[base + c]!;
  }
  return out;
}

function withoutOnes(dims: readonly number[]): string {
  return dims.filter((d) => d !== 1).join(',');
}

/** Checks that `ref` can be `spec` (element count and layout); returns a message naming both when not. */
export function mismatch(spec: ParamSpec, ref: WeightRef): string | null {
  if (
    elementCount(ref.dims) !== elementCount(spec.dims) ||
    (!spec.transposed && withoutOnes(ref.dims) !== withoutOnes(spec.dims))
  )
    return `${spec.name} is [${ref.dims}] in ${ref.source.label} but the architecture needs ${spec.transposed ? `[${[...spec.dims].reverse()}]` : `[${spec.dims}]`}`;
  if (spec.transposed && (spec.dims.length !== 2 || ref.dims[0] !== spec.dims[1]))
    return `${spec.name} is [${ref.dims}] in ${ref.source.label}, not a [${spec.dims[1]}, ${spec.dims[0]}] linear weight`;
  return null;
}

/** Reads the tensor behind `ref` and lays it out as the builder's parameter `spec` in `dtype`. */
export async function bindParameter(spec: ParamSpec, ref: WeightRef, dtype: FloatType): Promise<TypedData> {
  const why = mismatch(spec, ref);
  if (why) throw new VidpriorError('E_MODEL_INPUT', why, { tensor: ref.key, file: ref.source.label });
  const raw = await ref.source.read(ref.key);
  // Stay in 16 bits when the file already holds float16 and float16 is wanted: no rounding, half the memory.
  let values: Float32Array | Uint16Array =
    dtype === 'float16' && ref.type === 'float16' ? (raw as Uint16Array) : asFloat32(raw, ref.type);
  if (spec.transposed) values = transpose(values, spec.dims[1]!, spec.dims[0]!);
  if (dtype === 'float16' && values instanceof Float32Array) return toFloat16(values);
  return values;
}
