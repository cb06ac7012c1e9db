/**
 * One shape rule per operator: from the inputs' types, shapes and (when known) values to the outputs' types
 * and shapes. Opset differences (attributes that became inputs) are handled inside each rule.
 * Elementwise, normalization and data-movement ops are here; shape-rules-nn.ts has the linear-algebra,
 * convolution, resize and attention ops.
 */
import { type Dim, type ElemType, ELEM_TYPE_BY_CODE, attrInt, attrInts } from './ir.js';
import type { SymValue } from './const-eval.js';
import { constantNodeValue } from './graph.js';
import {
  type RuleContext,
  type ShapeRule,
  broadcastShapes,
  dimAdd,
  dimFromValue,
  dimMul,
  fmt,
  isStatic,
  mergeDim,
  normAxis,
  product,
  reshapeDims,
  sliceLength,
} from './shape-dims.js';

const same: ShapeRule = (c) => [{ ...c.req(0) }];
const asBool: ShapeRule = (c) => [{ type: 'bool', shape: c.req(0).shape }];

/** Elementwise over all inputs with broadcasting; output type `type` or the first input's. */
function broadcasting(type?: ElemType, checkTypes = true): ShapeRule {
  return (c) => {
    const ins = Array.from({ length: c.inputCount }, (_, i) => c.req(i));
    if (checkTypes && ins.some((x) => x.type !== ins[0]!.type))
      c.fail(`input types differ: ${ins.map((x) => x.type).join(', ')}`);
    return [
      {
        type: type ?? ins[0]!.type,
        shape: broadcastShapes(
          ins.map((x) => x.shape),
          c.fail,
        ),
      },
    ];
  };
}

/** The elements of a 1-D (or scalar) known input, or undefined. */
function list(c: RuleContext, i: number): SymValue[] | undefined {
  return c.value(i)?.values;
}

/** A static list of ints from a known input (symbols or unknowns give undefined). */
function intList(c: RuleContext, i: number): number[] | undefined {
  const v = list(c, i);
  return v?.every(isStatic) ? (v as number[]) : undefined;
}

/** Axes given as an attribute (old opsets) or as input `inputIndex` (new opsets); null when not knowable. */
function axesArg(c: RuleContext, fromInputSince: number, inputIndex: number): number[] | undefined | null {
  if (c.opset < fromInputSince) return c.node.attributes.axes ? attrInts(c.node, 'axes') : undefined;
  if (!c.input(inputIndex)) return undefined;
  return intList(c, inputIndex) ?? null;
}

function reduce(axesInputSince: number): ShapeRule {
  return (c) => {
    const x = c.req(0);
    const keep = attrInt(c.node, 'keepdims', 1) !== 0;
    const axes = axesArg(c, axesInputSince, 1);
    if (axes === null || !x.shape)
      return [{ type: x.type, shape: axes === null && keep && x.shape ? x.shape.map(() => null) : null }];
    const r = x.shape.length;
    const noop = attrInt(c.node, 'noop_with_empty_axes', 0) !== 0;
    const set = new Set((axes?.length ? axes : noop ? [] : [...Array(r).keys()]).map((a) => normAxis(a, r, c.fail)));
    const shape = keep ? x.shape.map((d, i) => (set.has(i) ? 1 : d)) : x.shape.filter((_, i) => !set.has(i));
    return [{ type: x.type, shape }];
  };
}

const argReduce: ShapeRule = (c) => {
  const x = c.req(0);
  if (!x.shape) return [{ type: 'int64', shape: null }];
  const axis = normAxis(attrInt(c.node, 'axis', 0), x.shape.length, c.fail);
  const keep = attrInt(c.node, 'keepdims', 1) !== 0;
  return [
    { type: 'int64', shape: keep ? x.shape.map((d, i) => (i === axis ? 1 : d)) : x.shape.filter((_, i) => i !== axis) },
  ];
};

const cast: ShapeRule = (c) => {
  const to = ELEM_TYPE_BY_CODE[attrInt(c.node, 'to', 0)];
  if (!to) c.fail(`Cast to unsupported type code ${attrInt(c.node, 'to', 0)}`);
  return [{ type: to, shape: c.req(0).shape }];
};

