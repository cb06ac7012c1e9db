/**
 * The training step as ONE ONNX graph, so that an inference session (CPU, WebGPU, CUDA) can train:
 *   UNet forward with the trainable values → MSE loss against a target → backward (src/autodiff) → AdamW.
 * Two kinds of trainable values: LoRA branches (lora.ts), or every UNet weight as a delta on the base weight
 * (full.ts). They and their Adam moments are graph inputs and outputs (fed back step after step, kept on the
 * GPU where the provider allows); the base weights stay initializers of the same graph, shared with nothing
 * else, so the session holds one copy of the UNet.
 *
 * Per-step scalars come in as inputs so the graph never changes: learning rate, the decoupled weight-decay
 * factor (1 − lr·wd) and its complement, Adam's bias corrections 1/(1 − β1^t), 1/(1 − β2^t).
 *
 * Memory levers (measured in bench/training.ts):
 * - `accumulate`: gradient accumulation. Gradients are summed into accumulator inputs; AdamW applies the
 *   mean when `adam.apply` is 1 (batch B in B steps of batch 1, at batch 1's activation memory). The switch is
 *   arithmetic, x·apply + y·(1 − apply), exact for 0 and 1 (Where on a scalar condition is slow on WebGPU).
 * - `precision: 'float16'`: forward and backward in float16 with float32 master values (the trainable values,
 *   their moments and, in full mode, the base weights stay float32), with a static loss scale.
 * - `recompute`: activation checkpointing in the graph (recompute.ts): attention probabilities are computed
 *   again in the backward pass instead of being kept from the forward pass.
 */
import { VidpriorError } from '../errors.js';
import { buildGradients } from '../autodiff/gradients.js';
import { GraphBuilder } from '../onnx/builder.js';
import { convertToFloat16, DEFAULT_FP32_NODES, DEFAULT_FP32_OPS } from '../onnx/convert-float16.js';
import type { Model } from '../onnx/ir.js';
import { inferShapes } from '../onnx/shape-inference.js';
import { type FullDelta, type FullParam, findFullParams, injectFullDeltas } from './full.js';
import { type LoraParam, type LoraTarget, injectLora } from './lora.js';
import { recomputeAttention } from './recompute.js';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWConfig = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2 };

/** What is trained: LoRA branches on `targets`, or every UNet weight (`params` default: findFullParams). */
export type Trainable =
  | { kind: 'lora'; targets: LoraTarget[]; rank: number; alpha: number }
  | { kind: 'full'; params?: FullParam[] };

export interface TrainStepOptions {
  trainable: Trainable;
  /** [B, C, h, w]: the latent shape of the video (static shapes make the backward pass plannable). */
  latentShape: number[];
  /** [B, 77, D]: the text-embedding shape. */
  textShape: number[];
  adam?: Partial<AdamWConfig>;
  /** Gradient accumulation: accumulator inputs/outputs and an `adam.apply` switch (see above). */
  accumulate?: boolean;
  /** Compute precision of forward and backward (master values stay float32). Default float32. */
  precision?: 'float32' | 'float16';
  /** Loss scale for float16 (gradients are divided by it in float32 before AdamW). Default 1024. */
  lossScale?: number;
  /** Recompute attention probabilities in the backward pass instead of keeping them. */
  recompute?: boolean;
}

/** One trained value and its optimizer state: input names, output names. */
export interface TrainState {
  param: string;
  m: string;
  v: string;
  newParam: string;
  newM: string;
  newV: string;
  /** Gradient accumulator (with `accumulate`). */
  acc?: string;
  newAcc?: string;
  dims: number[];
}

/** Names of the step graph's inputs and outputs. */
export interface TrainStepGraph {
  model: Model;
  /** LoRA mode: the LoRA tensors per target. */
  params: LoraParam[];
  /** Full mode: the delta per UNet weight. */
  deltas: FullDelta[];
  state: TrainState[];
  inputs: {
    sample: string;
    timestep: string;
    context: string;
    target: string;
    lr: string;
    decay: string;
    /** Full mode: 1 − decay, exact (AdamW decays W0 + Δ: (W0 + Δ)·decay − W0 = Δ·decay − W0·(1 − decay)). */
    decayComplement?: string;
    bc1: string;
    bc2: string;
    /** With `accumulate`: 1 to apply the update this step, else 0; and the factor turning the sum into a mean. */
    apply?: string;
    gradScale?: string;
  };
  loss: string;
  adam: AdamWConfig;
  /** Forward values the backward pass reads (bytes), for the memory estimate. */
  savedActivationBytes: number;
  /** Largest single intermediate (bytes). */
  largestValueBytes: number;
}

/**
 * Turns a UNet model (modified in place) into its training step. The UNet must take `sample`,
 * `timestep`, `encoder_hidden_states` and give one output (`out_sample`), like diffusers exports.
 */
