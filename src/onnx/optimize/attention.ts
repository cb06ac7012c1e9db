/**
 * Attention fusion: the scaled dot-product attention of Stable Diffusion exports, written as plain ops,
 *
 *   q, k, v [B, S|L, H·d] → Reshape [B, S, H, d] → Transpose (heads first; K transposed for the product)
 *   → MatMul(q·s₁, kᵀ·s₂) (·s₃) → Softmax(last axis) → MatMul(·, v) → Transpose → Reshape [B, S, H·d]
 *
 * becomes one `com.microsoft` MultiHeadAttention(q, k, v; num_heads H, scale s₁s₂s₃), which ORT runs as a
 * fused (FlashAttention) kernel on WebGPU and never materialises the B×H×S×L score tensor.
 *
 * Shapes it knows: TorchScript exports of diffusers' SDPA attention (√scale multiplied into q and into kᵀ,
 * head-split targets computed from Shape), the project's model builder (scale on the scores, Reshape
 * [0, 0, H, d]), the same with Einsum products ('bhid,bhjd->bhij', 'bhij,bhjd->bhid'), and heads folded into
 * the batch ([B·H, S, d] between a split and an unfold Reshape: diffusers < 0.14, SD 1.4's Einsum attention
 * 'bid,bjd->bij'). Attention with an additive mask (or baddbmm's beta term) is reported as skipped.
 *
 * Every fusion is proved from the graph: head split and merge targets (known values from shape inference),
 * permutations, the scale (constants), one reader for every value inside the pattern, and equal batch and
 * sequence dims of q/k/v. The q/k/v projections (to_q/to_k/to_v MatMuls) and to_out are kept with their
 * names and weights, so LoRA injection finds them as before. Anything not proved stays as it was.
 */
import type { Model, Node } from '../ir.js';
import { attrInt, attrInts, attrString } from '../ir.js';
import { cloneModel, removeDeadNodes, sortGraph } from '../graph.js';
import {
  type PassEntry,
  type PassOptions,
  type PassResult,
  Snapshot,
  freshNodeName,
  isStandard,
  modulePrefix,
  sameDim,
  useMicrosoftDomain,
} from './match.js';

/** A proved attention block, ready to be replaced. */
interface AttentionMatch {
  softmax: Node;
  query: string;
  key: string;
  value: string;
  heads: number;
  headSize: number;
  scale: number;
  /** The head-merge Reshape whose output the fused node produces. */
  merge: Node;
  form: string;
}

class NoMatch extends Error {}
const fail = (reason: string): never => {
  throw new NoMatch(reason);
};

const same = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** How an operand reached the product from its head-split Reshape. */
interface OperandPath {
  reshape: Node;
  /** Operand axis i is the Reshape output's axis perm[i]. */
  perm: number[];
  scale: number;
}

/**
 * Walks up from a product operand through Transposes and multiplications by scalar constants to the Reshape
 * that split the heads.
 */
