/**
 * Gradient rules that route values by index: Gather (embedding lookups and index-select) and Resize (nearest,
 * integer factors), plus the reductions ReduceSum/ReduceMean.
 */
import { type GradRule, type RuleContext, normAxis } from './context.js';
import { attrInt, attrInts, attrString } from '../../onnx/ir.js';

/** Largest one-hot matrix (elements) stored as a constant for constant Gather indices before opset 16. */
const ONE_HOT_CONSTANT_LIMIT = 1 << 22;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const product = (xs: number[]) => xs.reduce((a, b) => a * b, 1);

/**
 * Gather along `axis`: move the indexed axis to the front ([D, rest] for X, [nIdx, rest] for dY), scatter-add
 * the rows of dY into zeros, move the axis back. Opset ≥ 16 scatters with ScatterND(reduction = add); older
 * opsets multiply by a one-hot matrix (ScatterND has no reduction before 16), a constant when the indices are.
 */
const gather: GradRule = {
  differentiable: () => [0],
  backward: (ctx, [dY]) => {
    const x = ctx.input(0),
      indices = ctx.input(1);
    const xShape = ctx.shape(x),
      iShape = ctx.shape(indices);
    const axis = normAxis(attrInt(ctx.node, 'axis', 0), xShape.length);
    const depth = xShape[axis]!;
    const outer = xShape.slice(0, axis),
      inner = xShape.slice(axis + 1);
    const nIdx = product(iShape),
      rest = product(outer) * product(inner);
    const ri = iShape.length;

    // 1. dY [outer…, idx…, inner…] → [nIdx, rest].
    const toFront = [
      ...range(ri).map((i) => i + outer.length),
      ...range(outer.length),
      ...range(inner.length).map((i) => i + outer.length + ri),
    ];
    const rows = ctx.reshape(ctx.transpose(dY!, toFront), [nIdx, rest]);

    // 2. Accumulate rows into [D, rest].
    const known = ctx.shapes.constInts(indices)?.map((i) => (i < 0 ? i + depth : i));
    let acc: string;
    if (known && ctx.opset < 16 && nIdx * depth <= ONE_HOT_CONSTANT_LIMIT && ctx.type(x) === 'float32') {
      // Constant indices: the one-hot matrix is a constant too (no int64 ops at run time).
      const oneHot = new Float32Array(nIdx * depth);
      known.forEach((i, row) => {
        oneHot[row * depth + i] = 1;
      });
      acc = ctx.op('Gemm', [ctx.b.constant(oneHot, [nIdx, depth], 'float32', 'gather_one_hot'), rows], { transA: 1 });
    } else if (ctx.opset >= 16) {
      const flatIdx = known
        ? ctx.b.constant(known, [nIdx, 1], 'int64', 'gather_indices')
        : flatIndices(ctx, indices, nIdx);
      acc = ctx.op('ScatterND', [ctx.zeros([depth, rest], ctx.type(x)), flatIdx, rows], { reduction: 'add' });
    } else {
      const flatIdx = known
        ? ctx.b.constant(known, [nIdx, 1], 'int64', 'gather_indices')
        : flatIndices(ctx, indices, nIdx);
      const ids = ctx.b.constant(range(depth), [1, depth], 'int64', 'gather_range');
      const oneHot = ctx.op('Cast', [ctx.op('Equal', [flatIdx, ids])], { to: typeCodeOf(ctx, x) });
      acc = ctx.op('Gemm', [oneHot, rows], { transA: 1 });
    }

    // 3. [D, rest] → [D, outer…, inner…] → X's axis order.
    const unflat = ctx.reshape(acc, [depth, ...outer, ...inner]);
    const back = [...range(outer.length).map((i) => i + 1), 0, ...range(inner.length).map((i) => i + 1 + outer.length)];
    return [ctx.transpose(unflat, back)];
  },
};

/**
 * Dynamic indices as an int64 [n, 1] column (negative indices are not normalised: SD exports use none). On
 * WebGPU (ORT 1.30) this Reshape of an int64 tensor, and the Equal of the one-hot path, run on the CPU.
 */
function flatIndices(ctx: RuleContext, indices: string, n: number): string {
  const asInt64 = ctx.type(indices) === 'int64' ? indices : ctx.op('Cast', [indices], { to: 7 });
  return ctx.reshape(asInt64, [n, 1]);
}

function typeCodeOf(ctx: RuleContext, v: string): number {
  return ({ float32: 1, float16: 10, float64: 11, bfloat16: 16 } as Record<string, number>)[ctx.type(v)] ?? 1;
}