const shapeOp: ShapeRule = (c) => {
  const x = c.req(0);
  if (!x.shape) return [{ type: 'int64', shape: [null] }];
  const r = x.shape.length;
  const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const start = clamp(attrInt(c.node, 'start', 0)),
    end = clamp(attrInt(c.node, 'end', r));
  return [{ type: 'int64', shape: [Math.max(0, end - start)] }];
};

const reshape: ShapeRule = (c) => {
  const x = c.req(0);
  const target = list(c, 1);
  if (!target) {
    const t = c.req(1).shape;
    return [{ type: x.type, shape: t && isStatic(t[0]) ? new Array<Dim>(t[0]).fill(null) : null }];
  }
  return [{ type: x.type, shape: reshapeDims(x.shape, target, attrInt(c.node, 'allowzero', 0) !== 0, c.fail) }];
};

const flatten: ShapeRule = (c) => {
  const x = c.req(0);
  if (!x.shape) return [{ type: x.type, shape: [null, null] }];
  const r = x.shape.length;
  const a = attrInt(c.node, 'axis', 1);
  const axis = a < 0 ? a + r : a;
  if (axis < 0 || axis > r) c.fail(`axis ${a} is out of range for rank ${r}`);
  return [{ type: x.type, shape: [product(x.shape.slice(0, axis)), product(x.shape.slice(axis))] }];
};

const squeeze: ShapeRule = (c) => {
  const x = c.req(0);
  const axes = axesArg(c, 13, 1);
  if (!x.shape || axes === null) return [{ type: x.type, shape: null }];
  const r = x.shape.length;
  if (!axes || axes.length === 0) {
    if (x.shape.some((d) => !isStatic(d))) return [{ type: x.type, shape: null }];
    return [{ type: x.type, shape: x.shape.filter((d) => d !== 1) }];
  }
  const set = new Set(axes.map((a) => normAxis(a, r, c.fail)));
  for (const a of set)
    if (isStatic(x.shape[a]) && x.shape[a] !== 1) c.fail(`cannot squeeze axis ${a} of size ${x.shape[a]}`);
  return [{ type: x.type, shape: x.shape.filter((_, i) => !set.has(i)) }];
};

const unsqueeze: ShapeRule = (c) => {
  const x = c.req(0);
  const axes = axesArg(c, 13, 1);
  if (axes === undefined) return c.fail('Unsqueeze needs axes');
  if (!x.shape || axes === null) return [{ type: x.type, shape: null }];
  const r = x.shape.length + axes.length;
  const set = new Set(axes.map((a) => normAxis(a, r, c.fail)));
  const src = [...x.shape];
  return [{ type: x.type, shape: Array.from({ length: r }, (_, i) => (set.has(i) ? 1 : src.shift()!)) }];
};

const transpose: ShapeRule = (c) => {
  const x = c.req(0);
  if (!x.shape) return [{ type: x.type, shape: null }];
  const r = x.shape.length;
  const perm = attrInts(c.node, 'perm', [...Array(r).keys()].reverse());
  if (perm.length !== r) c.fail(`perm [${perm}] does not fit rank ${r}`);
  return [{ type: x.type, shape: perm.map((p) => x.shape![normAxis(p, r, c.fail)]!) }];
};

const concat: ShapeRule = (c) => {
  const ins = Array.from({ length: c.inputCount }, (_, i) => c.req(i));
  const type = ins[0]!.type;
  if (ins.some((x) => x.type !== type)) c.fail(`input types differ: ${ins.map((x) => x.type).join(', ')}`);
  const known = ins.filter((x) => x.shape);
  if (!known.length) return [{ type, shape: null }];
  const r = known[0]!.shape!.length;
  const axis = normAxis(attrInt(c.node, 'axis', 0), r, c.fail);
  const shape: Dim[] = [...known[0]!.shape!];
  shape[axis] = 0;
  for (const x of ins) {
    if (!x.shape) {
      shape[axis] = null;
      continue;
    }
    if (x.shape.length !== r) c.fail(`inputs have ranks ${ins.map((i) => i.shape?.length ?? '?').join(', ')}`);
    x.shape.forEach((d, i) => {
      if (i === axis) shape[axis] = dimAdd(shape[axis]!, d);
      else shape[i] = mergeDim(shape[i]!, d, c.fail, `concatenated shapes ${ins.map((q) => fmt(q.shape)).join(', ')}`);
    });
  }
  return [{ type, shape }];
};

