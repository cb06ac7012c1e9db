/**
 * The deflicker training step as ONE ONNX graph, run by an inference session on any provider:
 *   U-Net forward (network.ts) → loss (objective.ts) → backward (src/autodiff) → AdamW (src/training/adamw.ts).
 * Inputs: the original frames (the network's input) and the processed frames (the target) of one batch, the
 * weights and their Adam moments, the per-step AdamW scalars, and with IRT the loss switch. Outputs: the
 * loss and the updated weights and moments. Shapes are static (autodiff and ORT's memory planning need them).
 */
import { buildGradients } from '../autodiff/gradients.js';
import { GraphBuilder } from '../onnx/builder.js';
import type { Model } from '../onnx/ir.js';
import { inferShapes } from '../onnx/shape-inference.js';
import { type AdamWInputs, type AdamWSlot, appendAdamW } from '../training/adamw.js';
import { type AdamWConfig, DEFAULT_ADAMW } from '../training/train-step.js';
import { type DvpNetConfig, type DvpParam, buildDvpNet } from './network.js';
import { type LossConfig, appendLoss } from './objective.js';

/** DVP trains with plain Adam (lr 1e-4): no weight decay by default. */
export const DEFLICKER_ADAMW: AdamWConfig = { ...DEFAULT_ADAMW, weightDecay: 0 };

export interface StepSize {
  batch: number;
  height: number;
  width: number;
}

export interface DeflickerStepGraph {
  model: Model;
  params: DvpParam[];
  state: AdamWSlot[];
  inputs: AdamWInputs & { original: string; processed: string; irt?: string };
  loss: string;
  adam: AdamWConfig;
}

export function buildDeflickerStep(
  net: DvpNetConfig,
  loss: LossConfig,
  size: StepSize,
  adam: AdamWConfig = DEFLICKER_ADAMW,
): DeflickerStepGraph {
  // 1. The network, its weights as inputs.
  const { model, input, output, params } = buildDvpNet({ ...net, outputs: loss.irt ? 2 : 1 }, size);
  const b = new GraphBuilder(model);
  const processed = b.input('processed', 'float32', [size.batch, 3, size.height, size.width]);

  // 2. The loss.
  const { loss: lossValue, irtSwitch } = appendLoss(b, loss, { prediction: output, processed, original: input }, size);
  model.graph.outputs = [];
  inferShapes(model);

  // 3. Backward to every weight, then AdamW.
  const { gradients } = buildGradients(model, { loss: lossValue, wrt: params.map((p) => p.name), builder: b });
  const { state, inputs } = appendAdamW(
    b,
    params.map((p) => ({ value: p.name, grad: gradients[p.name]!, dims: p.dims })),
    adam,
  );
  b.output(lossValue, 'loss', 'float32', []);
  // Shapes were for autodiff; ORT infers its own (and some of its fusions trip over stale value_info).
  model.graph.valueInfo = [];
  return {
    model,
    params,
    state,
    inputs: { ...inputs, original: input, processed, ...(irtSwitch ? { irt: irtSwitch } : {}) },
    loss: 'loss',
    adam,
  };
}
