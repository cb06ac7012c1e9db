/**
 * The AdamW update (decoupled weight decay, PyTorch's formulation) appended to a training graph, for any set of
 * trained values: each value gets its first and second moment as graph inputs and its updated value and
 * moments as graph outputs (`<value>.new`, `<value>.m.new`, `<value>.v.new`), fed back step after step.
 * Per-step scalars are inputs so the graph never changes: learning rate, the decay factor (1 − lr·wd) and the
 * bias corrections 1/(1 − β1^t), 1/(1 − β2^t) (adamScalars in train-step.ts computes them).
 */
import type { GraphBuilder } from '../onnx/builder.js';
import type { AdamWConfig } from './train-step.js';

export interface AdamWSlot {
  param: string;
  m: string;
  v: string;
  newParam: string;
  newM: string;
  newV: string;
  dims: number[];
}

export interface AdamWInputs {
  lr: string;
  decay: string;
  bc1: string;
  bc2: string;
}

/** Appends the update of every `{ value, grad, dims }` and returns the state slots and the scalar inputs. */
export function appendAdamW(
  b: GraphBuilder,
  trained: { value: string; grad: string; dims: number[] }[],
  adam: AdamWConfig,
): { state: AdamWSlot[]; inputs: AdamWInputs } {
  const scalar = (name: string): string => b.input(name, 'float32', []);
  const inputs = {
    lr: scalar('adam.lr'),
    decay: scalar('adam.decay'),
    bc1: scalar('adam.bc1'),
    bc2: scalar('adam.bc2'),
  };
  const beta1 = b.scalar(adam.beta1),
    oneMinusBeta1 = b.scalar(1 - adam.beta1);
  const beta2 = b.scalar(adam.beta2),
    oneMinusBeta2 = b.scalar(1 - adam.beta2);
  const eps = b.scalar(adam.eps);
  const state: AdamWSlot[] = [];
  for (const { value, grad, dims } of trained) {
    const m = b.input(`${value}.m`, 'float32', dims);
    const v = b.input(`${value}.v`, 'float32', dims);
    const [newParam, newM, newV] = b.scope(`adamw/${value}`, () => {
      const m1 = b.op('Add', [b.op('Mul', [m, beta1]), b.op('Mul', [grad, oneMinusBeta1])]);
      const v1 = b.op('Add', [b.op('Mul', [v, beta2]), b.op('Mul', [b.op('Mul', [grad, grad]), oneMinusBeta2])]);
      const denom = b.op('Add', [b.op('Sqrt', [b.op('Mul', [v1, inputs.bc2])]), eps]);
      const update = b.op('Mul', [b.op('Div', [b.op('Mul', [m1, inputs.bc1]), denom]), inputs.lr]);
      return [b.op('Sub', [b.op('Mul', [value, inputs.decay]), update]), m1, v1];
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
  return { state, inputs };
}