const split: ShapeRule = (c) => {
  const x = c.req(0);
  const n = c.node.outputs.length;
  if (!x.shape) return Array.from({ length: n }, () => ({ type: x.type, shape: null }));
  const r = x.shape.length;
  const axis = normAxis(attrInt(c.node, 'axis', 0), r, c.fail);
  const dim = x.shape[axis]!;
  let sizes: (number | null)[] | undefined;
  if (c.opset < 13) sizes = c.node.attributes.split ? attrInts(c.node, 'split') : undefined;
  else if (c.input(1)) sizes = intList(c, 1) ?? new Array<null>(n).fill(null);
  if (!sizes) {
    if (isStatic(dim)) {
      const numOutputs = attrInt(c.node, 'num_outputs', n);
      const chunk = Math.ceil(dim / numOutputs);
      if (!c.node.attributes.num_outputs && dim % n !== 0) c.fail(`cannot split ${dim} into ${n} equal parts`);
      sizes = Array.from({ length: n }, (_, i) => Math.min(chunk, dim - i * chunk));
      if (sizes.some((s) => s! <= 0)) c.fail(`cannot split ${dim} into ${numOutputs} chunks of ${chunk}`);
    } else sizes = new Array<null>(n).fill(null);
  }
  if (sizes.length !== n) c.fail(`${sizes.length} split sizes for ${n} outputs`);
  if (isStatic(dim) && sizes.every(isStatic) && sizes.reduce((a, b) => a + b, 0) !== dim)
    c.fail(`split sizes [${sizes}] do not add up to ${dim}`);
  return sizes.map((s) => ({
    type: x.type,
    shape: x.shape!.map((d, i) => (i === axis ? (n === 1 && s === null ? dim : s) : d)),
  }));
};

const slice: ShapeRule = (c) => {
  const x = c.req(0);
  if (!x.shape) return [{ type: x.type, shape: null }];
  const r = x.shape.length;
  let starts: SymValue[] | undefined,
    ends: SymValue[] | undefined,
    axes: SymValue[] | undefined,
    steps: SymValue[] | undefined;
  if (c.opset < 10) {
    starts = attrInts(c.node, 'starts');
    ends = attrInts(c.node, 'ends');
    axes = attrInts(c.node, 'axes');
  } else {
    starts = list(c, 1);
    ends = list(c, 2);
    axes = c.input(3) ? list(c, 3) : undefined;
    steps = c.input(4) ? list(c, 4) : undefined;
    if ((c.input(3) && !axes) || (c.input(4) && !steps)) return [{ type: x.type, shape: x.shape.map(() => null) }];
  }
  if (!starts || !ends) {
    // Unknown bounds: the sliced axes are unknown; without axes, any axis may be.
    const ax = axes?.every(isStatic) ? new Set((axes as number[]).map((a) => normAxis(a, r, c.fail))) : null;
    return [{ type: x.type, shape: x.shape.map((d, i) => (ax && !ax.has(i) ? d : null)) }];
  }
  const shape = [...x.shape];
  (axes ?? starts.map((_, i) => i)).forEach((a, i) => {
    if (!isStatic(a)) {
      shape.fill(null);
      return;
    }
    const ax = normAxis(a, r, c.fail);
    shape[ax] = sliceLength(x.shape![ax]!, starts![i]!, ends![i]!, steps?.[i] ?? 1);
  });
  return [{ type: x.type, shape }];
};

const gather: ShapeRule = (c) => {
  const x = c.req(0),
    idx = c.req(1);
  if (!x.shape || !idx.shape) return [{ type: x.type, shape: null }];
  const axis = normAxis(attrInt(c.node, 'axis', 0), x.shape.length, c.fail);
  return [{ type: x.type, shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)] }];
};

const gatherND: ShapeRule = (c) => {
  const x = c.req(0),
    idx = c.req(1);
  const b = attrInt(c.node, 'batch_dims', 0);
  if (!x.shape || !idx.shape || !isStatic(idx.shape.at(-1))) return [{ type: x.type, shape: null }];
  return [{ type: x.type, shape: [...idx.shape.slice(0, -1), ...x.shape.slice(b + (idx.shape.at(-1) as number))] }];
};

