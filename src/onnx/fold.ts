/**
 * Constant folding for shape arithmetic: nodes whose outputs shape inference could compute (Shape of a
 * static shape, Gather/Unsqueeze/Concat/Cast/Slice/Range/ConstantOfShape … on known values) become
 * initializers under the same names, so their consumers need no rewiring, and the now unused chains go.
 *
 * With `inputShapes`, folding specializes the graph to those input shapes (Shape(sample) becomes a
 * constant): that is what fixed-size training graphs want, and what a general inference model must not get.
 */
import { type Dim, type ElemType, type Model, type TensorValue, type TypedData, allocTyped } from './ir.js';
import type { Known } from './const-eval.js';
import { removeDeadNodes } from './graph.js';
import { inferShapes } from './shape-inference.js';
import { floatToHalf } from '../tensor.js';

export interface FoldOptions {
  /** Largest value (elements) turned into an initializer (default 4096). */
  maxElements?: number;
}

export interface FoldResult {
  /** Nodes replaced by initializers. */
  folded: number;
  /** Nodes and initializers removed afterwards as unused. */
  removedNodes: number;
  removedInitializers: number;
}

/** Folds computable nodes of `model` in place. */
export function foldConstants(
  model: Model,
  inputShapes: Record<string, Dim[]> = {},
  opts: FoldOptions = {},
): FoldResult {
  const { values } = inferShapes(model, inputShapes, { maxValueElements: opts.maxElements ?? 4096 });
  const g = model.graph;
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const folded: TensorValue[] = [];
  const nodes = g.nodes.filter((n) => {
    const standard = n.domain === '' || n.domain === 'ai.onnx';
    const computable =
      standard &&
      n.outputs.length > 0 &&
      n.outputs.every(
        (o) => o !== '' && !graphOutputs.has(o) && values.get(o)?.values.every((v) => typeof v === 'number'),
      );
    if (!computable) return true;
    for (const o of n.outputs) folded.push(tensorFromKnown(o, values.get(o)!));
    return false;
  });
  const foldedNodes = g.nodes.length - nodes.length;
  g.nodes = nodes;
  g.initializers.push(...folded);
  const removed = removeDeadNodes(g);
  return { folded: foldedNodes, removedNodes: removed.nodes, removedInitializers: removed.initializers };
}

/** An initializer holding a computed value (int64 saturates at ±2^63, as exporters' INT64_MAX ends do). */
export function tensorFromKnown(name: string, k: Known): TensorValue {
  const nums = k.values as number[];
  const data = typedFrom(k.type, nums);
  return { name, type: k.type, dims: [...k.dims], data };
}

function typedFrom(type: ElemType, nums: number[]): TypedData {
  const out = allocTyped(type, nums.length);
  if (out instanceof BigInt64Array) {
    nums.forEach((v, i) => {
      out[i] = v >= 2 ** 63 ? (1n << 63n) - 1n : v <= -(2 ** 63) ? -(1n << 63n) : BigInt(Math.trunc(v));
    });
  } else if (out instanceof BigUint64Array) {
    nums.forEach((v, i) => {
      out[i] = BigInt(Math.max(0, Math.trunc(v)));
    });
  } else if (type === 'float16') {
    nums.forEach((v, i) => {
      out[i] = floatToHalf(v);
    });
  } else if (type === 'bfloat16') {
    const f = new Float32Array(1),
      u = new Uint32Array(f.buffer);
    nums.forEach((v, i) => {
      f[0] = v;
      out[i] = u[0]! >>> 16;
    });
  } else {
    nums.forEach((v, i) => {
      (out as Float32Array)[i] = v;
    });
  }
  return out;
}