export function buildTrainStep(unet: Model, options: TrainStepOptions): TrainStepGraph {
  const adam = { ...DEFAULT_ADAMW, ...options.adam };
  const g = unet.graph;
  // 1. Check the model's signature.
  const [sample, timestep, context] = ['sample', 'timestep', 'encoder_hidden_states'].map((name) => {
    const input = g.inputs.find((i) => i.name === name);
    if (!input)
      throw new VidpriorError(
        'E_MODEL_INPUT',
        `the UNet has no input "${name}" (inputs: ${g.inputs.map((i) => i.name).join(', ')})`,
      );
    return input;
  }) as [(typeof g.inputs)[0], (typeof g.inputs)[0], (typeof g.inputs)[0]];
  if (g.outputs.length !== 1)
    throw new VidpriorError('E_MODEL_INPUT', `the UNet should have one output, it has ${g.outputs.length}`);
  if (sample.type !== 'float32') {
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `training needs a float32 UNet; this one takes ${sample.type} (export or convert it to float32)`,
    );
  }

  // 2. Fix the shapes: static shapes let autodiff reduce broadcast gradients and ORT plan memory.
  sample.shape = [...options.latentShape];
  context.shape = [...options.textShape];
  timestep.shape = [1];
  g.outputs[0]!.shape = [...options.latentShape];

  // 3. The trainable values, as graph inputs: LoRA branches, or a delta on every weight.
  const t = options.trainable;
  const params = t.kind === 'lora' ? injectLora(unet, t.targets, { rank: t.rank, alpha: t.alpha, as: 'inputs' }) : [];
  const deltas = t.kind === 'full' ? injectFullDeltas(unet, t.params ?? findFullParams(unet)) : [];
  const trained: { value: string; dims: number[]; base?: string }[] =
    t.kind === 'lora'
      ? params.flatMap((p) => [
          { value: p.a, dims: p.aDims },
          { value: p.b, dims: p.bDims },
        ])
      : deltas.map((d) => ({ value: d.delta, dims: d.param.dims, base: d.base }));

  // 4. Reduced precision: the UNet computes in float16; trainable inputs, base weights under a delta and the
  //    output stay float32 (Casts at the boundary), so the loss and the optimizer run in float32.
  const half = options.precision === 'float16';
  let model = unet;
  if (half) {
    // Full mode: W0 + Δ is formed in float32 (then cast), and W0 keeps float32 for AdamW's decay, also where
    // an exporter shares it through Identity nodes.
    model = convertToFloat16(unet, {
      blockNodes: [...DEFAULT_FP32_NODES, /^full\//],
      blockOps: t.kind === 'full' ? [...DEFAULT_FP32_OPS, 'Identity'] : DEFAULT_FP32_OPS,
    });
    unet.graph = model.graph;
  }
  const prediction = model.graph.outputs[0]!.name;

  // 5. Loss: mean squared error against the target (epsilon or v, computed by the caller).
  const b = new GraphBuilder(model);
  const target = b.input('target', 'float32', [...options.latentShape]);
  const diff = b.op('Sub', [prediction, target], {}, { name: 'loss/diff' });
  const loss = b.op(
    'ReduceMean',
    [b.op('Mul', [diff, diff], {}, { name: 'loss/square' })],
    { keepdims: 0 },
    { name: 'loss/mean' },
  );
  inferShapes(model);

  // 6. Backward pass to every trainable value (float16: from a scaled loss, unscaled in float32 below).
  const scale = half ? (options.lossScale ?? 1024) : 1;
  const seedGrad = scale === 1 ? undefined : b.scalar(scale);
  const nodesBefore = model.graph.nodes.length;
  const { gradients } = buildGradients(model, {
    loss,
    wrt: trained.map((x) => x.value),
    builder: b,
    ...(seedGrad ? { seedGrad } : {}),
  });
  if (options.recompute) recomputeAttention(model, nodesBefore);
  const saved = savedActivations(model, nodesBefore);

  // 7. AdamW (decoupled weight decay, PyTorch's formulation), optionally after accumulating gradients.
  const scalar = (name: string): string => b.input(name, 'float32', []);
  const lr = scalar('adam.lr'),
    decay = scalar('adam.decay'),
    decayComplement = t.kind === 'full' ? scalar('adam.decay_complement') : undefined,
    bc1 = scalar('adam.bc1'),
    bc2 = scalar('adam.bc2');
  const apply = options.accumulate ? scalar('adam.apply') : undefined;
  const keep = apply ? b.op('Sub', [b.scalar(1), apply], {}, { name: 'adam/keep' }) : undefined;
  const choose = (applied: string, kept: string): string =>
    b.op('Add', [b.op('Mul', [applied, apply!]), b.op('Mul', [kept, keep!])]);
  const gradScale = options.accumulate ? scalar('adam.grad_scale') : undefined;
  const beta1 = b.scalar(adam.beta1),
    oneMinusBeta1 = b.scalar(1 - adam.beta1);
  const beta2 = b.scalar(adam.beta2),
    oneMinusBeta2 = b.scalar(1 - adam.beta2);
  const eps = b.scalar(adam.eps);
  const unscale = scale === 1 ? undefined : b.scalar(1 / scale);
  const state: TrainState[] = [];
  for (const { value, dims, base } of trained) {
    const m = b.input(`${value}.m`, 'float32', dims);
    const v = b.input(`${value}.v`, 'float32', dims);
    const acc = options.accumulate ? b.input(`${value}.acc`, 'float32', dims) : undefined;
    const outs = b.scope(`adamw/${value}`, () => {
      let grad = gradients[value]!;
      if (unscale) grad = b.op('Mul', [grad, unscale]);
      let newAcc: string | undefined;
      if (acc) {
        const sum = b.op('Add', [acc, grad]);
        newAcc = b.op('Mul', [sum, keep!]);
        grad = b.op('Mul', [sum, gradScale!]);
      }
      const m1 = b.op('Add', [b.op('Mul', [m, beta1]), b.op('Mul', [grad, oneMinusBeta1])]);
      const v1 = b.op('Add', [b.op('Mul', [v, beta2]), b.op('Mul', [b.op('Mul', [grad, grad]), oneMinusBeta2])]);
      const denom = b.op('Add', [b.op('Sqrt', [b.op('Mul', [v1, bc2])]), eps]);
      const update = b.op('Mul', [b.op('Div', [b.op('Mul', [m1, bc1]), denom]), lr]);
      let decayed = b.op('Mul', [value, decay]);
      if (base) decayed = b.op('Sub', [decayed, b.op('Mul', [base, decayComplement!])]);
      let p1 = b.op('Sub', [decayed, update]);
      let m2 = m1,
        v2 = v1;
      if (apply) {
        p1 = choose(p1, value);
        m2 = choose(m1, m);
        v2 = choose(v1, v);
      }
      return { p1, m2, v2, newAcc };
    });
    state.push({
      param: value,
      m,
      v,
      dims,
      newParam: b.output(outs.p1, `${value}.new`, 'float32', dims),
      newM: b.output(outs.m2, `${value}.m.new`, 'float32', dims),
      newV: b.output(outs.v2, `${value}.v.new`, 'float32', dims),
      ...(acc ? { acc, newAcc: b.output(outs.newAcc!, `${value}.acc.new`, 'float32', dims) } : {}),
    });
  }
  // The UNet's own output is no longer needed: the loss is.
  model.graph.outputs = model.graph.outputs.filter((o) => o.name !== prediction);
  b.output(loss, 'loss', 'float32', []);
  return {
    model,
    params,
    deltas,
    state,
    loss: 'loss',
    adam,
    inputs: {
      sample: sample.name,
      timestep: timestep.name,
      context: context.name,
      target,
      lr,
      decay,
      ...(decayComplement ? { decayComplement } : {}),
      bc1,
      bc2,
      ...(apply ? { apply, gradScale } : {}),
    },
    savedActivationBytes: saved.saved,
    largestValueBytes: saved.largest,
  };
}

