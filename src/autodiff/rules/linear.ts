/**
 * Gradient rules of the linear-algebra operators: MatMul (batched, broadcast, 1-D operands), Gemm (transA,
 * transB, alpha, beta, broadcast C) and Einsum (per operand, an Einsum of the output gradient with the other
 * operands).
 */
import { type GradRule, type RuleContext, sameShape } from './context.js';
import { attrFloat, attrInt, attrString } from '../../onnx/ir.js';

/** Swaps the last two axes of a rank-r value. */
function swapLast(ctx: RuleContext, x: string, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return ctx.transpose(x, perm);
}

const matMul: GradRule = {
  backward: (ctx, [dY]) => {
    const a = ctx.input(0),
      b = ctx.input(1);
    const aShape = ctx.shape(a),
      bShape = ctx.shape(b);
    if (aShape.length === 1 && bShape.length === 1) {
      return [ctx.needs(0) ? ctx.mul(dY!, b) : undefined, ctx.needs(1) ? ctx.mul(dY!, a) : undefined];
    }
    // 1. Lift 1-D operands to matrices as MatMul does ([K] → [1,K] on the left, [K,1] on the right).
    const a2Shape = aShape.length === 1 ? [1, aShape[0]!] : aShape;
    const b2Shape = bShape.length === 1 ? [bShape[0]!, 1] : bShape;
    const a2 = aShape.length === 1 ? ctx.reshape(a, a2Shape) : a;
    const b2 = bShape.length === 1 ? ctx.reshape(b, b2Shape) : b;
    const batch = broadcastBatch(a2Shape.slice(0, -2), b2Shape.slice(0, -2));
    const y2Shape = [...batch, a2Shape[a2Shape.length - 2]!, b2Shape[b2Shape.length - 1]!];
    const dY2 = sameShape(y2Shape, ctx.shape(ctx.output())) ? dY! : ctx.reshape(dY!, y2Shape);

    // 2. dA = dY·Bᵀ, summed over the batch axes A was broadcast along. A 2-D weight B: one Gemm(transB) over
    //    the flattened rows, so no Transpose of the weight exists (ORT would fold one of a constant weight
    //    into a second copy of it at session creation).
    let dA: string | undefined;
    if (ctx.needs(0) && b2Shape.length === 2) {
      const rows = a2Shape.slice(0, -1).reduce((x, d) => x * d, 1);
      const n = b2Shape[1]!;
      const flat = ctx.op('Gemm', [ctx.reshape(dY2, [rows, n]), b2], { transB: 1 });
      dA = ctx.reshape(flat, aShape);
    } else if (ctx.needs(0)) {
      const raw = ctx.op('MatMul', [dY2, swapLast(ctx, b2, b2Shape.length)]);
      const reduced = ctx.unbroadcast(
        raw,
        [...batch, a2Shape[a2Shape.length - 2]!, a2Shape[a2Shape.length - 1]!],
        a2Shape,
      );
      dA = a2 === a ? reduced : ctx.reshape(reduced, aShape);
    }
    // 3. dB = Aᵀ·dY. A 2-D weight under batched activations: flatten the batch into rows and use one
    //    Gemm(transA) instead of a batched product and a reduction (no [batch, K, N] intermediate).
    let dB: string | undefined;
    if (ctx.needs(1)) {
      const k = a2Shape[a2Shape.length - 1]!;
      const n = b2Shape[b2Shape.length - 1]!;
      if (b2Shape.length === 2 && a2Shape.length > 2) {
        const rows = a2Shape.slice(0, -1).reduce((x, d) => x * d, 1);
        const aFlat = ctx.reshape(a2, [rows, k]);
        const dYFlat = ctx.reshape(dY2, [rows, n]);
        dB = ctx.op('Gemm', [aFlat, dYFlat], { transA: 1 });
      } else {
        const raw = ctx.op('MatMul', [swapLast(ctx, a2, a2Shape.length), dY2]);
        dB = ctx.unbroadcast(raw, [...batch, k, n], b2Shape);
      }
      if (b2 !== b) dB = ctx.reshape(dB, bShape);
    }
    return [dA, dB];
  },
};

function broadcastBatch(a: number[], b: number[]): number[] {
  const r = Math.max(a.length, b.length);
  return Array.from({ length: r }, (_, i) => {
    const x = a[i - (r - a.length)] ?? 1,
      y = b[i - (r - b.length)] ?? 1;
    return x === 1 ? y : x;
  });
}

