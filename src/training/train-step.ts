/**
 * The training step as ONE ONNX graph, so that an inference session (CPU, WebGPU, CUDA) can train:
 *   UNet forward with LoRA branches → MSE loss against a target → backward (src/autodiff) → AdamW update.
 * LoRA tensors and Adam moments are graph inputs and outputs (fed back step after step, kept on the GPU
 * where the provider allows); the base weights stay initializers of the same graph, shared with nothing else,
 * so the session holds one copy of the UNet.
 *
 * Per-step scalars come in as inputs so the graph never changes: learning rate, the decoupled weight-decay
 * factor (1 − lr·wd) and Adam's bias corrections 1/(1 − β1^t), 1/(1 − β2^t).
 */
import { VidpriorError } from '../errors.js';
import { buildGradients } from '../autodiff/gradients.js';
import { GraphBuilder } from '../onnx/builder.js';
import type { Model } from '../onnx/ir.js';
import { inferShapes } from '../onnx/shape-inference.js';
import { type LoraParam, type LoraTarget, injectLora } from './lora.js';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWConfig = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2 };

export interface TrainStepOptions {
  targets: LoraTarget[];
  rank: number;
  alpha: number;
  /** [1, C, h, w]: the latent shape of the video (static shapes make the backward pass plannable). */
  latentShape: number[];
  /** [1, 77, D]: the text-embedding shape. */
  textShape: number[];
  adam?: Partial<AdamWConfig>;
}

/** Names of the step graph's inputs and outputs. */
export interface TrainStepGraph {
  model: Model;
  params: LoraParam[];
  /** Per parameter value name (`lora.<module>.A`): its first and second moment inputs and the three outputs. */
  state: { param: string; m: string; v: string; newParam: string; newM: string; newV: string; dims: number[] }[];
  inputs: {
    sample: string;
    timestep: string;
    context: string;
    target: string;
    lr: string;
    decay: string;
    bc1: string;
    bc2: string;
  };
  loss: string;
  adam: AdamWConfig;
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
  const prediction = g.outputs[0]!.name;

  // 2. Fix the shapes: static shapes let autodiff reduce broadcast gradients and ORT plan memory.
  sample.shape = [...options.latentShape];
  context.shape = [...options.textShape];
  timestep.shape = [1];
  g.outputs[0]!.shape = [...options.latentShape];

  // 3. LoRA branches, as graph inputs.
  const params = injectLora(unet, options.targets, { rank: options.rank, alpha: options.alpha, as: 'inputs' });

  // 4. Loss: mean squared error against the target (epsilon or v, computed by the caller).
  const b = new GraphBuilder(unet);
  const target = b.input('target', 'float32', [...options.latentShape]);
  const diff = b.op('Sub', [prediction, target], {}, { name: 'loss/diff' });
  const loss = b.op(
    'ReduceMean',
    [b.op('Mul', [diff, diff], {}, { name: 'loss/square' })],
    { keepdims: 0 },
    { name: 'loss/mean' },
  );
  inferShapes(unet);

  // 5. Backward pass to every LoRA tensor.
  const wrt = params.flatMap((p) => [p.a, p.b]);
  const { gradients } = buildGradients(unet, { loss, wrt, builder: b });

  // 6. AdamW update (decoupled weight decay, PyTorch's formulation).
  const scalar = (name: string): string => b.input(name, 'float32', []);
  const lr = scalar('adam.lr'),
    decay = scalar('adam.decay'),
    bc1 = scalar('adam.bc1'),
    bc2 = scalar('adam.bc2');
  const beta1 = b.scalar(adam.beta1),
    oneMinusBeta1 = b.scalar(1 - adam.beta1);
  const beta2 = b.scalar(adam.beta2),
    oneMinusBeta2 = b.scalar(1 - adam.beta2);
  const eps = b.scalar(adam.eps);
  const state: TrainStepGraph['state'] = [];
  for (const p of params) {
    for (const [value, dims] of [
      [p.a, p.aDims],
      [p.b, p.bDims],
    ] as [string, number[]][]) {
      const grad = gradients[value]!;
      const m = b.input(`${value}.m`, 'float32', dims);
      const v = b.input(`${value}.v`, 'float32', dims);
      const [newParam, newM, newV] = b.scope(`adamw/${value}`, () => {
        const m1 = b.op('Add', [b.op('Mul', [m, beta1]), b.op('Mul', [grad, oneMinusBeta1])]);
        const v1 = b.op('Add', [b.op('Mul', [v, beta2]), b.op('Mul', [b.op('Mul', [grad, grad]), oneMinusBeta2])]);
        const denom = b.op('Add', [b.op('Sqrt', [b.op('Mul', [v1, bc2])]), eps]);
        const update = b.op('Mul', [b.op('Div', [b.op('Mul', [m1, bc1]), denom]), lr]);
        return [b.op('Sub', [b.op('Mul', [value, decay]), update]), m1, v1];
      });
      state.push({
        param: value,
        m,
        v,
        dims,
        newParam: b.output(newParam, `${value}.new`, 'float32', dims),
        newM: b.output(newM, `${value}.m.new`, 'float32', dims),
        newV: b.output(newV, `${value}.v.new`, 'float32', dims),
      });
    }
  }
  // The UNet's own output is no longer needed: the loss is.
  g.outputs = g.outputs.filter((o) => o.name !== prediction);
  b.output(loss, 'loss', 'float32', []);
  return {
    model: unet,
    params,
    state,
    loss: 'loss',
    adam,
    inputs: { sample: sample.name, timestep: timestep.name, context: context.name, target, lr, decay, bc1, bc2 },
  };
}

/** The per-step scalar inputs for step `t` (1-based). */
export function adamScalars(
  adam: AdamWConfig,
  lr: number,
  t: number,
): { lr: number; decay: number; bc1: number; bc2: number } {
  return {
    lr,
    decay: 1 - lr * adam.weightDecay,
    bc1: 1 / (1 - adam.beta1 ** t),
    bc2: 1 / (1 - adam.beta2 ** t),
  };
}