/** The input index nearest-mode Resize reads for output index i (ONNX Resize, per axis). */
function nearestSource(i: number, inSize: number, outSize: number, mode: string, rounding: string): number {
  const s = outSize / inSize;
  let xo: number;
  switch (mode) {
    case 'half_pixel':
      xo = (i + 0.5) / s - 0.5;
      break;
    case 'pytorch_half_pixel':
      xo = outSize > 1 ? (i + 0.5) / s - 0.5 : 0;
      break;
    case 'asymmetric':
      xo = i / s;
      break;
    case 'tf_half_pixel_for_nn':
      xo = (i + 0.5) / s;
      break;
    case 'align_corners':
      xo = outSize === 1 ? 0 : (i * (inSize - 1)) / (outSize - 1);
      break;
    default:
      return Number.NaN;
  }
  let r: number;
  switch (rounding) {
    case 'floor':
      r = Math.floor(xo);
      break;
    case 'ceil':
      r = Math.ceil(xo);
      break;
    case 'round_prefer_ceil':
      r = Math.round(xo);
      break;
    default:
      r = xo - Math.floor(xo) === 0.5 ? Math.floor(xo) : Math.round(xo); // round_prefer_floor
  }
  return Math.min(Math.max(r, 0), inSize - 1);
}

/**
 * Resize (nearest) by integer factors: each input element was copied to an s×s block (checked per axis
 * against the node's coordinate mode), so its gradient is the block's sum: Reshape dY to [.., n, s, ..] and
 * ReduceSum the s axes.
 */
const resize: GradRule = {
  differentiable: () => [0],
  backward: (ctx, [dY]) => {
    const mode = attrString(ctx.node, 'mode', 'nearest');
    if (mode !== 'nearest') ctx.fail(`mode "${mode}" is not supported (only nearest with integer factors)`);
    const coord = attrString(ctx.node, 'coordinate_transformation_mode', 'half_pixel');
    const rounding = attrString(ctx.node, 'nearest_mode', 'round_prefer_floor');
    const xShape = ctx.shape(ctx.input(0)),
      yShape = ctx.shape(ctx.output());
    const split: number[] = [];
    const sumAxes: number[] = [];
    xShape.forEach((n, a) => {
      const m = yShape[a]!;
      if (m === n) {
        split.push(n);
        return;
      }
      const s = m / n;
      if (!Number.isInteger(s)) ctx.fail(`axis ${a} resizes ${n} → ${m}, not by an integer factor`);
      for (let i = 0; i < m; i++) {
        if (nearestSource(i, n, m, coord, rounding) !== Math.floor(i / s)) {
          ctx.fail(
            `with coordinate_transformation_mode ${coord} and nearest_mode ${rounding}, axis ${a} is not a block copy`,
          );
        }
      }
      split.push(n, s);
      sumAxes.push(split.length - 1);
    });
    if (sumAxes.length === 0) return [dY];
    return [ctx.reduceSum(ctx.reshape(dY!, split), sumAxes, false)];
  },
};

/** The axes a ReduceSum/ReduceMean node reduces, from its attribute or input (empty = all, unless noop). */
function reducedAxes(ctx: RuleContext): number[] | 'none' {
  const rank = ctx.rank(ctx.input(0));
  const axesFromInput = ctx.node.opType === 'ReduceSum' ? ctx.opset >= 13 : ctx.opset >= 18;
  const axes = axesFromInput ? (ctx.node.inputs[1] ? ctx.constInput(1, 'axes') : []) : attrInts(ctx.node, 'axes', []);
  if (axes.length === 0) return attrInt(ctx.node, 'noop_with_empty_axes', 0) === 1 ? 'none' : range(rank);
  return axes.map((a) => normAxis(a, rank));
}

/** ReduceSum/Mean: dY (with the reduced axes kept as 1) expanded back over them; Mean divides by the count. */
function reduceRule(mean: boolean): GradRule {
  return {
    differentiable: () => [0],
    backward: (ctx, [dY]) => {
      const axes = reducedAxes(ctx);
      if (axes === 'none') return [dY];
      const xShape = ctx.shape(ctx.input(0));
      const kept = xShape.map((d, i) => (axes.includes(i) ? 1 : d));
      let g = attrInt(ctx.node, 'keepdims', 1) === 1 ? dY! : ctx.reshape(dY!, kept);
      if (mean) g = ctx.mul(g, ctx.scalar(1 / product(axes.map((a) => xShape[a]!)), ctx.output()));
      return [ctx.op('Expand', [g, ctx.ints(xShape)])];
    },
  };
}

export const INDEXING_RULES: Record<string, GradRule> = {
  Gather: gather,
  Resize: resize,
  Upsample: resize,
  ReduceSum: reduceRule(false),
  ReduceMean: reduceRule(true),
};
