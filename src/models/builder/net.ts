/**
 * `Net`: the layer vocabulary the model builder writes CLIP, the UNet and the VAE in, on top of GraphBuilder.
 *
 * It emits the op patterns of PyTorch's TorchScript ONNX exporter and names things the way it does, so that
 * code that finds layers by name (LoRA injection looks for `…/attn1/to_q/MatMul`) works on built models and on
 * real exports alike:
 *   - nodes are named `/<module path>/<OpType>` (`_1`, `_2`… when repeated), outputs `<node>_output_0`;
 *   - parameters are named by their state-dict key (`down_blocks.1.attentions.0.proj_in.weight`);
 *   - nn.Linear on activations is MatMul with the weight stored transposed [in, out], then Add(bias, y);
 *     on 2-D inputs (time embedding) it is Gemm(transB=1) with the weight as in PyTorch [out, in];
 *   - GroupNorm is Reshape(0, G, -1) → InstanceNormalization(scale 1, bias 0) → Reshape back → Mul γ → Add β,
 *     with γ, β shaped [C, 1, 1] (or [C, 1] on 3-D inputs);
 *   - LayerNorm is LayerNormalization from opset 17, the ReduceMean/Sub/Pow/Sqrt/Div chain before;
 *   - attention is MatMul → Mul(scale) → Softmax → MatMul with Reshape/Transpose head splits.
 */
import { VidpriorError } from '../../errors.js';
import { GraphBuilder, type AttrInput } from '../../onnx/builder.js';
import type { ElemType, Model, TypedData } from '../../onnx/ir.js';
import { toFloat16 } from '../../tensor.js';
import { type InitKind, type ParamSpec, type WeightMode, paramData } from './weights.js';

export type FloatType = 'float32' | 'float16';

export interface NetOptions {
  /** Default-domain opset (14–21). */
  opset: number;
  dtype: FloatType;
  weights: WeightMode;
  seed: number;
}

/** The lowest finite value of each float type (masks use it instead of -inf, as transformers does). */
const FLOAT_MIN: Record<FloatType, number> = { float32: -3.4028234663852886e38, float16: -65504 };

export class Net {
  readonly b: GraphBuilder;
  readonly params = new Map<string, ParamSpec>();
  readonly ftype: FloatType;
  readonly opts: NetOptions;
  private readonly path: string[] = [];
  private readonly floatConsts = new Map<string, string>();

  constructor(graphName: string, opts: NetOptions) {
    this.opts = opts;
    this.ftype = opts.dtype;
    this.b = new GraphBuilder(graphName, { opset: opts.opset });
  }

  get opset(): number {
    return this.opts.opset;
  }
  get minValue(): number {
    return FLOAT_MIN[this.ftype];
  }

  /** Runs `fn` inside a submodule: node names get `/part`, parameter names `part.`. */
  module<T>(part: string, fn: () => T): T {
    this.path.push(part);
    try {
      return this.b.scope(part, fn);
    } finally {
      this.path.pop();
    }
  }

  /** One node named after its op type in the current module; returns its first output. */
  op(
    opType: string,
    inputs: (string | undefined)[],
    attrs: Record<string, AttrInput | undefined> = {},
    output?: string,
  ): string {
    return this.b.op(opType, inputs, attrs, { name: opType, outputs: output ? [output] : undefined });
  }

  /** A learnable parameter named `<module path>.<name>`, with seeded random values unless weights are 'none'. */
  param(name: string, dims: number[], init: InitKind, fanIn?: number, gain?: number, transposed?: boolean): string {
    const full = [...this.path, name].join('.');
    if (this.params.has(full)) throw new VidpriorError('E_MODEL_INPUT', `parameter ${full} defined twice`);
    const spec: ParamSpec = { name: full, dims: [...dims], init, fanIn, gain, ...(transposed ? { transposed } : {}) };
    this.params.set(full, spec);
    if (this.opts.weights === 'random')
      return this.b.initializer(full, this.ftype, dims, paramData(spec, this.opts.seed, this.ftype));
    // Shapes only: an initializer without data (never encoded as is: filled while writing, or just counted).
    const unique = this.b.fresh(full);
    this.b.graph.initializers.push({ name: unique, type: this.ftype, dims: [...dims] });
    return unique;
  }