const expand: ShapeRule = (c) => {
  const x = c.req(0);
  const target = list(c, 1);
  if (!target) {
    const t = c.req(1).shape;
    const n = t && isStatic(t[0]) ? t[0] : null;
    return [
      { type: x.type, shape: n !== null && x.shape ? new Array<Dim>(Math.max(n, x.shape.length)).fill(null) : null },
    ];
  }
  const tshape = target.map((v) => dimFromValue(v));
  return [{ type: x.type, shape: broadcastShapes([x.shape, tshape], c.fail) }];
};

const tile: ShapeRule = (c) => {
  const x = c.req(0);
  const reps = list(c, 1);
  if (!x.shape) return [{ type: x.type, shape: null }];
  if (!reps) return [{ type: x.type, shape: x.shape.map(() => null) }];
  if (reps.length !== x.shape.length) c.fail(`${reps.length} repeats for rank ${x.shape.length}`);
  return [{ type: x.type, shape: x.shape.map((d, i) => dimMul(d, dimFromValue(reps[i]))) }];
};

const pad: ShapeRule = (c) => {
  const x = c.req(0);
  if (!x.shape) return [{ type: x.type, shape: null }];
  const r = x.shape.length;
  const pads = c.opset < 11 ? attrInts(c.node, 'pads') : intList(c, 1);
  if (!pads) return [{ type: x.type, shape: x.shape.map(() => null) }];
  const axes = c.opset >= 18 && c.input(3) ? intList(c, 3) : [...Array(r).keys()];
  if (!axes) return [{ type: x.type, shape: x.shape.map(() => null) }];
  if (pads.length !== 2 * axes.length) c.fail(`${pads.length} pads for ${axes.length} axes`);
  const shape = [...x.shape];
  axes.forEach((a, i) => {
    const ax = normAxis(a, r, c.fail);
    shape[ax] = dimAdd(dimAdd(shape[ax]!, pads[i]!), pads[i + axes.length]!);
  });
  return [{ type: x.type, shape }];
};

const constantOfShape: ShapeRule = (c) => {
  const v = c.node.attributes.value;
  const type: ElemType = v?.type === 'tensor' ? v.value.type : 'float32';
  const dims = list(c, 0);
  if (dims) return [{ type, shape: dims.map(dimFromValue) }];
  const s = c.req(0).shape;
  return [{ type, shape: s && isStatic(s[0]) ? new Array<Dim>(s[0]).fill(null) : null }];
};

const range: ShapeRule = (c) => {
  const start = list(c, 0)?.[0],
    limit = list(c, 1)?.[0],
    delta = list(c, 2)?.[0];
  const type = c.req(0).type;
  if (isStatic(start) && isStatic(limit) && isStatic(delta) && delta !== 0) {
    return [{ type, shape: [Math.max(Math.ceil((limit - start) / delta), 0)] }];
  }
  if (start === 0 && delta === 1 && typeof limit === 'string') return [{ type, shape: [limit] }]; // range(batch)
  return [{ type, shape: [null] }];
};

const layerNorm: ShapeRule = (c) => {
  const x = c.req(0);
  const stash = ELEM_TYPE_BY_CODE[attrInt(c.node, 'stash_type', 1)] ?? 'float32';
  if (!x.shape) return [{ ...x }, { type: stash, shape: null }, { type: stash, shape: null }];
  const axis = normAxis(attrInt(c.node, 'axis', -1), x.shape.length, c.fail);
  const stat = x.shape.map((d, i) => (i >= axis ? 1 : d));
  return [{ ...x }, { type: stash, shape: stat }, { type: stash, shape: [...stat] }];
};

const where: ShapeRule = (c) => {
  const cond = c.req(0),
    a = c.req(1),
    b = c.req(2);
  if (a.type !== b.type) c.fail(`input types differ: ${a.type}, ${b.type}`);
  return [{ type: a.type, shape: broadcastShapes([cond.shape, a.shape, b.shape], c.fail) }];
};

const dropout: ShapeRule = (c) => [{ ...c.req(0) }, { type: 'bool', shape: c.req(0).shape }];

