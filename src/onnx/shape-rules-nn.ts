/**
 * Shape rules for the linear-algebra, convolution, pooling, resize and attention ops (see shape-rules.ts for
 * the rest), and the com.microsoft contrib ops vidprior meets.
 */
import { type Dim, attrInt, attrInts, attrString } from './ir.js';
import {
  type RuleContext,
  type ShapeInfo,
  type ShapeRule,
  broadcastShapes,
  convLength,
  dimMul,
  fmt,
  isStatic,
  mergeDim,
} from './shape-dims.js';

function sameTypes(c: RuleContext, infos: ShapeInfo[]): void {
  if (infos.some((x) => x.type !== infos[0]!.type))
    c.fail(`input types differ: ${infos.map((x) => x.type).join(', ')}`);
}

const matMul: ShapeRule = (c) => {
  const a = c.req(0),
    b = c.req(1);
  sameTypes(c, [a, b]);
  if (!a.shape || !b.shape) return [{ type: a.type, shape: null }];
  if (a.shape.length === 0 || b.shape.length === 0) c.fail('MatMul inputs must not be scalars');
  const as = a.shape.length === 1 ? [1, a.shape[0]!] : a.shape;
  const bs = b.shape.length === 1 ? [b.shape[0]!, 1] : b.shape;
  mergeDim(as.at(-1)!, bs.at(-2)!, c.fail, `inner dims of ${fmt(a.shape)} × ${fmt(b.shape)}`);
  const batch = broadcastShapes([as.slice(0, -2), bs.slice(0, -2)], c.fail)!;
  const shape: Dim[] = [...batch];
  if (a.shape.length > 1) shape.push(as.at(-2)!);
  if (b.shape.length > 1) shape.push(bs.at(-1)!);
  return [{ type: a.type, shape }];
};

