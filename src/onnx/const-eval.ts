/**
 * Evaluates small constant tensors: the int64 shape arithmetic (Shape → Gather → Unsqueeze → Concat →
 * Reshape, Range, ConstantOfShape …) that exports are full of. Shape inference uses it to turn computed
 * Reshape/Expand/Slice arguments into static dims, and fold.ts to replace such chains by initializers.
 *
 * Elements are `SymValue`s: a number, a symbol (a named dim such as 'batch', which Shape of a symbolic input
 * yields) or null (unknown). Symbols pass through data movement (Gather, Concat, Slice, Reshape, Cast between
 * ints, Where) and trivial arithmetic (x·1, x+0, x/1); other arithmetic on them gives null. Output dims are
 * computed by shape inference and passed in, so this module only computes elements.
 */
import { type ElemType, type Node, type TensorValue, attrInt, attrInts, elementCount } from './ir.js';
import { halfToFloat } from '../tensor.js';

export type SymValue = number | string | null;

/** A tensor whose elements are known (possibly symbolically), with static dims. */
export interface Known {
  type: ElemType;
  dims: number[];
  values: SymValue[];
}

const INT_TYPES = new Set<ElemType>(['int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64']);
export const isIntType = (t: ElemType): boolean => INT_TYPES.has(t);
const isNum = (v: SymValue): v is number => typeof v === 'number';

/** The elements of a loaded tensor as numbers (float16 decoded); undefined for strings or unloaded data. */
export function knownFromTensor(t: TensorValue): Known | undefined {
  if (!t.data) return undefined;
  let values: number[];
  if (t.type === 'float16') values = Array.from(t.data as Uint16Array, halfToFloat);
  else if (t.type === 'bfloat16')
    values = Array.from(t.data as Uint16Array, (b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]!);
  else values = Array.from(t.data as ArrayLike<number | bigint>, Number);
  return { type: t.type, dims: [...t.dims], values };
}

/** Converts a number to what an element of `type` holds (ints truncate and wrap like a C cast would not:
 *  shape arithmetic never needs wrapping, so ints only truncate; bools are 0/1). */
function coerce(v: SymValue, type: ElemType): SymValue {
  if (!isNum(v)) return isIntType(type) ? v : null;
  if (type === 'bool') return v !== 0 ? 1 : 0;
  if (isIntType(type)) return Number.isFinite(v) ? Math.trunc(v) : v;
  if (type === 'float32') return Math.fround(v);
  return v;
}

function strides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1]! * dims[i + 1]!;
  return s;
}

/** Element offsets of `input` for each output element under numpy broadcasting to `outDims`. */
function broadcastOffsets(inDims: readonly number[], outDims: readonly number[]): number[] {
  const n = elementCount(outDims),
    r = outDims.length,
    k = inDims.length;
  const inStr = strides(inDims),
    outStr = strides(outDims);
  const offs = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    let rem = i,
      off = 0;
    for (let d = 0; d < r; d++) {
      const c = Math.floor(rem / outStr[d]!);
      rem -= c * outStr[d]!;
      const j = d - (r - k);
      if (j >= 0 && inDims[j]! !== 1) off += c * inStr[j]!;
    }
    offs[i] = off;
  }
  return offs;
}

function elementwise(inputs: Known[], outDims: number[], fn: (...xs: SymValue[]) => SymValue): SymValue[] {
  const offs = inputs.map((k) => broadcastOffsets(k.dims, outDims));
  const n = elementCount(outDims);
  const out = new Array<SymValue>(n);
  for (let i = 0; i < n; i++) out[i] = fn(...inputs.map((k, j) => k.values[offs[j]![i]!]!));
  return out;
}

function numeric(fn: (...xs: number[]) => number): (...xs: SymValue[]) => SymValue {
  return (...xs) => (xs.every(isNum) ? fn(...(xs as number[])) : null);
}

