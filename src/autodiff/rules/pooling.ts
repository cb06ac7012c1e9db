/**
 * Gradient rules of MaxPool and AveragePool over non-overlapping windows (kernel = strides, no padding, no
 * dilation): the U-Nets' 2×2 downsampling. Each input element then belongs to at most one window, so the
 * backward pass is a block copy of dY, written with Reshape/Expand only (no ScatterElements, no MaxPoolGrad,
 * which the inference build lacks):
 *   x [N, C, d₁…dₙ] is cropped to the windows it fills (floor mode drops the rest) and viewed as
 *   [N, C, o₁, k₁, …, oₙ, kₙ]; y and dY as [N, C, o₁, 1, …, oₙ, 1].
 *   AveragePool: dX = dY / Πk expanded over each window.
 *   MaxPool: dX = dY where x equals its window's maximum, shared equally between ties (a flat window of a
 *   constant image would otherwise pass Πk times the gradient); elements outside every window get zero.
 */
import { type Node, attrInt, attrInts, attrString } from '../../onnx/ir.js';
import type { GradRule, RuleContext } from './context.js';

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => i + from);

/** The windows of a pooling node, or a failure naming what is not supported. */
function windows(ctx: RuleContext, node: Node): { kernel: number[]; out: number[]; x: number[] } {
  const x = ctx.shape(ctx.input(0));
  const spatial = x.length - 2;
  const kernel = attrInts(node, 'kernel_shape', []);
  if (kernel.length !== spatial) ctx.fail(`kernel_shape has ${kernel.length} axes, the input ${spatial} spatial axes`);
  const strides = attrInts(node, 'strides', new Array<number>(spatial).fill(1));
  const dilations = attrInts(node, 'dilations', new Array<number>(spatial).fill(1));
  const pads = attrInts(node, 'pads', new Array<number>(2 * spatial).fill(0));
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  if (strides.some((s, i) => s !== kernel[i]))
    ctx.fail(`only non-overlapping windows are supported (strides [${strides}] ≠ kernel_shape [${kernel}])`);
  if (dilations.some((d) => d !== 1)) ctx.fail('dilations are not supported');
  if (pads.some((p) => p !== 0) || (autoPad !== 'NOTSET' && autoPad !== 'VALID'))
    ctx.fail('padding is not supported (pad the input with Pad instead)');
  if (attrInt(node, 'ceil_mode', 0) !== 0) ctx.fail('ceil_mode is not supported');
  const out = x.slice(2).map((d, i) => Math.floor(d / kernel[i]!));
  return { kernel, out, x };
}

/** [N, C, o₁, k₁, …] (blocked) and [N, C, o₁, 1, …] (per window) shapes. */
function blockShapes(x: number[], out: number[], kernel: number[]): { blocked: number[]; perWindow: number[] } {
  const blocked = [x[0]!, x[1]!, ...out.flatMap((o, i) => [o, kernel[i]!])];
  const perWindow = [x[0]!, x[1]!, ...out.flatMap((o) => [o, 1])];
  return { blocked, perWindow };
}

/** Crops x to the windows (when its sides are not multiples of the kernel), then views it blocked. */
function blockedInput(ctx: RuleContext, x: number[], out: number[], kernel: number[], blocked: number[]): string {
  const axes = out.map((_, i) => i + 2).filter((a) => out[a - 2]! * kernel[a - 2]! !== x[a]);
  const cropped = axes.length
    ? ctx.slice(
        ctx.input(0),
        axes.map(() => 0),
        axes.map((a) => out[a - 2]! * kernel[a - 2]!),
        axes,
      )
    : ctx.input(0);
  return ctx.reshape(cropped, blocked);
}

/** A blocked gradient back to x's shape: un-block, then zero rows/columns no window covered. */
function unblock(ctx: RuleContext, g: string, x: number[], out: number[], kernel: number[]): string {
  const covered = [x[0]!, x[1]!, ...out.map((o, i) => o * kernel[i]!)];
  const flat = ctx.reshape(g, covered);
  const rank = x.length;
  const ends = range(rank).map((a) => x[a]! - covered[a]!);
  return ctx.pad(flat, [...new Array<number>(rank).fill(0), ...ends]);
}

const maxPool: GradRule = {
  differentiable: () => [0],
  backward: (ctx, [dY]) => {
    const { kernel, out, x } = windows(ctx, ctx.node);
    const { blocked, perWindow } = blockShapes(x, out, kernel);
    const xb = blockedInput(ctx, x, out, kernel, blocked);
    const y = ctx.reshape(ctx.output(0), perWindow);
    const type = ctx.type(ctx.input(0));
    const hit = ctx.op('Cast', [ctx.op('Equal', [xb, y])], { to: typeCode(type) });
    const windowAxes = out.map((_, i) => 3 + 2 * i);
    const ties = ctx.reduceSum(hit, windowAxes, true);
    const share = ctx.div(ctx.reshape(dY!, perWindow), ties);
    return [unblock(ctx, ctx.mul(hit, share), x, out, kernel)];
  },
};

const averagePool: GradRule = {
  differentiable: () => [0],
  backward: (ctx, [dY]) => {
    const { kernel, out, x } = windows(ctx, ctx.node);
    const { blocked, perWindow } = blockShapes(x, out, kernel);
    const scaled = ctx.mul(
      ctx.reshape(dY!, perWindow),
      ctx.scalar(1 / kernel.reduce((a, k) => a * k, 1), ctx.input(0)),
    );
    return [unblock(ctx, ctx.op('Expand', [scaled, ctx.ints(blocked)]), x, out, kernel)];
  },
};

function typeCode(t: string): number {
  return ({ float32: 1, float16: 10, float64: 11, bfloat16: 16 } as Record<string, number>)[t] ?? 1;
}

export const POOLING_RULES: Record<string, GradRule> = {
  MaxPool: maxPool,
  AveragePool: averagePool,
};