const gemm: ShapeRule = (c) => {
  const a = c.req(0),
    b = c.req(1);
  sameTypes(c, [a, b]);
  if (!a.shape || !b.shape) return [{ type: a.type, shape: [null, null] }];
  if (a.shape.length !== 2 || b.shape.length !== 2)
    c.fail(`Gemm needs 2-D inputs, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
  const [m, ka] = attrInt(c.node, 'transA', 0) ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
  const [kb, n] = attrInt(c.node, 'transB', 0) ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
  mergeDim(ka, kb, c.fail, `inner dims of ${fmt(a.shape)} × ${fmt(b.shape)}`);
  const shape: Dim[] = [m, n];
  const bias = c.input(2);
  if (bias?.shape) broadcastShapes([shape, bias.shape], c.fail);
  return [{ type: a.type, shape }];
};

/** Spatial attributes shared by Conv, ConvTranspose and pooling. */
function spatial(c: RuleContext, nd: number, kernel: number[]) {
  const strides = attrInts(c.node, 'strides', new Array<number>(nd).fill(1));
  const dilations = attrInts(c.node, 'dilations', new Array<number>(nd).fill(1));
  const pads = attrInts(c.node, 'pads', new Array<number>(2 * nd).fill(0));
  const autoPad = attrString(c.node, 'auto_pad', 'NOTSET');
  if (kernel.length !== nd || strides.length !== nd || dilations.length !== nd || pads.length !== 2 * nd) {
    c.fail(
      `kernel [${kernel}], strides [${strides}], dilations [${dilations}] or pads [${pads}] do not fit ${nd} spatial dims`,
    );
  }
  return { strides, dilations, pads, autoPad };
}

const conv: ShapeRule = (c) => {
  const x = c.req(0),
    w = c.req(1);
  sameTypes(c, [x, w]);
  if (!x.shape || !w.shape) return [{ type: x.type, shape: x.shape ? x.shape.map(() => null) : null }];
  const nd = x.shape.length - 2;
  if (nd < 1 || w.shape.length !== nd + 2)
    c.fail(`input ${fmt(x.shape)} and weight ${fmt(w.shape)} do not fit a convolution`);
  const group = attrInt(c.node, 'group', 1);
  if (isStatic(x.shape[1]) && isStatic(w.shape[1]) && x.shape[1] !== w.shape[1] * group) {
    c.fail(
      `input has ${x.shape[1]} channels but weight ${fmt(w.shape)} with group ${group} expects ${w.shape[1] * group}`,
    );
  }
  const kernel = attrInts(
    c.node,
    'kernel_shape',
    w.shape.slice(2).map((d) => (isStatic(d) ? d : -1)),
  );
  const s = spatial(c, nd, kernel);
  const out = x.shape
    .slice(2)
    .map((n, i) =>
      kernel[i]! < 0
        ? null
        : convLength(n, kernel[i]!, s.strides[i]!, s.dilations[i]!, s.pads[i]!, s.pads[i + nd]!, s.autoPad),
    );
  return [{ type: x.type, shape: [x.shape[0]!, w.shape[0]!, ...out] }];
};

const convTranspose: ShapeRule = (c) => {
  const x = c.req(0),
    w = c.req(1);
  sameTypes(c, [x, w]);
  if (!x.shape || !w.shape) return [{ type: x.type, shape: x.shape ? x.shape.map(() => null) : null }];
  const nd = x.shape.length - 2;
  if (nd < 1 || w.shape.length !== nd + 2)
    c.fail(`input ${fmt(x.shape)} and weight ${fmt(w.shape)} do not fit a transposed convolution`);
  if (isStatic(x.shape[1]) && isStatic(w.shape[0]) && x.shape[1] !== w.shape[0])
    c.fail(`input has ${x.shape[1]} channels but weight ${fmt(w.shape)} expects ${w.shape[0]}`);
  const group = attrInt(c.node, 'group', 1);
  const kernel = attrInts(
    c.node,
    'kernel_shape',
    w.shape.slice(2).map((d) => (isStatic(d) ? d : -1)),
  );
  const s = spatial(c, nd, kernel);
  const outPad = attrInts(c.node, 'output_padding', new Array<number>(nd).fill(0));
  const outShape = attrInts(c.node, 'output_shape', []);
  const out = x.shape.slice(2).map((n, i): Dim => {
    if (outShape.length) return outShape[outShape.length - nd + i]!;
    if (!isStatic(n) || kernel[i]! < 0) return null;
    if (s.autoPad === 'SAME_UPPER' || s.autoPad === 'SAME_LOWER') return n * s.strides[i]!;
    const pads = s.autoPad === 'VALID' ? 0 : s.pads[i]! + s.pads[i + nd]!;
    return s.strides[i]! * (n - 1) + outPad[i]! + (kernel[i]! - 1) * s.dilations[i]! + 1 - pads;
  });
  return [{ type: x.type, shape: [x.shape[0]!, dimMul(w.shape[1]!, group), ...out] }];
};

const pool: ShapeRule = (c) => {
  const x = c.req(0);
  if (!x.shape)
    return [
      { type: x.type, shape: null },
      { type: 'int64', shape: null },
    ];
  const nd = x.shape.length - 2;
  const kernel = attrInts(c.node, 'kernel_shape');
  if (!kernel) return c.fail('pooling needs kernel_shape');
  const s = spatial(c, nd, kernel);
  const ceil = attrInt(c.node, 'ceil_mode', 0) !== 0;
  const shape: Dim[] = [
    x.shape[0]!,
    x.shape[1]!,
    ...x.shape
      .slice(2)
      .map((n, i) =>
        convLength(n, kernel[i]!, s.strides[i]!, s.dilations[i]!, s.pads[i]!, s.pads[i + nd]!, s.autoPad, ceil),
      ),
  ];
  return [
    { type: x.type, shape },
    { type: 'int64', shape: [...shape] },
  ];
};

const globalPool: ShapeRule = (c) => {
  const x = c.req(0);
  return [{ type: x.type, shape: x.shape ? x.shape.map((d, i) => (i < 2 ? d : 1)) : null }];
};

/** Resize (opset 10: X, scales; 11+: X, roi, scales, sizes; 18+: axes attribute) and Upsample. */
const resize: ShapeRule = (c) => {
  const x = c.req(0);
  if (!x.shape) return [{ type: x.type, shape: null }];
  const r = x.shape.length;
  const axes = (c.opset >= 18 ? attrInts(c.node, 'axes') : undefined) ?? [...Array(r).keys()];
  const scalesIndex = c.node.opType === 'Upsample' || c.opset < 11 ? 1 : 2;
  const sizes = c.opset >= 11 && c.node.opType === 'Resize' && c.input(3) ? c.value(3)?.values : undefined;
  const scales =
    c.node.opType === 'Upsample' && c.opset < 9
      ? attrFloats(c)
      : c.input(scalesIndex)
        ? c.value(scalesIndex)?.values
        : undefined;
  const shape = [...x.shape];
  if (sizes?.length) {
    if (sizes.length !== axes.length) c.fail(`${sizes.length} sizes for ${axes.length} axes`);
    axes.forEach((a, i) => {
      shape[a < 0 ? a + r : a] = isStatic(sizes[i]) ? sizes[i] : null;
    });
  } else if (scales?.length) {
    if (scales.length !== axes.length) c.fail(`${scales.length} scales for ${axes.length} axes`);
    axes.forEach((a, i) => {
      const ax = a < 0 ? a + r : a;
      const n = shape[ax]!,
        s = scales[i];
      shape[ax] = isStatic(s) ? (s === 1 ? n : isStatic(n) ? Math.floor(n * s) : null) : null;
    });
  } else if (c.input(3) || (c.input(scalesIndex) && c.req(scalesIndex).shape?.[0] !== 0)) {
    axes.forEach((a) => {
      shape[a < 0 ? a + r : a] = null;
    });
  }
  return [{ type: x.type, shape }];
};

function attrFloats(c: RuleContext): number[] | undefined {
  const a = c.node.attributes.scales;
  return a?.type === 'floats' ? a.value : undefined;
}

/** Einsum: letters name dims; '...' broadcasts; no '->' means the sorted letters that appear once. */
const einsum: ShapeRule = (c) => {
  const eq = attrString(c.node, 'equation', '').replace(/\s+/g, '');
  const [lhs, rhs] = eq.split('->') as [string, string | undefined];
  const terms = lhs.split(',');
  const ins = terms.map((_, i) => c.req(i));
  sameTypes(c, ins);
  if (terms.length !== c.inputCount) c.fail(`equation "${eq}" has ${terms.length} operands for ${c.inputCount} inputs`);
  if (ins.some((x) => !x.shape)) return [{ type: ins[0]!.type, shape: null }];
  const dims = new Map<string, Dim>();
  const ellipses: Dim[][] = [];
  const counts = new Map<string, number>();
  terms.forEach((term, i) => {
    const shape = ins[i]!.shape!;
    const letters = term.replace('...', '').split('');
    const ell = term.includes('...') ? shape.length - letters.length : 0;
    if (ell < 0 || (!term.includes('...') && letters.length !== shape.length))
      c.fail(`operand ${i} "${term}" does not fit shape ${fmt(shape)}`);
    const at = term.indexOf('...');
    if (ell > 0 || term.includes('...')) ellipses.push(shape.slice(at, at + ell));
    letters.forEach((l, j) => {
      const d = shape[j < at || at < 0 ? j : j + ell]!;
      counts.set(l, (counts.get(l) ?? 0) + 1);
      const prev = dims.get(l);
      dims.set(
        l,
        prev === undefined ? d : prev === 1 ? d : d === 1 ? prev : mergeDim(prev, d, c.fail, `dims of "${l}"`),
      );
    });
  });
  const ellShape = ellipses.length ? broadcastShapes(ellipses, c.fail)! : [];
  const out =
    rhs ??
    `${ellipses.length ? '...' : ''}${[...counts]
      .filter(([, n]) => n === 1)
      .map(([l]) => l)
      .sort()
      .join('')}`;
  const shape: Dim[] = [];
  for (let i = 0; i < out.length; i++) {
    if (out.startsWith('...', i)) {
      shape.push(...ellShape);
      i += 2;
      continue;
    }
    const d = dims.get(out[i]!);
    if (d === undefined) return c.fail(`output letter "${out[i]}" of "${eq}" appears in no operand`);
    shape.push(d);
  }
  return [{ type: ins[0]!.type, shape }];
};

/** com.microsoft MultiHeadAttention with 3-D query/key/value (the layout vidprior's graphs use). */
const multiHeadAttention: ShapeRule = (c) => {
  const q = c.req(0);
  const heads = attrInt(c.node, 'num_heads', 0);
  const k = c.input(1),
    v = c.input(2),
    pastK = c.input(6);
  const batch = q.shape?.[0] ?? null,
    seq = q.shape?.[1] ?? null;
  let vHidden: Dim = null,
    kvLen: Dim = null,
    headSize: Dim = null;
  if (v?.shape?.length === 3) {
    vHidden = v.shape[2]!;
    kvLen = v.shape[1]!;
  } else if (v?.shape?.length === 4) {
    vHidden = dimMul(v.shape[1]!, v.shape[3]!);
    kvLen = v.shape[2]!;
  } else if (!k && q.shape?.length === 5) {
    vHidden = dimMul(q.shape[2]!, q.shape[4]!);
    kvLen = seq;
  }
  const qHidden = q.shape?.length === 3 ? q.shape[2]! : null;
  if (isStatic(qHidden) && heads > 0) headSize = qHidden / heads;
  const total =
    pastK?.shape && isStatic(pastK.shape[2]) && isStatic(kvLen) ? pastK.shape[2] + kvLen : pastK ? null : kvLen;
  const present: ShapeInfo = { type: q.type, shape: [batch, heads || null, total, headSize] };
  return [{ type: q.type, shape: [batch, seq, vHidden] }, present, { ...present, shape: [...present.shape!] }];
};

/** ONNX Attention (opset 23): 4-D [B, heads, S, H] inputs, or 3-D [B, S, hidden] with the head counts as attributes. */
const attention: ShapeRule = (c) => {
  const q = c.req(0),
    k = c.req(1),
    v = c.req(2);
  const pastK = c.input(4);
  if (!q.shape || !k.shape || !v.shape) return c.node.outputs.map(() => ({ type: q.type, shape: null }));
  let y: Dim[], kvHeads: Dim, kvLen: Dim, headK: Dim, headV: Dim, batch: Dim;
  if (q.shape.length === 4) {
    batch = q.shape[0]!;
    kvHeads = k.shape[1]!;
    kvLen = k.shape[2]!;
    headK = k.shape[3]!;
    headV = v.shape[3]!;
    y = [batch, q.shape[1]!, q.shape[2]!, headV];
  } else {
    const qHeads = attrInt(c.node, 'q_num_heads', 0),
      kvN = attrInt(c.node, 'kv_num_heads', 0);
    if (!qHeads || !kvN) return c.fail('3-D Attention needs q_num_heads and kv_num_heads');
    batch = q.shape[0]!;
    kvHeads = kvN;
    kvLen = k.shape[1]!;
    headK = isStatic(k.shape[2]) ? k.shape[2] / kvN : null;
    headV = isStatic(v.shape[2]) ? v.shape[2] / kvN : null;
    y = [batch, q.shape[1]!, dimMul(qHeads, headV)];
  }
  const total: Dim =
    pastK?.shape && isStatic(pastK.shape[2]) && isStatic(kvLen) ? pastK.shape[2] + kvLen : pastK ? null : kvLen;
  const outs: ShapeInfo[] = [
    { type: q.type, shape: y },
    { type: q.type, shape: [batch, kvHeads, total, headK] },
    { type: q.type, shape: [batch, kvHeads, total, headV] },
  ];
  if (c.node.outputs.length > 3) outs.push({ type: q.type, shape: null }); // qk_matmul_output (mode-dependent)
  return outs;
};

export const NN_RULES: Record<string, ShapeRule> = {
  Attention: attention,
  RMSNormalization: (c) => [{ ...c.req(0) }],
  RotaryEmbedding: (c) => [{ ...c.req(0) }],
  MatMul: matMul,
  Gemm: gemm,
  Conv: conv,
  ConvTranspose: convTranspose,
  MaxPool: pool,
  AveragePool: pool,
  LpPool: pool,
  GlobalAveragePool: globalPool,
  GlobalMaxPool: globalPool,
  GlobalLpPool: globalPool,
  Resize: resize,
  Upsample: resize,
  Einsum: einsum,
};

/** com.microsoft domain rules. */
export const MS_RULES: Record<string, ShapeRule> = {
  MultiHeadAttention: multiHeadAttention,
  Gelu: (c) => [{ ...c.req(0) }],
  FastGelu: (c) => [{ ...c.req(0) }],
  BiasGelu: (c) => [{ ...c.req(0) }],
  QuickGelu: (c) => [{ ...c.req(0) }],
  // (X + bias) split in halves along the last axis: [..., D] → [..., D/2] (src/onnx/optimize emits it).
  BiasSplitGelu: (c) => {
    const x = c.req(0);
    if (!x.shape) return [{ type: x.type, shape: null }];
    const last = x.shape[x.shape.length - 1];
    return [{ type: x.type, shape: [...x.shape.slice(0, -1), typeof last === 'number' ? last / 2 : null] }];
  },
};