  /** A float constant in the model's float type (shared when identical). */
  floats(values: number[], dims: number[] = [values.length]): string {
    const key = `${dims.join(',')}|${values.join(',')}`;
    const cached = this.floatConsts.get(key);
    if (cached) return cached;
    const f32 = Float32Array.from(values);
    const data: TypedData = this.ftype === 'float16' ? toFloat16(f32) : f32;
    const name = this.b.constant(data, dims, this.ftype, 'const');
    if (values.length <= 64) this.floatConsts.set(key, name);
    return name;
  }

  scalar(value: number): string {
    return this.floats([value], []);
  }
  ints(values: number[]): string {
    return this.b.ints(values);
  }

  // ---- layers ----------------------------------------------------------------------------------------

  /** nn.Conv2d (square kernel, symmetric padding). */
  conv(
    name: string,
    x: string,
    cin: number,
    cout: number,
    k: number,
    opts: { stride?: number; pad?: number; gain?: number; output?: string } = {},
  ): string {
    return this.module(name, () => {
      const w = this.param('weight', [cout, cin, k, k], 'fan-in', cin * k * k, opts.gain);
      const bias = this.param('bias', [cout], 'small');
      const p = opts.pad ?? (k - 1) / 2;
      const s = opts.stride ?? 1;
      return this.op(
        'Conv',
        [x, w, bias],
        { dilations: [1, 1], group: 1, kernel_shape: [k, k], pads: [p, p, p, p], strides: [s, s] },
        opts.output,
      );
    });
  }

  /** nn.Linear on [..., din] activations: MatMul with the weight stored [din, dout], then Add(bias, y). */
  linear(
    name: string,
    x: string,
    din: number,
    dout: number,
    opts: { bias?: boolean; gain?: number; output?: string } = {},
  ): string {
    return this.module(name, () => {
      const w = this.param('weight', [din, dout], 'fan-in', din, opts.gain, true);
      if (opts.bias === false) return this.op('MatMul', [x, w], {}, opts.output);
      const y = this.op('MatMul', [x, w]);
      return this.op('Add', [this.param('bias', [dout], 'small'), y], {}, opts.output);
    });
  }

  /** nn.Linear on [N, din]: Gemm(transB=1) with the weight as PyTorch keeps it, [dout, din]. */
  gemm(name: string, x: string, din: number, dout: number): string {
    return this.module(name, () => {
      const w = this.param('weight', [dout, din], 'fan-in', din);
      const bias = this.param('bias', [dout], 'small');
      return this.op('Gemm', [x, w, bias], { alpha: 1, beta: 1, transB: 1 });
    });
  }

  /** nn.GroupNorm over [N, C, ...] (rank 3 or 4) as exporters write it. */
  groupNorm(name: string, x: string, channels: number, groups: number, eps: number, rank: 3 | 4 = 4): string {
    if (channels % groups !== 0)
      throw new VidpriorError('E_MODEL_INPUT', `${name}: ${channels} channels do not split into ${groups} groups`);
    return this.module(name, () => {
      const grouped = this.op('Reshape', [x, this.ints([0, groups, -1])], { allowzero: 0 });
      const normed = this.op(
        'InstanceNormalization',
        [grouped, this.floats(new Array(groups).fill(1)), this.floats(new Array(groups).fill(0))],
        { epsilon: eps },
      );
      const back = this.op('Reshape', [normed, this.op('Shape', [x])], { allowzero: 0 });
      const affine = rank === 4 ? [channels, 1, 1] : [channels, 1];
      const scaled = this.op('Mul', [back, this.param('weight', affine, 'norm-scale')]);
      return this.op('Add', [scaled, this.param('bias', affine, 'small')]);
    });
  }

