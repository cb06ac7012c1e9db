/**
 * What a gradient rule sees: the forward node, which of its inputs need a gradient, static shapes, and helpers
 * that emit standard ONNX ops at the model's own opset (ReduceSum axes as an input from 13, ReduceMean's from
 * 18, Squeeze/Unsqueeze axes from 13). Every node a rule emits is named under `grad/<forward node>`.
 */
import { VidpriorError } from '../../errors.js';
import type { AttrInput, GraphBuilder } from '../../onnx/builder.js';
import { toFloat16 } from '../../tensor.js';
import type { ElemType, Node } from '../../onnx/ir.js';
import type { ShapeOracle, ValueMeta } from './shapes.js';

/** One gradient per forward input; undefined where none flows (or none is needed). */
export type InputGrads = (string | undefined)[];

export interface GradRule {
  /**
   * Indices of the inputs a gradient can flow into (default: every input). Integer inputs (shapes, axes,
   * indices, conditions) are left out, so shape arithmetic never lies on a gradient path.
   */
  differentiable?: (node: Node) => number[];
  /** Emits the backward nodes for one forward node, given the gradient of each output (undefined = zero). */
  backward?: (ctx: RuleContext, dY: (string | undefined)[]) => InputGrads;
}

/** float16/bfloat16 scalar constants already emitted, per graph builder (see RuleContext.scalarOf). */
const HALF_SCALARS = new WeakMap<GraphBuilder, Map<string, string>>();

export const FLOAT_TYPES = new Set<ElemType>(['float32', 'float16', 'bfloat16', 'float64']);

export class RuleContext {
  constructor(
    readonly b: GraphBuilder,
    readonly shapes: ShapeOracle,
    readonly node: Node,
    private readonly needed: boolean[],
  ) {}

  get opset(): number {
    return this.b.opset;
  }

  /** True when input `i` needs a gradient (it lies on a path from a `wrt` value). */
  needs(i: number): boolean {
    return this.needed[i] === true;
  }

  /** The forward node's input `i` / output `i`. */
  input(i: number): string {
    return this.node.inputs[i]!;
  }
  output(i = 0): string {
    return this.node.outputs[i]!;
  }

  meta(value: string): ValueMeta {
    return this.shapes.meta(value);
  }
  shape(value: string): number[] {
    return this.shapes.meta(value).shape;
  }
  type(value: string): ElemType {
    return this.shapes.meta(value).type;
  }
  rank(value: string): number {
    return this.shape(value).length;
  }

  /** Integer values of input `i` that must be known statically (Slice starts, Pad pads…). */
  constInput(i: number, what: string): number[] {
    const v = this.node.inputs[i] ? this.shapes.constInts(this.node.inputs[i]!) : undefined;
    if (!v) this.fail(`its ${what} (input ${i}, "${this.node.inputs[i]}") is not a constant`);
    return v!;
  }

  /** Throws E_NO_GRADIENT naming the op, the node and why. */
  fail(reason: string): never {
    throw new VidpriorError(
      'E_NO_GRADIENT',
      `no gradient for ${this.node.opType} node "${this.node.name}": ${reason}`,
      { op: this.node.opType, node: this.node.name },
    );
  }

  // ---- emitting ops ----------------------------------------------------------------------------------

  op(opType: string, inputs: (string | undefined)[], attrs: Record<string, AttrInput | undefined> = {}): string {
    return this.b.scope(`grad/${this.node.name}`, () => this.b.op(opType, inputs, attrs));
  }

  opMulti(
    opType: string,
    inputs: (string | undefined)[],
    outputs: number,
    attrs: Record<string, AttrInput | undefined> = {},
  ): string[] {
    return this.b.scope(`grad/${this.node.name}`, () => this.b.opMulti(opType, inputs, outputs, attrs));
  }

  ints(values: number[]): string {
    return this.b.ints(values);
  }

  /** A scalar constant of the element type of `like` (float16 models get float16 constants). */
  scalar(value: number, like: string): string {
    return this.scalarOf(value, this.type(like));
  }