// Y = alpha·op(A)·op(B) + beta·C, op = optional transpose. Each gradient is one Gemm whose flags fold the
// transposes (no explicit Transpose node).
const gemm: GradRule = {
  backward: (ctx, [dY]) => {
    const a = ctx.input(0),
      b = ctx.input(1);
    const alpha = attrFloat(ctx.node, 'alpha', 1),
      beta = attrFloat(ctx.node, 'beta', 1);
    const tA = attrInt(ctx.node, 'transA', 0) === 1,
      tB = attrInt(ctx.node, 'transB', 0) === 1;
    const g = (x: string, y: string, transA: boolean, transB: boolean) =>
      ctx.op('Gemm', [x, y], { transA: transA ? 1 : 0, transB: transB ? 1 : 0, alpha });
    let dA: string | undefined, dB: string | undefined, dC: string | undefined;
    if (ctx.needs(0)) dA = tA ? g(b, dY!, tB, true) : g(dY!, b, false, !tB);
    if (ctx.needs(1)) dB = tB ? g(dY!, a, true, tA) : g(a, dY!, !tA, false);
    if (ctx.needs(2) && ctx.node.inputs[2]) {
      const reduced = ctx.toInput(dY!, ctx.shape(ctx.output()), 2);
      dC = beta === 1 ? reduced : ctx.mul(reduced, ctx.scalar(beta, ctx.output()));
    }
    return [dA, dB, dC];
  },
};

/** Parses an Einsum equation into operand terms and the output term (ellipsis kept as the token '.'). */
function parseEquation(eq: string, ctx: RuleContext): { terms: string[][]; out: string[] } {
  const clean = eq.replace(/\s+/g, '');
  const [lhs, rhs] = clean.split('->') as [string, string | undefined];
  const tok = (t: string) => t.replace(/\.\.\./g, '.').split('');
  const terms = lhs.split(',').map(tok);
  let out: string[];
  if (rhs !== undefined) out = tok(rhs);
  else {
    const counts = new Map<string, number>();
    for (const t of terms) for (const c of t) if (c !== '.') counts.set(c, (counts.get(c) ?? 0) + 1);
    out = [
      ...(terms.some((t) => t.includes('.')) ? ['.'] : []),
      ...[...counts]
        .filter(([, n]) => n === 1)
        .map(([c]) => c)
        .sort(),
    ];
  }
  for (const t of [...terms, out]) {
    const letters = t.filter((c) => c !== '.');
    if (new Set(letters).size !== letters.length)
      ctx.fail(`equation "${eq}" repeats an index within a term (diagonals are not supported)`);
  }
  return { terms, out };
}

const untok = (t: string[]) => t.join('').replace(/\./g, '...');

// For operand i: dOp_i = Einsum(dY, other operands → term_i). Indices that appear only in term_i were summed
// away in the forward pass: the gradient is broadcast back along them (Unsqueeze + Expand).
const einsum: GradRule = {
  backward: (ctx, [dY]) => {
    const eq = attrString(ctx.node, 'equation', '');
    const { terms, out } = parseEquation(eq, ctx);
    return ctx.node.inputs.map((operand, i) => {
      if (!ctx.needs(i)) return undefined;
      const others = terms.map((t, j) => ({ t, j })).filter(({ j }) => j !== i);
      const available = new Set([...out, ...others.flatMap(({ t }) => t)]);
      const term = terms[i]!;
      const kept = term.filter((c) => available.has(c));
      const inputs = [dY!, ...others.map(({ j }) => ctx.input(j))];
      const equation = `${[out, ...others.map(({ t }) => t)].map(untok).join(',')}->${untok(kept)}`;
      let g = ctx.op('Einsum', inputs, { equation });
      const target = ctx.shape(operand);
      if (kept.length !== term.length) {
        // Put size-1 axes where the lone indices were, then stretch them to the operand's size.
        const ellipsisRank = target.length - (term.length - (term.includes('.') ? 1 : 0));
        const axes: number[] = [];
        let pos = 0;
        for (const c of term) {
          if (c === '.') {
            pos += ellipsisRank;
            continue;
          }
          if (!available.has(c)) axes.push(pos);
          pos++;
        }
        g = ctx.op('Expand', [ctx.unsqueeze(g, axes), ctx.ints(target)]);
      }
      return g;
    });
  },
};

export const LINEAR_RULES: Record<string, GradRule> = {
  MatMul: matMul,
  Gemm: gemm,
  Einsum: einsum,
};