function traceOperand(snap: Snapshot, value: string, rank: number, what: string): OperandPath {
  let perm = Array.from({ length: rank }, (_, i) => i);
  let scale = 1;
  for (let v = value; ; ) {
    const p = snap.index.producer(v);
    if (!p || !isStandard(p))
      return fail(
        `${what}: ${p ? `${p.domain}::${p.opType} "${p.name}"` : `"${v}" (no producing node)`} before the head split`,
      );
    if (p.opType === 'Transpose') {
      const t = attrInts(p, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
      if (t.length !== rank) fail(`${what}: Transpose "${p.name}" has rank ${t.length}, expected ${rank}`);
      perm = perm.map((i) => t[i]!);
      v = p.inputs[0]!;
    } else if (p.opType === 'Mul' || p.opType === 'Div') {
      const s1 = snap.scalar(p.inputs[1]!),
        s0 = snap.scalar(p.inputs[0]!);
      if (s1 !== undefined && snap.rank(p.inputs[0]!) === rank) {
        scale *= p.opType === 'Mul' ? s1 : 1 / s1;
        v = p.inputs[0]!;
      } else if (p.opType === 'Mul' && s0 !== undefined && snap.rank(p.inputs[1]!) === rank) {
        scale *= s0;
        v = p.inputs[1]!;
      } else return fail(`${what}: ${p.opType} "${p.name}" is not a multiplication by a constant scalar`);
    } else if (p.opType === 'Reshape') {
      return { reshape: p, perm, scale };
    } else {
      return fail(`${what}: ${p.opType} "${p.name}" between the head split and the product`);
    }
  }
}

/** Proves that `reshape` splits [B, S, H·d] into [B, S, H, d]; returns B, S, H, d and the source. */
function checkHeadSplit(
  snap: Snapshot,
  reshape: Node,
  what: string,
): { source: string; heads: number; headSize: number } {
  const source = reshape.inputs[0]!;
  const xs = snap.shape(source);
  const out = snap.shape(reshape.outputs[0]!);
  if (xs?.length !== 3)
    return fail(
      `${what}: head split "${reshape.name}" reads a value of shape ${JSON.stringify(xs)}, expected [B, S, H·d]`,
    );
  if (out?.length !== 4 || typeof out[2] !== 'number' || typeof out[3] !== 'number') {
    return fail(
      `${what}: head split "${reshape.name}" gives ${JSON.stringify(out)}, expected [B, S, H, d] with H and d known`,
    );
  }
  const heads = out[2],
    headSize = out[3];
  if (xs[2] !== heads * headSize)
    fail(`${what}: head split "${reshape.name}" of width ${xs[2]} into ${heads}×${headSize}`);
  if (!mergesLeading(snap, reshape, xs[0]!, xs[1]!, [heads, headSize])) {
    fail(`${what}: cannot prove that head split "${reshape.name}" keeps the batch and sequence dims`);
  }
  return { source, heads, headSize };
}

/**
 * True when Reshape keeps its input's first two dims (B, S) and its target ends in `tail`: from the target's
 * known elements (0 copies a dim when allowzero is 0, -1 is inferred, symbols compare by name), or from the
 * inferred output shape.
 */
function mergesLeading(snap: Snapshot, reshape: Node, b: unknown, s: unknown, tail: number[]): boolean {
  const t = snap.known(reshape.inputs[1]!);
  const copies = attrInt(reshape, 'allowzero', 0) === 0;
  if (t && t.length === 2 + tail.length && tail.every((x, i) => t[2 + i] === x)) {
    const isB = (copies && t[0] === 0) || sameDim(t[0] as never, b as never);
    const isS = (copies && t[1] === 0) || sameDim(t[1] as never, s as never);
    if ((isB && (isS || t[1] === -1)) || (t[0] === -1 && isS)) return true;
  }
  const out = snap.shape(reshape.outputs[0]!);
  return (
    !!out &&
    out.length === 2 + tail.length &&
    sameDim(out[0], b as never) &&
    sameDim(out[1], s as never) &&
    tail.every((x, i) => out[2 + i] === x)
  );
}

/**
 * The activation a linear projection reads (MatMul by a 2-D constant weight, optionally + a 1-D bias): the
 * projection keeps its leading dims, so two projections of one activation have the same batch and length.
 */
function projected(snap: Snapshot, value: string): string {
  let v = value;
  const add = snap.producedBy(v, 'Add');
  if (add) {
    const [a, b] = add.inputs as [string, string];
    if (snap.rank(b) === 1 && snap.index.constant(b)) v = a;
    else if (snap.rank(a) === 1 && snap.index.constant(a)) v = b;
  }
  const mm = snap.producedBy(v, 'MatMul');
  return mm && snap.rank(mm.inputs[1]!) === 2 && snap.index.constant(mm.inputs[1]!) ? mm.inputs[0]! : v;
}

/**
 * The operands of a product (MatMul, or a two-operand Einsum) and the axes its right operand must have: for
 * rank 4 relative to the head split [B, L, H, d], for rank 3 (heads folded into the batch) to [B·H, L, d].
 */
function productOperands(
  node: Node,
  kind: 'scores' | 'output',
  rank: number,
): { a: string; b: string; bPerm: number[] } {
  const asIs = rank === 4 ? [0, 2, 1, 3] : [0, 1, 2];
  const transposed = rank === 4 ? [0, 2, 3, 1] : [0, 2, 1];
  if (node.opType === 'MatMul')
    return { a: node.inputs[0]!, b: node.inputs[1]!, bPerm: kind === 'scores' ? transposed : asIs };
  const eq = (attrString(node, 'equation') ?? '').replace(/\s+/g, '');
  const m = new RegExp(`^([a-zA-Z]{${rank}}),([a-zA-Z]{${rank}})->([a-zA-Z]{${rank}})$`).exec(eq);
  if (!m) return fail(`Einsum "${node.name}" equation "${eq}" is not a ${rank}-D attention product`);
  const [x, y, out] = [m[1]!, m[2]!, m[3]!];
  const lead = x.slice(0, rank - 2),
    ii = x[rank - 2]!;
  if (y.slice(0, rank - 2) !== lead || new Set(x).size !== rank || new Set(y).size !== rank)
    fail(`Einsum "${node.name}" "${eq}" does not share the batch axes`);
  const tail = y.slice(rank - 2);
  if (kind === 'scores') {
    const dd = x[rank - 1]!,
      j = [...y].find((c) => !x.includes(c));
    if (!j || out !== `${lead}${ii}${j}`) fail(`Einsum "${node.name}" "${eq}" is not q·kᵀ`);
    if (tail === `${j}${dd}`) return { a: node.inputs[0]!, b: node.inputs[1]!, bPerm: asIs };
    if (tail === `${dd}${j}`) return { a: node.inputs[0]!, b: node.inputs[1]!, bPerm: transposed };
  } else {
    const j = x[rank - 1]!,
      dd = [...y].find((c) => !x.includes(c));
    if (dd && tail === `${j}${dd}` && out === `${lead}${ii}${dd}`)
      return { a: node.inputs[0]!, b: node.inputs[1]!, bPerm: asIs };
  }
  return fail(`Einsum "${node.name}" "${eq}" is not an attention product`);
}

/**
 * Heads folded into the batch (diffusers < 0.14, SD 1.4's Einsum attention): the operand's path went
 * split [B, S, H, d] → Transpose → fold Reshape [B·H, S, d]. Continues `path` (which stopped at the fold)
 * up to the split, and proves the fold: it keeps d last and S (or, static, B·H) — the rest follows from the
 * element count.
 */
function unfold(snap: Snapshot, path: OperandPath, what: string): OperandPath {
  const fold = path.reshape;
  const inner = traceOperand(snap, fold.inputs[0]!, 4, what);
  if (!same(inner.perm, [0, 2, 1, 3]))
    fail(`${what}: heads reach the fold "${fold.name}" with axes [${inner.perm}] of [B, S, H, d], expected [0,2,1,3]`);
  const ins = snap.shape(fold.inputs[0]!),
    outs = snap.shape(fold.outputs[0]!);
  const ok =
    !!ins &&
    !!outs &&
    ins.length === 4 &&
    outs.length === 3 &&
    typeof ins[3] === 'number' &&
    outs[2] === ins[3] &&
    (sameDim(outs[1], ins[2]) ||
      (typeof outs[0] === 'number' &&
        typeof ins[0] === 'number' &&
        typeof ins[1] === 'number' &&
        outs[0] === ins[0] * ins[1]));
  if (!ok)
    fail(
      `${what}: cannot prove that "${fold.name}" folds [B, H, S, d] into [B·H, S, d] (${JSON.stringify(ins)} → ${JSON.stringify(outs)}; static input shapes prove it)`,
    );
  return { reshape: inner.reshape, perm: path.perm, scale: path.scale * inner.scale };
}

/** Proves that `unfold` turns [B·H, S, d] back into [B, H, S, d] for the given B, H, d. */
function checkUnfold(snap: Snapshot, reshape: Node, batch: unknown, heads: number, headSize: number): void {
  const ins = snap.shape(reshape.inputs[0]!),
    outs = snap.shape(reshape.outputs[0]!);
  const ok =
    !!ins &&
    !!outs &&
    ins.length === 3 &&
    outs.length === 4 &&
    outs[1] === heads &&
    outs[3] === headSize &&
    ins[2] === headSize &&
    (sameDim(outs[0], batch as never) ||
      sameDim(outs[2], ins[1]) ||
      (typeof ins[0] === 'number' && outs[0] === ins[0] / heads));
  if (!ok)
    fail(
      `cannot prove that "${reshape.name}" unfolds [B·H, S, d] into [B, ${heads}, S, ${headSize}] (${JSON.stringify(ins)} → ${JSON.stringify(outs)})`,
    );
}

function matchAt(snap: Snapshot, softmax: Node, opset: number): AttentionMatch {
  // 1. Softmax over the last axis of 4-D scores.
  const scores = softmax.inputs[0]!;
  const rank = snap.rank(scores);
  if (rank !== 4 && rank !== 3)
    return fail(`scores of rank ${rank ?? 'unknown'}, expected 4 (or 3 with heads folded into the batch)`);
  const folded = rank === 3;
  const axis = attrInt(softmax, 'axis', opset >= 13 ? -1 : 1);
  if (axis !== -1 && axis !== rank - 1) fail(`Softmax over axis ${axis}, not the last`);

  // 2. Up from the Softmax: constant scalings of the scores, then the q·kᵀ product.
  let scale = 1;
  let v = scores;
  let reader: Node = softmax;
  let product: Node | undefined;
  for (;;) {
    if (!snap.onlyReadBy(v, reader)) fail(`"${v}" is also read outside the attention`);
    const p = snap.index.producer(v);
    if (!p || !isStandard(p)) return fail(`scores come from ${p ? `${p.domain}::${p.opType}` : 'no node'}`);
    if (p.opType === 'MatMul' || p.opType === 'Einsum') {
      product = p;
      break;
    }
    if (p.opType === 'Add' || p.opType === 'Where') fail(`${p.opType} "${p.name}" on the scores (a mask) is not fused`);
    if (p.opType !== 'Mul' && p.opType !== 'Div') fail(`${p.opType} "${p.name}" between the scores and the Softmax`);
    const s1 = snap.scalar(p.inputs[1]!),
      s0 = snap.scalar(p.inputs[0]!);
    if (s1 !== undefined && snap.rank(p.inputs[0]!) === rank) {
      scale *= p.opType === 'Mul' ? s1 : 1 / s1;
      v = p.inputs[0]!;
    } else if (p.opType === 'Mul' && s0 !== undefined && snap.rank(p.inputs[1]!) === rank) {
      scale *= s0;
      v = p.inputs[1]!;
    } else fail(`${p.opType} "${p.name}" on the scores is not by a constant scalar`);
    reader = p;
  }
  const qk = productOperands(product, 'scores', rank);
  const trace = (value: string, what: string): OperandPath => {
    const path = traceOperand(snap, value, rank, what);
    return folded ? unfold(snap, path, what) : path;
  };
  const q = trace(qk.a, 'query');
  const k = trace(qk.b, 'key');
  const qPerm = folded ? [0, 1, 2] : [0, 2, 1, 3];
  const layout = folded ? '[B·H, S, d]' : '[B, S, H, d]';
  if (!same(q.perm, qPerm)) fail(`query reaches the product with axes [${q.perm}] of ${layout}, expected [${qPerm}]`);
  if (!same(k.perm, qk.bPerm))
    fail(`key reaches the product with axes [${k.perm}] of ${layout}, expected [${qk.bPerm}]`);

  // 3. Down from the Softmax: the product with v, the heads moved back and merged.
  const probs = softmax.outputs[0]!;
  const readers = snap.readers(probs);
  const pv = readers.length === 1 ? readers[0] : undefined;
  if (!pv || !isStandard(pv) || (pv.opType !== 'MatMul' && pv.opType !== 'Einsum'))
    fail('the probabilities are not read by one product with v');
  const pvOps = productOperands(pv!, 'output', rank);
  if (pvOps.a !== probs) fail(`the probabilities are the right operand of "${pv!.name}"`);
  const vp = trace(pvOps.b, 'value');
  if (!same(vp.perm, pvOps.bPerm))
    fail(`value reaches the product with axes [${vp.perm}] of ${layout}, expected [${pvOps.bPerm}]`);
  if (vp.scale !== 1) fail('value is scaled before the product');
  let perm = [0, 1, 2, 3];
  let out = pv!.outputs[0]!;
  let unfoldNode: Node | undefined;
  if (folded) {
    const r = snap.readers(out);
    unfoldNode = r.length === 1 && r[0] && isStandard(r[0]) && r[0].opType === 'Reshape' ? r[0] : undefined;
    if (!unfoldNode) fail('the folded attention output is not read by one Reshape back to [B, H, S, d]');
    out = unfoldNode!.outputs[0]!;
  }
  let merge: Node | undefined;
  for (;;) {
    const r = snap.readers(out);
    const next = r.length === 1 ? r[0] : undefined;
    if (!next || !isStandard(next)) return fail(`the attention output "${out}" is not read by one node`);
    if (next.opType === 'Transpose') {
      const t = attrInts(next, 'perm') ?? [3, 2, 1, 0];
      perm = t.map((i) => perm[i]!);
      out = next.outputs[0]!;
      continue;
    }
    if (next.opType !== 'Reshape') fail(`${next.opType} "${next.name}" after the attention, expected the head merge`);
    merge = next;
    break;
  }
  if (!same(perm, [0, 2, 1, 3])) fail(`heads are merged from axes [${perm}] of [B, H, S, d], expected [0,2,1,3]`);

  // 4. The three head splits agree with each other and with the merge.
  const qs = checkHeadSplit(snap, q.reshape, 'query');
  const ks = checkHeadSplit(snap, k.reshape, 'key');
  const vs = checkHeadSplit(snap, vp.reshape, 'value');
  if (qs.heads !== ks.heads || qs.heads !== vs.heads || qs.headSize !== ks.headSize || qs.headSize !== vs.headSize) {
    fail(`heads differ: q ${qs.heads}×${qs.headSize}, k ${ks.heads}×${ks.headSize}, v ${vs.heads}×${vs.headSize}`);
  }
  const [qx, kx, vx] = [snap.shape(qs.source)!, snap.shape(ks.source)!, snap.shape(vs.source)!];
  const [qa, ka, va] = [projected(snap, qs.source), projected(snap, ks.source), projected(snap, vs.source)];
  if (!(sameDim(qx[0], kx[0]) || qa === ka) || !(sameDim(qx[0], vx[0]) || qa === va))
    fail(`cannot prove q, k, v have the same batch (${qx[0]}, ${kx[0]}, ${vx[0]})`);
  if (ka !== va && !sameDim(kx[1], vx[1])) fail(`cannot prove k and v have the same length (${kx[1]}, ${vx[1]})`);
  if (unfoldNode) checkUnfold(snap, unfoldNode, qx[0], qs.heads, qs.headSize);
  const mergeIn = snap.shape(merge!.inputs[0]!);
  if (mergeIn?.length !== 4 || !mergesLeading(snap, merge!, mergeIn[0], mergeIn[1], [qs.heads * qs.headSize])) {
    fail(`cannot prove that "${merge!.name}" merges [B, S, H, d] into [B, S, H·d]`);
  }
  const form = `${folded ? 'heads folded into the batch, ' : ''}${product.opType === 'Einsum' ? 'einsum' : 'matmul'}, scale on ${[q.scale !== 1 && 'q', k.scale !== 1 && 'k', scale !== 1 && 'scores'].filter(Boolean).join('+') || 'nothing'}`;
  return {
    softmax,
    query: qs.source,
    key: ks.source,
    value: vs.source,
    heads: qs.heads,
    headSize: qs.headSize,
    scale: q.scale * k.scale * scale,
    merge: merge!,
    form,
  };
}

/**
 * Replaces every proved attention block by com.microsoft MultiHeadAttention. Returns a new model (the input
 * is not changed; tensor data is shared) and a report of what was fused and what was left alone and why.
 */
export function fuseAttention(model: Model, opts: PassOptions = {}): PassResult {
  const out = cloneModel(model);
  const g = out.graph;
  const snap = new Snapshot(out, opts.inputShapes);
  const opset = out.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx')!.version;
  const fused: PassEntry[] = [];
  const skipped: PassEntry[] = [];
  const matches: AttentionMatch[] = [];
  for (const node of g.nodes) {
    if (node.opType !== 'Softmax' || !isStandard(node)) continue;
    try {
      matches.push(matchAt(snap, node, opset));
    } catch (err) {
      if (!(err instanceof NoMatch)) throw err;
      skipped.push({ anchor: node.name, reason: err.message });
    }
  }
  if (matches.length === 0) return { model: out, report: { pass: 'attention', fused, skipped } };

  // The fused node produces the merge's output under its name, so readers (to_out) need no rewiring; the
  // now unread split/score nodes go with dead-code removal.
  useMicrosoftDomain(out);
  const taken = new Set<string>();
  const replace = new Map<Node, Node>();
  for (const m of matches) {
    const name = freshNodeName(g, `${modulePrefix(m.softmax.name)}/MultiHeadAttention`, taken);
    replace.set(m.merge, {
      name,
      opType: 'MultiHeadAttention',
      domain: 'com.microsoft',
      inputs: [m.query, m.key, m.value],
      outputs: [m.merge.outputs[0]!],
      attributes: { num_heads: { type: 'int', value: m.heads }, scale: { type: 'float', value: Math.fround(m.scale) } },
    });
    fused.push({
      anchor: m.softmax.name,
      fused: name,
      details: {
        heads: m.heads,
        headSize: m.headSize,
        scale: m.scale,
        form: m.form,
        query: m.query,
        key: m.key,
        value: m.value,
      },
    });
  }
  g.nodes = g.nodes.map((n) => replace.get(n) ?? n);
  removeDeadNodes(g);
  sortGraph(g);
  g.valueInfo = [];
  return { model: out, report: { pass: 'attention', fused, skipped } };
}