/** Binary arithmetic keeping symbols through identities (x·1, x+0, x−0, x/1). */
function arith(op: string, type: ElemType): (a: SymValue, b: SymValue) => SymValue {
  const int = isIntType(type);
  return (a, b) => {
    if (isNum(a) && isNum(b)) {
      switch (op) {
        case 'Add':
          return a + b;
        case 'Sub':
          return a - b;
        case 'Mul':
          return a * b;
        case 'Div':
          return int ? (b === 0 ? null : Math.trunc(a / b)) : a / b;
        case 'Mod':
          return b === 0 ? null : a - b * Math.floor(a / b);
        case 'Pow':
          return a ** b;
        case 'Min':
          return Math.min(a, b);
        case 'Max':
          return Math.max(a, b);
      }
    }
    if ((op === 'Mul' && b === 1) || ((op === 'Add' || op === 'Sub') && b === 0) || (op === 'Div' && b === 1)) return a;
    if ((op === 'Mul' && a === 1) || (op === 'Add' && a === 0)) return b;
    if ((op === 'Min' || op === 'Max') && a === b) return a;
    return null;
  };
}

function compare(op: string): (a: SymValue, b: SymValue) => SymValue {
  return (a, b) => {
    // Symbols are dims, never negative: against a negative number any of them compares like 0 (this resolves
    // the exporters' `Where(Equal(shape, -1), 1, shape)` pattern).
    if (typeof a === 'string' && isNum(b) && b < 0) a = 0;
    if (typeof b === 'string' && isNum(a) && a < 0) b = 0;
    if (isNum(a) && isNum(b)) {
      switch (op) {
        case 'Equal':
          return a === b ? 1 : 0;
        case 'Less':
          return a < b ? 1 : 0;
        case 'LessOrEqual':
          return a <= b ? 1 : 0;
        case 'Greater':
          return a > b ? 1 : 0;
        case 'GreaterOrEqual':
          return a >= b ? 1 : 0;
      }
    }
    if (a !== null && a === b) return op === 'Equal' || op.endsWith('OrEqual') ? 1 : 0;
    return null;
  };
}

const UNARY: Record<string, (x: number) => number> = {
  Neg: (x) => -x,
  Abs: Math.abs,
  Sqrt: Math.sqrt,
  Floor: Math.floor,
  Ceil: Math.ceil,
  Reciprocal: (x) => 1 / x,
  Exp: Math.exp,
  Log: Math.log,
  Sign: Math.sign,
  Round: (x) => {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  },
  Not: (x) => (x ? 0 : 1),
  Relu: (x) => Math.max(0, x),
};

function ints(k: Known | undefined): number[] | undefined {
  if (!k?.values.every(isNum)) return undefined;
  return k.values as number[];
}

const clampIndex = (i: number, n: number): number => (i < 0 ? i + n : i);

/**
 * Computes the elements of a node's outputs from known inputs. `outDims` are the outputs' static dims (from
 * shape inference). Returns undefined when the op is not one this evaluator handles or an argument is
 * missing; never throws for unsupported cases (shape inference just keeps the value unknown).
 */
