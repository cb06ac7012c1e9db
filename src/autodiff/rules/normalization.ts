/**
 * Gradient rules of Softmax/LogSoftmax and the normalisations (Instance-, Layer-, GroupNormalization).
 * The normalisations recompute their statistics from X (two reductions) instead of storing them: that keeps
 * the forward graph untouched and adds no stored activations beyond X itself.
 *   x̂ = (x − μ)·r, r = 1/√(var + ε), g = dY·γ:   dx = r·(g − mean(g) − x̂·mean(g·x̂)),  dγ = Σ dY·x̂,  dβ = Σ dY.
 */
import { type GradRule, type RuleContext, normAxis } from './context.js';
import { attrFloat, attrInt } from '../../onnx/ir.js';

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => i + from);

/** dx of a normalisation of `x` over `axes`, given g = dL/dx̂; returns dx and x̂ (for dγ). */
function normBackward(
  ctx: RuleContext,
  x: string,
  g: string,
  axes: number[],
  eps: number,
  like: string,
): { dx: string; xhat: string } {
  const mu = ctx.reduceMean(x, axes, true);
  const xc = ctx.sub(x, mu);
  const variance = ctx.reduceMean(ctx.mul(xc, xc), axes, true);
  const r = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.add(variance, ctx.scalar(eps, like))])]);
  const xhat = ctx.mul(xc, r);
  const meanG = ctx.reduceMean(g, axes, true);
  const meanGX = ctx.reduceMean(ctx.mul(g, xhat), axes, true);
  const dx = ctx.mul(ctx.sub(ctx.sub(g, meanG), ctx.mul(xhat, meanGX)), r);
  return { dx, xhat };
}

/** True when a value is a known constant of all ones (the unit scale of exported GroupNorm). */
function isOnes(ctx: RuleContext, value: string): boolean {
  const v = ctx.shapes.constInts(value);
  return v?.every((e) => e === 1) ?? false;
}

function softmaxAxes(ctx: RuleContext): number[] {
  const rank = ctx.rank(ctx.input(0));
  if (ctx.opset >= 13) return [normAxis(attrInt(ctx.node, 'axis', -1), rank)];
  // Before opset 13 Softmax normalises the input flattened to 2-D at `axis`: every trailing axis together.
  return range(normAxis(attrInt(ctx.node, 'axis', 1), rank), rank);
}

const softmax: GradRule = {
  backward: (ctx, [dY]) => {
    const y = ctx.output();
    const dot = ctx.reduceSum(ctx.mul(dY!, y), softmaxAxes(ctx), true);
    return [ctx.mul(y, ctx.sub(dY!, dot))];
  },
};

const logSoftmax: GradRule = {
  backward: (ctx, [dY]) => {
    const total = ctx.reduceSum(dY!, softmaxAxes(ctx), true);
    return [ctx.sub(dY!, ctx.mul(ctx.op('Exp', [ctx.output()]), total))];
  },
};

/** X [N, C, spatial…]; per-(n, c) statistics over space; scale and bias [C]. */
const instanceNorm: GradRule = {
  backward: (ctx, [dY]) => {
    const [x, scale, bias] = ctx.node.inputs as [string, string, string];
    const xShape = ctx.shape(x);
    const rank = xShape.length;
    const eps = attrFloat(ctx.node, 'epsilon', 1e-5);
    const channelShape = [xShape[1]!, ...new Array<number>(rank - 2).fill(1)];
    const g = isOnes(ctx, scale) ? dY! : ctx.mul(dY!, ctx.reshape(scale, channelShape));
    const { dx, xhat } = normBackward(ctx, x, g, range(2, rank), eps, x);
    const batchAndSpace = [0, ...range(2, rank)];
    return [
      ctx.needs(0) ? dx : undefined,
      ctx.needs(1) ? ctx.reduceSum(ctx.mul(dY!, xhat), batchAndSpace, false) : undefined,
      ctx.needs(2) && bias ? ctx.reduceSum(dY!, batchAndSpace, false) : undefined,
    ];
  },
};

/** Statistics over axes [axis, rank); scale/bias broadcast against X's trailing axes. */
const layerNorm: GradRule = {
  differentiable: () => [0, 1, 2],
  backward: (ctx, [dY, dMean, dInvStd]) => {
    if (dMean || dInvStd) ctx.fail('gradients through the Mean/InvStdDev outputs are not supported');
    const [x, scale, bias] = ctx.node.inputs as [string, string, string | undefined];
    const xShape = ctx.shape(x);
    const axis = normAxis(attrInt(ctx.node, 'axis', -1), xShape.length);
    const eps = attrFloat(ctx.node, 'epsilon', 1e-5);
    const g = isOnes(ctx, scale) ? dY! : ctx.mul(dY!, scale);
    const { dx, xhat } = normBackward(ctx, x, g, range(axis, xShape.length), eps, x);
    return [
      ctx.needs(0) ? dx : undefined,
      ctx.needs(1) ? ctx.unbroadcast(ctx.mul(dY!, xhat), xShape, ctx.shape(scale)) : undefined,
      ctx.needs(2) && bias ? ctx.unbroadcast(dY!, xShape, ctx.shape(bias)) : undefined,
    ];
  },
};

/**
 * GroupNormalization: statistics per (n, group) over the group's channels and space. Opset 21 scales per
 * channel ([C]); opset 18 (deprecated) scales per group ([G]). Both are told apart by the scale's length.
 */
const groupNorm: GradRule = {
  backward: (ctx, [dY]) => {
    const [x, scale, _bias] = ctx.node.inputs as [string, string, string];
    const xShape = ctx.shape(x);
    const [n, c] = [xShape[0]!, xShape[1]!];
    const rank = xShape.length;
    const groups = attrInt(ctx.node, 'num_groups', 0);
    if (groups <= 0 || c % groups !== 0) ctx.fail(`num_groups ${groups} does not divide ${c} channels`);
    const eps = attrFloat(ctx.node, 'epsilon', 1e-5);
    const perGroup = ctx.shape(scale)[0] !== c;
    const perChannel = (v: string) =>
      perGroup ? ctx.reshape(ctx.op('Expand', [ctx.reshape(v, [groups, 1]), ctx.ints([groups, c / groups])]), [c]) : v;
    const channelShape = [c, ...new Array<number>(rank - 2).fill(1)];
    const grouped = [n, groups, -1];

    const g = isOnes(ctx, scale) ? dY! : ctx.mul(dY!, ctx.reshape(perChannel(scale), channelShape));
    const { dx, xhat } = normBackward(ctx, ctx.reshape(x, grouped), ctx.reshape(g, grouped), [2], eps, x);
    const batchAndSpace = [0, ...range(2, rank)];
    const toParam = (perC: string) =>
      perGroup ? ctx.reduceSum(ctx.reshape(perC, [groups, c / groups]), [1], false) : perC;
    return [
      ctx.needs(0) ? ctx.reshape(dx, xShape) : undefined,
      ctx.needs(1) ? toParam(ctx.reduceSum(ctx.mul(dY!, ctx.reshape(xhat, xShape)), batchAndSpace, false)) : undefined,
      ctx.needs(2) ? toParam(ctx.reduceSum(dY!, batchAndSpace, false)) : undefined,
    ];
  },
};

export const NORMALIZATION_RULES: Record<string, GradRule> = {
  Softmax: softmax,
  LogSoftmax: logSoftmax,
  InstanceNormalization: instanceNorm,
  LayerNormalization: layerNorm,
  GroupNormalization: groupNorm,
};
