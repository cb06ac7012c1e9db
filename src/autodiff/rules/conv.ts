/**
 * Gradient rules of Conv and ConvTranspose, in standard ops only (ORT's ConvGrad is not in the inference build):
 *   Conv dX = ConvTranspose(dY, W) with the same strides/pads/dilations/group and the output_padding that gives
 *   back X's size; dW = a Conv of X and dY with their batch and channel axes swapped and strides ↔ dilations,
 *   sliced to the kernel size; dB = ReduceSum(dY) over batch and space.
 *   ConvTranspose is Conv's adjoint: dX = Conv(dY, W); dW is the same swapped-axes Conv with the roles of X and
 *   dY exchanged.
 * Any number of spatial axes (1-D, 2-D, 3-D); auto_pad is turned into explicit pads.
 */
import type { GradRule, RuleContext } from './context.js';
import { type Node, attrInt, attrInts, attrString } from '../../onnx/ir.js';

interface ConvGeometry {
  spatial: number;
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** [begin…, end…] */
  pads: number[];
  group: number;
}

function geometry(ctx: RuleContext, node: Node, inSpatial: number[], kernelFromWeight: number[]): ConvGeometry {
  const spatial = inSpatial.length;
  const ones = new Array<number>(spatial).fill(1);
  const kernel = attrInts(node, 'kernel_shape', kernelFromWeight);
  const strides = attrInts(node, 'strides', ones);
  const dilations = attrInts(node, 'dilations', ones);
  const group = attrInt(node, 'group', 1);
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  let pads = attrInts(node, 'pads', new Array<number>(2 * spatial).fill(0));
  if (autoPad === 'VALID') pads = new Array<number>(2 * spatial).fill(0);
  else if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    if (node.opType !== 'Conv') ctx.fail(`auto_pad ${autoPad} is not supported`);
    pads = new Array<number>(2 * spatial).fill(0);
    for (let i = 0; i < spatial; i++) {
      const out = Math.ceil(inSpatial[i]! / strides[i]!);
      const total = Math.max(0, (out - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - inSpatial[i]!);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + spatial] = total - pads[i]!;
    }
  }
  return { spatial, kernel, strides, dilations, pads, group };
}

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => i + from);

/** Bias gradient: dY summed over batch and every spatial axis. */
function biasGrad(ctx: RuleContext, dY: string, spatial: number): string {
  return ctx.reduceSum(dY, [0, ...range(spatial, 2)], false);
}

/** Slices the spatial axes of a [A, B, k'…] tensor down to the kernel size (extra rows are strided leftovers). */
function cropKernel(ctx: RuleContext, w: string, have: number[], kernel: number[]): string {
  const axes = kernel.map((_, i) => i + 2).filter((ax) => have[ax]! > kernel[ax - 2]!);
  if (axes.length === 0) return w;
  return ctx.slice(
    w,
    axes.map(() => 0),
    axes.map((ax) => kernel[ax - 2]!),
    axes,
  );
}

/** Size of a Conv output along one axis. */
function convOut(size: number, k: number, s: number, d: number, pb: number, pe: number): number {
  return Math.floor((size + pb + pe - d * (k - 1) - 1) / s) + 1;
}