export function evaluateNode(
  node: Node,
  inputs: (Known | undefined)[],
  outDims: number[][],
  outTypes: ElemType[],
  opset: number,
): SymValue[][] | undefined {
  const op = node.opType;
  const x = inputs[0];
  const out0 = outDims[0]!;
  const type0 = outTypes[0]!;
  const need = (...idx: number[]): boolean => idx.every((i) => inputs[i] !== undefined);
  const fin = (vals: SymValue[] | undefined): SymValue[][] | undefined =>
    vals ? [vals.map((v) => coerce(v, type0))] : undefined;

  switch (op) {
    case 'Identity':
    case 'Reshape':
    case 'Squeeze':
    case 'Unsqueeze':
    case 'Flatten':
      return need(0) ? fin(x!.values.slice()) : undefined;
    case 'Cast':
    case 'CastLike':
      return need(0) ? fin(x!.values.slice()) : undefined; // coerce() converts; symbols survive int→int only
    case 'Expand':
      return need(0) ? fin(elementwise([x!], out0, (v) => v)) : undefined;
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div':
    case 'Mod':
    case 'Pow':
      return need(0, 1) ? fin(elementwise([x!, inputs[1]!], out0, arith(op, x!.type))) : undefined;
    case 'Min':
    case 'Max':
    case 'Sum': {
      if (!inputs.every((k) => k)) return undefined;
      const f = arith(op === 'Sum' ? 'Add' : op, x!.type);
      return fin(elementwise(inputs as Known[], out0, (...xs) => xs.reduce((a, b) => f(a, b))));
    }
    case 'Equal':
    case 'Less':
    case 'LessOrEqual':
    case 'Greater':
    case 'GreaterOrEqual':
      return need(0, 1) ? fin(elementwise([x!, inputs[1]!], out0, compare(op))) : undefined;
    case 'And':
    case 'Or':
    case 'Xor':
      return need(0, 1)
        ? fin(
            elementwise(
              [x!, inputs[1]!],
              out0,
              numeric((a, b) => (op === 'And' ? +(!!a && !!b) : op === 'Or' ? +(!!a || !!b) : +(!!a !== !!b))),
            ),
          )
        : undefined;
    case 'Where':
      return need(0, 1, 2)
        ? fin(
            elementwise([x!, inputs[1]!, inputs[2]!], out0, (c, a, b) =>
              c === null || typeof c === 'string' ? (a === b ? a : null) : c ? a : b,
            ),
          )
        : undefined;
    case 'Gather': {
      if (!need(0, 1)) return undefined;
      const idx = ints(inputs[1]);
      if (!idx) return undefined;
      const r = x!.dims.length;
      const axis = clampIndex(attrInt(node, 'axis', 0), r);
      const outer = elementCount(x!.dims.slice(0, axis)),
        inner = elementCount(x!.dims.slice(axis + 1)),
        n = x!.dims[axis]!;
      const vals: SymValue[] = [];
      for (let o = 0; o < outer; o++) {
        for (const i of idx) {
          const j = clampIndex(i, n);
          if (j < 0 || j >= n) return undefined;
          for (let k = 0; k < inner; k++) vals.push(x!.values[(o * n + j) * inner + k]!);
        }
      }
      return fin(vals);
    }
    case 'Concat': {
      if (!inputs.every((k) => k)) return undefined;
      const ks = inputs as Known[];
      const r = out0.length;
      const axis = clampIndex(attrInt(node, 'axis', 0), r);
      const outer = elementCount(out0.slice(0, axis)),
        inner = elementCount(out0.slice(axis + 1));
      const vals: SymValue[] = [];
      for (let o = 0; o < outer; o++) {
        for (const k of ks) {
          const block = k.dims[axis]! * inner;
          for (let i = 0; i < block; i++) vals.push(k.values[o * block + i]!);
        }
      }
      return fin(vals);
    }
    case 'Slice': {
      if (!need(0)) return undefined;
      const r = x!.dims.length;
      let starts: number[] | undefined,
        ends: number[] | undefined,
        axes: number[] | undefined,
        steps: number[] | undefined;
      if (opset < 10) {
        starts = attrInts(node, 'starts');
        ends = attrInts(node, 'ends');
        axes = attrInts(node, 'axes');
      } else {
        starts = ints(inputs[1]);
        ends = ints(inputs[2]);
        axes = node.inputs[3] ? ints(inputs[3]) : undefined;
        steps = node.inputs[4] ? ints(inputs[4]) : undefined;
        if ((node.inputs[3] && !axes) || (node.inputs[4] && !steps)) return undefined;
      }
      if (!starts || !ends) return undefined;
      const ax = (axes ?? starts.map((_, i) => i)).map((a) => clampIndex(a, r));
      const begin = new Array<number>(r).fill(0),
        step = new Array<number>(r).fill(1);
      ax.forEach((a, i) => {
        const n = x!.dims[a]!,
          s = steps?.[i] ?? 1;
        let b = starts![i]!;
        b = b < 0 ? b + n : b;
        begin[a] = s > 0 ? Math.min(Math.max(b, 0), n) : Math.min(Math.max(b, -1), n - 1);
        step[a] = s;
      });
      const inStr = strides(x!.dims),
        outStr = strides(out0);
      const vals: SymValue[] = [];
      for (let i = 0; i < elementCount(out0); i++) {
        let rem = i,
          off = 0;
        for (let d = 0; d < r; d++) {
          const c = Math.floor(rem / outStr[d]!);
          rem -= c * outStr[d]!;
          off += (begin[d]! + c * step[d]!) * inStr[d]!;
        }
        vals.push(x!.values[off]!);
      }
      return fin(vals);
    }
    case 'Transpose': {
      if (!need(0)) return undefined;
      const r = x!.dims.length;
      const perm = attrInts(node, 'perm', [...Array(r).keys()].reverse());
      const inStr = strides(x!.dims),
        outStr = strides(out0);
      const vals: SymValue[] = [];
      for (let i = 0; i < elementCount(out0); i++) {
        let rem = i,
          off = 0;
        for (let d = 0; d < r; d++) {
          const c = Math.floor(rem / outStr[d]!);
          rem -= c * outStr[d]!;
          off += c * inStr[perm[d]!]!;
        }
        vals.push(x!.values[off]!);
      }
      return fin(vals);
    }
    case 'Tile': {
      if (!need(0)) return undefined;
      const r = x!.dims.length,
        inStr = strides(x!.dims),
        outStr = strides(out0);
      const vals: SymValue[] = [];
      for (let i = 0; i < elementCount(out0); i++) {
        let rem = i,
          off = 0;
        for (let d = 0; d < r; d++) {
          const c = Math.floor(rem / outStr[d]!);
          rem -= c * outStr[d]!;
          off += (c % x!.dims[d]!) * inStr[d]!;
        }
        vals.push(x!.values[off]!);
      }
      return fin(vals);
    }
    case 'Range': {
      const [s, l, d] = [ints(inputs[0]), ints(inputs[1]), ints(inputs[2])];
      if (!s || !l || !d) return undefined;
      return fin(Array.from({ length: elementCount(out0) }, (_, i) => s[0]! + i * d[0]!));
    }
    case 'ConstantOfShape': {
      const v = node.attributes.value;
      const fill = v?.type === 'tensor' ? (knownFromTensor(v.value)?.values[0] ?? 0) : 0;
      return fin(new Array<SymValue>(elementCount(out0)).fill(fill));
    }
    case 'ReduceProd':
    case 'ReduceSum':
    case 'ReduceMin':
    case 'ReduceMax': {
      if (!need(0)) return undefined;
      const r = x!.dims.length;
      const fromInput = op === 'ReduceSum' ? opset >= 13 : opset >= 18;
      let axes = fromInput ? (node.inputs[1] ? ints(inputs[1]) : []) : attrInts(node, 'axes', []);
      if (!axes) return undefined;
      if (axes.length === 0) axes = attrInt(node, 'noop_with_empty_axes', 0) ? [] : [...Array(r).keys()];
      const reduced = new Set(axes.map((a) => clampIndex(a, r)));
      const f = arith(
        op === 'ReduceProd' ? 'Mul' : op === 'ReduceSum' ? 'Add' : op === 'ReduceMin' ? 'Min' : 'Max',
        x!.type,
      );
      const keptDims = x!.dims.map((d, i) => (reduced.has(i) ? 1 : d));
      const kStr = strides(keptDims),
        inStr = strides(x!.dims);
      const acc = new Array<SymValue | undefined>(elementCount(keptDims)).fill(undefined);
      for (let i = 0; i < x!.values.length; i++) {
        let rem = i,
          off = 0;
        for (let d = 0; d < r; d++) {
          const c = Math.floor(rem / inStr[d]!);
          rem -= c * inStr[d]!;
          if (!reduced.has(d)) off += c * kStr[d]!;
        }
        acc[off] = acc[off] === undefined ? x!.values[i]! : f(acc[off]!, x!.values[i]!);
      }
      return fin(acc.map((v) => v ?? (op === 'ReduceProd' ? 1 : 0)));
    }
    default: {
      const u = UNARY[op];
      if (u && need(0)) {
        const f = numeric(u);
        return fin(x!.values.map((v) => f(v)));
      }
      return undefined;
    }
  }
}