/** Bytes of the forward values (not initializers or inputs) that backward nodes read, and the largest value. */
function savedActivations(model: Model, firstBackward: number): { saved: number; largest: number } {
  const g = model.graph;
  const sizes = new Map<string, number>();
  for (const vi of g.valueInfo) {
    if (!vi.shape || vi.shape.some((d) => typeof d !== 'number')) continue;
    const bytes =
      vi.type === 'float16' || vi.type === 'bfloat16' ? 2 : vi.type === 'float64' || vi.type === 'int64' ? 8 : 4;
    sizes.set(
      vi.name,
      (vi.shape as number[]).reduce((a, d) => a * d, bytes),
    );
  }
  const forwardOutputs = new Set<string>();
  g.nodes.slice(0, firstBackward).forEach((n) => {
    for (const o of n.outputs) forwardOutputs.add(o);
  });
  const read = new Set<string>();
  for (const n of g.nodes.slice(firstBackward)) for (const i of n.inputs) if (forwardOutputs.has(i)) read.add(i);
  let saved = 0;
  for (const v of read) saved += sizes.get(v) ?? 0;
  let largest = 0;
  for (const s of sizes.values()) largest = Math.max(largest, s);
  return { saved, largest };
}

/** The per-step scalar inputs for step `t` (1-based). */
export function adamScalars(
  adam: AdamWConfig,
  lr: number,
  t: number,
): { lr: number; decay: number; decayComplement: number; bc1: number; bc2: number } {
  // decay rounded to float32 as the graph sees it; its complement exact, so base·(1 − decay) matches.
  const decay = Math.fround(1 - lr * adam.weightDecay);
  return {
    lr,
    decay,
    decayComplement: 1 - decay,
    bc1: 1 / (1 - adam.beta1 ** t),
    bc2: 1 / (1 - adam.beta2 ** t),
  };
}
