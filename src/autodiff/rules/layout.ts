/**
 * Gradient rules of operators that move elements without arithmetic: reshapes, Transpose, Expand, Tile, Slice,
 * Pad, Split and Concat. Every rule works on static shapes: the gradient goes back to the input's exact shape.
 */
import { type GradRule, normAxis } from './context.js';
import { attrInt, attrInts, attrString } from '../../onnx/ir.js';
import { sliceCount, sliceRange } from './shapes.js';

/** Gradient = dY reshaped to the input's shape (Reshape, Flatten, Squeeze, Unsqueeze). */
const reshapeBack: GradRule = {
  differentiable: () => [0],
  backward: (ctx, [dY]) => [ctx.reshape(dY!, ctx.shape(ctx.input(0)))],
};

const transpose: GradRule = {
  backward: (ctx, [dY]) => {
    const rank = ctx.rank(ctx.input(0));
    const perm = attrInts(
      ctx.node,
      'perm',
      Array.from({ length: rank }, (_, i) => rank - 1 - i),
    );
    const inverse = new Array<number>(rank);
    perm.forEach((p, i) => {
      inverse[p] = i;
    });
    return [ctx.transpose(dY!, inverse)];
  },
};

const expand: GradRule = {
  differentiable: () => [0],
  backward: (ctx, [dY]) => [ctx.toInput(dY!, ctx.shape(ctx.output()), 0)],
};

// Y = X tiled r_i times per axis: view dY as [r0, x0, r1, x1, …] and sum the r axes.
const tile: GradRule = {
  differentiable: () => [0],
  backward: (ctx, [dY]) => {
    const x = ctx.shape(ctx.input(0)),
      y = ctx.shape(ctx.output());
    const split: number[] = [];
    x.forEach((d, i) => {
      split.push(y[i]! / d, d);
    });
    const reduced = ctx.reduceSum(
      ctx.reshape(dY!, split),
      x.map((_, i) => 2 * i).filter((ax) => split[ax]! > 1),
      true,
    );
    return [ctx.reshape(reduced, x)];
  },
};

/**
 * Slice: the gradient scatters dY back into zeros. Per sliced axis: undo a negative step by reversing dY,
 * spread a step s > 1 by interleaving s−1 zero rows (Unsqueeze, Pad, Reshape), then one Pad places the block.
 */
const slice: GradRule = {
  differentiable: () => [0],
  backward: (ctx, [dY]) => {
    const x = ctx.input(0);
    const xShape = ctx.shape(x);
    const rank = xShape.length;
    const starts = ctx.constInput(1, 'starts'),
      ends = ctx.constInput(2, 'ends');
    const axes = ctx.node.inputs[3] ? ctx.constInput(3, 'axes') : starts.map((_, i) => i);
    const steps = ctx.node.inputs[4] ? ctx.constInput(4, 'steps') : starts.map(() => 1);
    let g = dY!;
    const shape = ctx.shape(ctx.output()).slice();
    const pads = new Array<number>(2 * rank).fill(0);
    for (let k = 0; k < axes.length; k++) {
      const a = normAxis(axes[k]!, rank);
      const dim = xShape[a]!;
      const r = sliceRange(starts[k]!, ends[k]!, steps[k]!, dim);
      const m = sliceCount(r);
      if (m === 0) return [ctx.zeros(xShape, ctx.type(x))];
      const s = Math.abs(r.step);
      const lo = r.step > 0 ? r.start : r.start + r.step * (m - 1);
      if (r.step < 0 && m > 1) g = ctx.slice(g, [-1], [-(m + 1)], [a], [-1]);
      let len = m;
      if (s > 1 && m > 1) {
        const spread = shape.slice();
        spread.splice(a, 1, m * s);
        const gapPads = new Array<number>(2 * (rank + 1)).fill(0);
        gapPads[rank + 1 + a + 1] = s - 1;
        g = ctx.reshape(ctx.pad(ctx.unsqueeze(g, [a + 1]), gapPads), spread);
        len = m * s;
        if (lo + len > dim) {
          g = ctx.slice(g, [0], [dim - lo], [a]);
          len = dim - lo;
        }
      }
      shape[a] = len;
      pads[a] = lo;
      pads[a + rank] = dim - lo - len;
    }
    return [ctx.pad(g, pads)];
  },
};

/** Pad (constant mode): the gradient is the slice of dY the input occupies; negative pads (crops) pad back. */
const pad: GradRule = {
  differentiable: () => [0],
  backward: (ctx, [dY]) => {
    const mode = attrString(ctx.node, 'mode', 'constant');
    if (mode !== 'constant') ctx.fail(`mode "${mode}" is not supported (only constant)`);
    const xShape = ctx.shape(ctx.input(0));
    const rank = xShape.length;
    const given = ctx.opset >= 11 ? ctx.constInput(1, 'pads') : attrInts(ctx.node, 'pads', []);
    const axes =
      ctx.opset >= 18 && ctx.node.inputs[3]
        ? ctx.constInput(3, 'axes').map((a) => normAxis(a, rank))
        : xShape.map((_, i) => i);
    const begin = new Array<number>(rank).fill(0),
      end = new Array<number>(rank).fill(0);
    axes.forEach((a, i) => {
      begin[a] = given[i]!;
      end[a] = given[i + axes.length]!;
    });
    const uncropped = ctx.pad(dY!, [...begin.map((p) => Math.max(-p, 0)), ...end.map((p) => Math.max(-p, 0))]);
    const sliceAxes = xShape.map((_, i) => i).filter((i) => begin[i]! > 0 || end[i]! > 0);
    if (sliceAxes.length === 0) return [uncropped];
    const startOf = (i: number) => Math.max(begin[i]!, 0);
    return [
      ctx.slice(
        uncropped,
        sliceAxes.map(startOf),
        sliceAxes.map((i) => startOf(i) + xShape[i]!),
        sliceAxes,
      ),
    ];
  },
};

/** Split: the gradient is the outputs' gradients concatenated, zeros for outputs that got none. */
const split: GradRule = {
  differentiable: () => [0],
  backward: (ctx, dYs) => {
    const x = ctx.input(0);
    const axis = normAxis(attrInt(ctx.node, 'axis', 0), ctx.rank(x));
    const parts = ctx.node.outputs.map((o, i) => dYs[i] ?? ctx.zeros(ctx.shape(o), ctx.type(x)));
    return [parts.length === 1 ? parts[0] : ctx.op('Concat', parts, { axis })];
  },
};

/** Concat: each input's gradient is its slab of dY (a Slice per input that needs one). */
const concat: GradRule = {
  backward: (ctx, [dY]) => {
    const rank = ctx.rank(ctx.output());
    const axis = normAxis(attrInt(ctx.node, 'axis', 0), rank);
    let offset = 0;
    return ctx.node.inputs.map((v, i) => {
      const size = ctx.shape(v)[axis]!;
      const start = offset;
      offset += size;
      return ctx.needs(i) ? ctx.slice(dY!, [start], [start + size], [axis]) : undefined;
    });
  },
};

export const LAYOUT_RULES: Record<string, GradRule> = {
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: transpose,
  Expand: expand,
  Tile: tile,
  Slice: slice,
  Pad: pad,
  Split: split,
  Concat: concat,
};
