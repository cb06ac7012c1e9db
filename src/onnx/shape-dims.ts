/**
 * Dimension arithmetic for shape inference: broadcasting, merging equal dims, products with symbols, and the
 * context a shape rule sees. A dim is a number (static), a string (symbolic: equal names are equal sizes) or
 * null (unknown).
 */
import { VidpriorError } from '../errors.js';
import type { Dim, ElemType, Node } from './ir.js';
import type { Known, SymValue } from './const-eval.js';

/** The type and shape of a value; shape null when even the rank is unknown. */
export interface ShapeInfo {
  type: ElemType;
  shape: Dim[] | null;
}

/** What a shape rule sees of its node. */
export interface RuleContext {
  node: Node;
  /** Opset of the node's domain. */
  opset: number;
  /** Number of inputs as written (trailing omitted ones included). */
  inputCount: number;
  /** Input i's type and shape; undefined when the optional input is omitted. */
  input(i: number): ShapeInfo | undefined;
  /** Input i, which the op requires: a clear error when it is missing. */
  req(i: number): ShapeInfo;
  /** Input i's elements when known (constants, computed shapes). */
  value(i: number): Known | undefined;
  /** Throws E_SHAPE naming the node. */
  fail(message: string): never;
}

export type ShapeRule = (ctx: RuleContext) => ShapeInfo[];

export function shapeError(node: Node, message: string): VidpriorError {
  return new VidpriorError('E_SHAPE', `node "${node.name}" (${node.opType}): ${message}`, {
    node: node.name,
    opType: node.opType,
  });
}

export const isStatic = (d: Dim | SymValue | undefined): d is number => typeof d === 'number';

export function fmt(shape: readonly Dim[] | null): string {
  return shape ? `[${shape.map((d) => (d === null ? '?' : d)).join(', ')}]` : '[?…]';
}

/** The broadcast of two dims (numpy rules); fails when two static dims differ and neither is 1. */
export function broadcastDim(a: Dim, b: Dim, fail: (m: string) => never): Dim {
  if (a === b) return a;
  if (a === 1) return b;
  if (b === 1) return a;
  if (isStatic(a) && isStatic(b)) fail(`cannot broadcast dims ${a} and ${b}`);
  if (isStatic(a)) return a; // the other is a symbol or unknown: it must be `a` (or 1)
  if (isStatic(b)) return b;
  return null;
}

export function broadcastShapes(shapes: (Dim[] | null)[], fail: (m: string) => never): Dim[] | null {
  if (shapes.some((s) => s === null)) return null;
  const rank = Math.max(...shapes.map((s) => s!.length));
  const out: Dim[] = new Array<Dim>(rank).fill(1);
  for (const s of shapes as Dim[][]) {
    for (let i = 0; i < s.length; i++) {
      const j = rank - s.length + i;
      try {
        out[j] = broadcastDim(out[j]!, s[i]!, fail);
      } catch (err) {
        if (err instanceof VidpriorError) fail(`cannot broadcast shapes ${shapes.map((x) => fmt(x)).join(' and ')}`);
        throw err;
      }
    }
  }
  return out;
}

/** Two dims that must be equal: the more specific one; fails on two different static dims. */
export function mergeDim(a: Dim, b: Dim, fail: (m: string) => never, what = 'dims'): Dim {
  if (a === b) return a;
  if (isStatic(a) && isStatic(b)) fail(`${what} differ: ${a} vs ${b}`);
  if (isStatic(a)) return a;
  if (isStatic(b)) return b;
  return a ?? b;
}

/** A product of dims: a number, a symbolic product such as '2*h*w' (factors sorted), or null if unknown. */
export function dimMul(a: Dim, b: Dim): Dim {
  if (isStatic(a) && isStatic(b)) return a * b;
  if (a === null || b === null) return a === 1 ? b : b === 1 ? a : null;
  const f = splitDims([a, b]);
  return symbolicProduct(f.num, f.symbols);
}

function symbolicProduct(num: number, symbols: string[]): Dim {
  if (!symbols.length) return num;
  if (num === 0) return 0;
  return [...(num === 1 ? [] : [String(num)]), ...[...symbols].sort()].join('*');
}

export function dimAdd(a: Dim, b: Dim): Dim {
  if (isStatic(a) && isStatic(b)) return a + b;
  if (a === 0) return b;
  if (b === 0) return a;
  return null;
}

export function product(dims: readonly Dim[]): Dim {
  return dims.reduce<Dim>((acc, d) => dimMul(acc, d), 1);
}

/** A dim from a known shape element (numbers and symbols; negatives and null are unknown). */
export function dimFromValue(v: SymValue | undefined): Dim {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && v >= 0 && Number.isInteger(v)) return v;
  return null;
}