  scalarOf(value: number, type: ElemType): string {
    if (type !== 'float16' && type !== 'bfloat16') return this.b.scalar(value, type);
    // The builder caches number-list constants only; half-precision ones are encoded here and cached per graph.
    let cache = HALF_SCALARS.get(this.b);
    if (!cache) HALF_SCALARS.set(this.b, (cache = new Map()));
    const key = `${type}|${value}`;
    let name = cache.get(key);
    if (!name) {
      const f32 = Float32Array.of(value);
      const bits = type === 'float16' ? toFloat16(f32) : Uint16Array.of(new Uint32Array(f32.buffer)[0]! >>> 16);
      name = this.b.constant(bits, [], type, 'scalar');
      cache.set(key, name);
    }
    return name;
  }

  /** Zeros of a static shape, made on the device (Expand of a scalar), not stored as an initializer. */
  zeros(shape: number[], type: ElemType): string {
    return this.op('Expand', [this.scalarOf(0, type), this.ints(shape)]);
  }

  add(a: string, b: string): string {
    return this.op('Add', [a, b]);
  }
  mul(a: string, b: string): string {
    return this.op('Mul', [a, b]);
  }
  sub(a: string, b: string): string {
    return this.op('Sub', [a, b]);
  }
  div(a: string, b: string): string {
    return this.op('Div', [a, b]);
  }
  neg(a: string): string {
    return this.op('Neg', [a]);
  }

  reshape(x: string, shape: number[]): string {
    return this.op('Reshape', [x, this.ints(shape)]);
  }

  transpose(x: string, perm: number[]): string {
    return perm.every((p, i) => p === i) ? x : this.op('Transpose', [x], { perm });
  }

  reduceSum(x: string, axes: number[], keepdims: boolean): string {
    if (axes.length === 0) return x;
    return this.opset >= 13
      ? this.op('ReduceSum', [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 })
      : this.op('ReduceSum', [x], { axes, keepdims: keepdims ? 1 : 0 });
  }

  reduceMean(x: string, axes: number[], keepdims: boolean): string {
    if (axes.length === 0) return x;
    return this.opset >= 18
      ? this.op('ReduceMean', [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 })
      : this.op('ReduceMean', [x], { axes, keepdims: keepdims ? 1 : 0 });
  }

  unsqueeze(x: string, axes: number[]): string {
    return this.opset >= 13 ? this.op('Unsqueeze', [x, this.ints(axes)]) : this.op('Unsqueeze', [x], { axes });
  }

  slice(x: string, starts: number[], ends: number[], axes: number[], steps?: number[]): string {
    return this.op('Slice', [
      x,
      this.ints(starts),
      this.ints(ends),
      this.ints(axes),
      steps ? this.ints(steps) : undefined,
    ]);
  }

  /** Constant-mode Pad with `pads` = [begin of each axis…, end of each axis…] (all axes). */
  pad(x: string, pads: number[]): string {
    if (pads.every((p) => p === 0)) return x;
    return this.opset >= 11 ? this.op('Pad', [x, this.ints(pads)]) : this.op('Pad', [x], { pads });
  }

  /**
   * Sums a gradient of shape `gradShape` over the axes that numpy broadcasting expanded, so that it gets
   * `target`'s shape (leading axes added, size-1 axes stretched).
   */
  unbroadcast(grad: string, gradShape: number[], target: number[]): string {
    if (sameShape(gradShape, target)) return grad;
    const lead = gradShape.length - target.length;
    if (lead < 0) this.fail(`gradient of shape [${gradShape}] cannot reduce to [${target}]`);
    const axes: number[] = [];
    for (let i = 0; i < gradShape.length; i++) {
      if (i < lead || (target[i - lead] === 1 && gradShape[i] !== 1)) axes.push(i);
    }
    const reduced = this.reduceSum(grad, axes, true);
    const reducedShape = gradShape.map((d, i) => (axes.includes(i) ? 1 : d));
    return sameShape(reducedShape, target) ? reduced : this.reshape(reduced, target);
  }

  /** Gradient of a value of shape `from` broadcast to input `i`'s shape. */
  toInput(grad: string, from: number[], i: number): string {
    return this.unbroadcast(grad, from, this.shape(this.input(i)));
  }
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Numpy broadcast of two static shapes. */
export function broadcastShapes(a: number[], b: number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[i - (r - a.length)] ?? 1;
    const y = b[i - (r - b.length)] ?? 1;
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Normalises a possibly negative axis. */
export function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}