  /** nn.LayerNorm over the last axis. */
  layerNorm(name: string, x: string, dim: number, eps: number, output?: string): string {
    return this.module(name, () => {
      const gamma = this.param('weight', [dim], 'norm-scale');
      const beta = this.param('bias', [dim], 'small');
      if (this.opset >= 17) return this.op('LayerNormalization', [x, gamma, beta], { axis: -1, epsilon: eps }, output);
      // TorchScript's decomposition (ReduceMean takes axes as an attribute up to opset 17).
      const mean = this.op('ReduceMean', [x], { axes: [-1] });
      const centred = this.op('Sub', [x, mean]);
      const variance = this.op('ReduceMean', [this.op('Pow', [centred, this.scalar(2)])], { axes: [-1] });
      const std = this.op('Sqrt', [this.op('Add', [variance, this.scalar(eps)])]);
      const normed = this.op('Div', [centred, std]);
      return this.op('Add', [this.op('Mul', [normed, gamma]), beta], {}, output);
    });
  }

  /** SiLU as exported: x · Sigmoid(x). */
  silu(x: string, scope = 'act'): string {
    return this.module(scope, () => this.op('Mul', [x, this.op('Sigmoid', [x])]));
  }

  /** Exact GELU as TorchScript exports it: x · 0.5 · (1 + erf(x / √2)). */
  gelu(x: string): string {
    const erf = this.op('Erf', [this.op('Div', [x, this.scalar(Math.SQRT2)])]);
    return this.op('Mul', [this.op('Mul', [x, this.op('Add', [erf, this.scalar(1)])]), this.scalar(0.5)]);
  }

  /** CLIP's quick_gelu: x · sigmoid(1.702 x). */
  quickGelu(x: string): string {
    return this.op('Mul', [x, this.op('Sigmoid', [this.op('Mul', [x, this.scalar(1.702)])])]);
  }

  /**
   * Multi-head scaled dot-product attention of projected q [B, Sq, C], k and v [B, Sk, C]: returns [B, Sq, C].
   * `mask` (optional) is added to the scores before the softmax.
   */
  attend(q: string, k: string, v: string, heads: number, channels: number, mask?: string): string {
    if (channels % heads !== 0)
      throw new VidpriorError('E_MODEL_INPUT', `${channels} channels do not split into ${heads} heads`);
    const headDim = channels / heads;
    const split = this.ints([0, 0, heads, headDim]);
    const qh = this.op('Transpose', [this.op('Reshape', [q, split], { allowzero: 0 })], { perm: [0, 2, 1, 3] });
    const kt = this.op('Transpose', [this.op('Reshape', [k, split], { allowzero: 0 })], { perm: [0, 2, 3, 1] });
    const vh = this.op('Transpose', [this.op('Reshape', [v, split], { allowzero: 0 })], { perm: [0, 2, 1, 3] });
    let scores = this.op('Mul', [this.op('MatMul', [qh, kt]), this.scalar(1 / Math.sqrt(headDim))]);
    if (mask) scores = this.op('Add', [scores, mask]);
    const probs = this.op('Softmax', [scores], { axis: -1 });
    const out = this.op('Transpose', [this.op('MatMul', [probs, vh])], { perm: [0, 2, 1, 3] });
    return this.op('Reshape', [out, this.ints([0, 0, channels])], { allowzero: 0 });
  }

  input(name: string, type: ElemType, shape: (number | string)[]): string {
    return this.b.input(name, type, shape);
  }

  /** Declares `value` (already produced under its final name) as a graph output. */
  output(value: string, type: ElemType, shape: (number | string)[]): void {
    this.b.output(value, undefined, type, shape);
  }

  build(): Model {
    return this.b.build();
  }
}