const conv: GradRule = {
  backward: (ctx, [dY]) => {
    const x = ctx.input(0),
      w = ctx.input(1);
    const xShape = ctx.shape(x),
      wShape = ctx.shape(w);
    const [n, cIn] = [xShape[0]!, xShape[1]!];
    const cOut = wShape[0]!;
    const inSpatial = xShape.slice(2);
    const geo = geometry(ctx, ctx.node, inSpatial, wShape.slice(2));
    const { spatial, kernel, strides, dilations, pads, group } = geo;
    const sp = range(spatial, 2);

    // 1. dX: the transposed convolution, with output_padding restoring the rows the stride skipped.
    let dX: string | undefined;
    if (ctx.needs(0)) {
      const outputPadding = inSpatial.map(
        (h, i) => (h + pads[i]! + pads[i + spatial]! - dilations[i]! * (kernel[i]! - 1) - 1) % strides[i]!,
      );
      dX = ctx.op('ConvTranspose', [dY!, w], {
        strides,
        pads,
        dilations,
        group,
        kernel_shape: kernel,
        output_padding: outputPadding.some((p) => p !== 0) ? outputPadding : undefined,
      });
    }

    // 2. dW: channels of X become the batch, the batch becomes channels (per group), dY is the kernel.
    let dW: string | undefined;
    if (ctx.needs(1)) {
      const xT =
        group === 1
          ? ctx.transpose(x, [1, 0, ...sp])
          : ctx.reshape(
              ctx.transpose(ctx.reshape(x, [n, group, cIn / group, ...inSpatial]), [2, 1, 0, ...range(spatial, 3)]),
              [cIn / group, group * n, ...inSpatial],
            );
      const dYT = ctx.transpose(dY!, [1, 0, ...sp]);
      const full = ctx.op('Conv', [xT, dYT], { strides: dilations, dilations: strides, pads, group });
      const outSpatial = ctx.shape(ctx.output()).slice(2);
      const have = [
        cIn / group,
        cOut,
        ...inSpatial.map((h, i) =>
          convOut(h, outSpatial[i]!, dilations[i]!, strides[i]!, pads[i]!, pads[i + spatial]!),
        ),
      ];
      dW = ctx.transpose(cropKernel(ctx, full, have, kernel), [1, 0, ...sp]);
    }

    // 3. dB.
    const dB = ctx.needs(2) && ctx.node.inputs[2] ? biasGrad(ctx, dY!, spatial) : undefined;
    return [dX, dW, dB];
  },
};

const convTranspose: GradRule = {
  backward: (ctx, [dY]) => {
    const x = ctx.input(0),
      w = ctx.input(1);
    const xShape = ctx.shape(x),
      wShape = ctx.shape(w);
    if (ctx.node.attributes.output_shape) ctx.fail('the output_shape attribute is not supported (give pads)');
    const geo = geometry(ctx, ctx.node, xShape.slice(2), wShape.slice(2));
    const { spatial, kernel, strides, dilations, pads, group } = geo;
    const sp = range(spatial, 2);

    // 1. dX: the plain convolution is the adjoint of the transposed one.
    const dX = ctx.needs(0)
      ? ctx.op('Conv', [dY!, w], { strides, pads, dilations, group, kernel_shape: kernel })
      : undefined;

    // 2. dW[ci, co, k] = Σ x[n, ci, i] · dY[n, co, s·i + d·k − p]: a Conv of dYᵀ by Xᵀ, cropped, transposed.
    //    With groups, dY's channels become (group, batch) pairs so that group G of X meets group G of dY.
    let dW: string | undefined;
    if (ctx.needs(1)) {
      const ySpatial = ctx.shape(ctx.output()).slice(2);
      const [n, coPerGroup] = [xShape[0]!, wShape[1]!];
      const dYT =
        group === 1
          ? ctx.transpose(dY!, [1, 0, ...sp])
          : ctx.reshape(
              ctx.transpose(ctx.reshape(dY!, [n, group, coPerGroup, ...ySpatial]), [2, 1, 0, ...range(spatial, 3)]),
              [coPerGroup, group * n, ...ySpatial],
            );
      const xT = ctx.transpose(x, [1, 0, ...sp]);
      const full = ctx.op('Conv', [dYT, xT], { strides: dilations, dilations: strides, pads, group });
      const have = [
        coPerGroup,
        wShape[0]!,
        ...ySpatial.map((h, i) => convOut(h, xShape[i + 2]!, dilations[i]!, strides[i]!, pads[i]!, pads[i + spatial]!)),
      ];
      dW = ctx.transpose(cropKernel(ctx, full, have, kernel), [1, 0, ...sp]);
    }
    const dB = ctx.needs(2) && ctx.node.inputs[2] ? biasGrad(ctx, dY!, spatial) : undefined;
    return [dX, dW, dB];
  },
};

export const CONV_RULES: Record<string, GradRule> = {
  Conv: conv,
  ConvTranspose: convTranspose,
};