const topK: ShapeRule = (c) => {
  const x = c.req(0);
  const k = c.opset < 10 ? attrInt(c.node, 'k', 0) : (list(c, 1)?.[0] ?? null);
  if (!x.shape)
    return [
      { type: x.type, shape: null },
      { type: 'int64', shape: null },
    ];
  const axis = normAxis(attrInt(c.node, 'axis', -1), x.shape.length, c.fail);
  const shape = x.shape.map((d, i) => (i === axis ? dimFromValue(k) : d));
  return [
    { type: x.type, shape },
    { type: 'int64', shape: [...shape] },
  ];
};

const UNARY_SAME = [
  'Identity',
  'Neg',
  'Abs',
  'Reciprocal',
  'Exp',
  'Log',
  'Sqrt',
  'Erf',
  'Sin',
  'Cos',
  'Tan',
  'Tanh',
  'Sigmoid',
  'Relu',
  'LeakyRelu',
  'Elu',
  'Selu',
  'Celu',
  'Softplus',
  'Softsign',
  'HardSigmoid',
  'HardSwish',
  'Mish',
  'Gelu',
  'Floor',
  'Ceil',
  'Round',
  'Sign',
  'Softmax',
  'LogSoftmax',
  'Hardmax',
  'Clip',
  'Trilu',
  'CumSum',
  'InstanceNormalization',
  'GroupNormalization',
  'BatchNormalization',
  'LpNormalization',
  'ScatterND',
  'ScatterElements',
  'Shrink',
  'ThresholdedRelu',
  'Acos',
  'Asin',
  'Atan',
  'Sinh',
  'Cosh',
  'Asinh',
  'Acosh',
  'Atanh',
  'ReverseSequence',
];

/** Standard-domain rules (the nn ops are added by shape-rules-nn.ts). */
export const RULES: Record<string, ShapeRule> = {
  ...Object.fromEntries(UNARY_SAME.map((op) => [op, same])),
  Not: asBool,
  IsNaN: asBool,
  IsInf: asBool,
  Add: broadcasting(),
  Sub: broadcasting(),
  Mul: broadcasting(),
  Div: broadcasting(),
  Mod: broadcasting(),
  Pow: broadcasting(undefined, false),
  PRelu: broadcasting(),
  BitShift: broadcasting(),
  Sum: broadcasting(),
  Mean: broadcasting(),
  Min: broadcasting(),
  Max: broadcasting(),
  Equal: broadcasting('bool'),
  Less: broadcasting('bool'),
  LessOrEqual: broadcasting('bool'),
  Greater: broadcasting('bool'),
  GreaterOrEqual: broadcasting('bool'),
  And: broadcasting('bool'),
  Or: broadcasting('bool'),
  Xor: broadcasting('bool'),
  // Constant's value is read by the driver (shape-inference.ts), which also records its elements.
  Constant: (c) => {
    const t = constantNodeValue(c.node);
    return [{ type: t.type, shape: [...t.dims] }];
  },
  Where: where,
  Cast: cast,
  CastLike: (c) => [{ type: c.req(1).type, shape: c.req(0).shape }],
  Shape: shapeOp,
  Size: () => [{ type: 'int64', shape: [] }],
  Reshape: reshape,
  Flatten: flatten,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Transpose: transpose,
  Concat: concat,
  Split: split,
  Slice: slice,
  Gather: gather,
  GatherND: gatherND,
  GatherElements: (c) => [{ type: c.req(0).type, shape: c.req(1).shape }],
  Expand: expand,
  Tile: tile,
  Pad: pad,
  ConstantOfShape: constantOfShape,
  Range: range,
  ReduceSum: reduce(13),
  ReduceMean: reduce(18),
  ReduceMax: reduce(18),
  ReduceMin: reduce(18),
  ReduceProd: reduce(18),
  ReduceL1: reduce(18),
  ReduceL2: reduce(18),
  ReduceSumSquare: reduce(18),
  ReduceLogSum: reduce(18),
  ReduceLogSumExp: reduce(18),
  ArgMax: argReduce,
  ArgMin: argReduce,
  LayerNormalization: layerNorm,
  Dropout: dropout,
  TopK: topK,
  NonZero: (c) => [{ type: 'int64', shape: [c.req(0).shape?.length ?? null, null] }],
};