/** Normalizes a possibly negative axis for rank `rank`, failing when out of range. */
export function normAxis(axis: number, rank: number, fail: (m: string) => never): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(`axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/**
 * Reshape's output dims: 0 copies the input dim (unless allowzero), −1 takes what is left. With symbols the
 * −1 is solved by cancelling symbols that appear on both sides ([b, 77, 32] → [b, −1] gives [b, 2464]).
 */
export function reshapeDims(
  input: Dim[] | null,
  target: SymValue[],
  allowZero: boolean,
  fail: (m: string) => never,
): Dim[] {
  const out: Dim[] = target.map((v, i) => {
    if (v === 0 && !allowZero)
      return input
        ? i < input.length
          ? input[i]!
          : fail(`reshape target copies dim ${i}, which the input lacks`)
        : null;
    return v === -1 ? -1 : dimFromValue(v);
  });
  const minus = out.filter((d) => d === -1).length;
  if (minus > 1) fail(`reshape target [${target.join(', ')}] has more than one -1`);
  const total = input ? splitDims(input) : null;
  const known = splitDims(out.filter((d) => d !== -1));
  if (minus === 0) {
    if (
      total &&
      known &&
      !total.unknown &&
      !known.unknown &&
      total.symbols.length === 0 &&
      known.symbols.length === 0 &&
      total.num !== known.num
    ) {
      fail(`cannot reshape ${fmt(input)} (${total.num} elements) to [${target.join(', ')}]`);
    }
    return out;
  }
  let solved: Dim = null;
  if (total && known && !total.unknown && !known.unknown) {
    const left = [...total.symbols];
    let ok = true;
    for (const s of known.symbols) {
      const i = left.indexOf(s);
      if (i < 0) {
        ok = false;
        break;
      }
      left.splice(i, 1);
    }
    if (ok && known.num !== 0 && total.num % known.num === 0) solved = symbolicProduct(total.num / known.num, left);
    else if (ok && known.num !== 0 && left.length === 0) {
      fail(`cannot reshape ${fmt(input)} (${total.num} elements) to [${target.join(', ')}]`);
    }
  }
  return out.map((d) => (d === -1 ? solved : d));
}

/** A list of dims as a number times symbol factors ('2*h*w' counts as 2, h, w). */
function splitDims(dims: readonly Dim[]): { num: number; symbols: string[]; unknown: boolean } {
  let num = 1,
    unknown = false;
  const symbols: string[] = [];
  for (const d of dims) {
    if (isStatic(d)) num *= d;
    else if (typeof d === 'string') {
      for (const f of d.split('*')) {
        if (/^\d+$/.test(f)) num *= Number(f);
        else symbols.push(f);
      }
    } else unknown = true;
  }
  return { num, symbols, unknown };
}

/** Output length of one sliced axis (numpy semantics, clamped), or null when it cannot be told. */
export function sliceLength(n: Dim, start: SymValue, end: SymValue, step: SymValue): Dim {
  if (!isStatic(start) || !isStatic(end) || !isStatic(step)) return null;
  if (step === 0) return null;
  if (!isStatic(n)) {
    // The common "whole axis" slice keeps a symbolic dim.
    return start === 0 && step === 1 && end >= 2 ** 31 - 1 ? n : null;
  }
  let s = start < 0 ? start + n : start;
  let e = end < 0 ? end + n : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), n);
    e = Math.min(Math.max(e, 0), n);
    return Math.max(0, Math.ceil((e - s) / step));
  }
  s = Math.min(Math.max(s, -1), n - 1);
  e = Math.min(Math.max(e, -1), n - 1);
  return Math.max(0, Math.ceil((s - e) / -step));
}

/** Output length of a convolution/pooling axis. */
export function convLength(
  n: Dim,
  k: number,
  stride: number,
  dilation: number,
  padBegin: number,
  padEnd: number,
  autoPad: string,
  ceilMode = false,
): Dim {
  if (!isStatic(n)) {
    // A symbolic size survives the size-preserving case (stride 1, "same" padding), e.g. 3×3 convs with pad 1.
    const same = autoPad.startsWith('SAME') || (autoPad !== 'VALID' && padBegin + padEnd === dilation * (k - 1));
    return stride === 1 && same ? n : null;
  }
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return Math.ceil(n / stride);
  const span = dilation * (k - 1) + 1;
  const pads = autoPad === 'VALID' ? 0 : padBegin + padEnd;
  const q = (n + pads - span) / stride;
  return (ceilMode ? Math.ceil(q) : Math.floor(q)) + 1;
}
