import { after, before, describe, it } from 'node:test';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { checkCase } from './gradcheck.js';

describe('autodiff: Softmax and normalisations', () => {
  let rt: Runtime;
  before(async () => {
    rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  });
  after(async () => {
    await rt.close();
  });

  it('Softmax: last axis (opset 14), middle and negative axis, opset 11 flatten semantics', async () => {
    await checkCase(rt, 'softmax', {
      opset: 14,
      inputs: { a: { dims: [2, 3, 5] } },
      build: (b, x) => b.op('Softmax', [x.a!]),
    });
    await checkCase(rt, 'softmax', {
      opset: 17,
      inputs: { a: { dims: [2, 3, 5] } },
      build: (b, x) => b.op('Softmax', [x.a!], { axis: 1 }),
    });
    await checkCase(rt, 'softmax', {
      opset: 18,
      inputs: { a: { dims: [2, 3, 5] } },
      build: (b, x) => b.op('Softmax', [x.a!], { axis: -2 }),
    });
  });

  it('LogSoftmax', async () => {
    await checkCase(rt, 'logsoftmax', {
      opset: 14,
      inputs: { a: { dims: [3, 6] } },
      build: (b, x) => b.op('LogSoftmax', [x.a!]),
    });
  });

  it('InstanceNormalization (scale, bias; 2-D and 1-D spatial)', async () => {
    await checkCase(rt, 'in', {
      opset: 14,
      inputs: { x: { dims: [2, 3, 4, 5] }, s: { dims: [3] }, bias: { dims: [3] } },
      build: (b, v) => b.op('InstanceNormalization', [v.x!, v.s!, v.bias!], { epsilon: 1e-5 }),
    });
    await checkCase(rt, 'in', {
      opset: 17,
      inputs: { x: { dims: [2, 4, 7] }, s: { dims: [4] }, bias: { dims: [4] } },
      build: (b, v) => b.op('InstanceNormalization', [v.x!, v.s!, v.bias!], { epsilon: 1e-3 }),
    });
  });

  it('GroupNorm as exported by TorchScript: Reshape → InstanceNormalization(1, 0) → Reshape → Mul γ → Add β', async () => {
    await checkCase(rt, 'gn-export', {
      opset: 14,
      inputs: { x: { dims: [2, 8, 3, 3] }, gamma: { dims: [8, 1, 1] }, beta: { dims: [8, 1, 1] } },
      build: (b, v) => {
        const grouped = b.op('Reshape', [v.x!, b.ints([2, 4, -1])]);
        const ones = b.constant(new Array(4).fill(1), [4], 'float32');
        const zeros = b.constant(new Array(4).fill(0), [4], 'float32');
        const normed = b.op('InstanceNormalization', [grouped, ones, zeros], { epsilon: 1e-5 });
        const back = b.op('Reshape', [normed, b.op('Shape', [v.x!])]);
        return b.op('Add', [b.op('Mul', [back, v.gamma!]), v.beta!]);
      },
    });
  });

  it('LayerNormalization: last axis, axis 1, negative axis, broadcast scale', async () => {
    await checkCase(rt, 'ln', {
      opset: 17,
      inputs: { x: { dims: [2, 3, 6] }, s: { dims: [6] }, bias: { dims: [6] } },
      build: (b, v) => b.op('LayerNormalization', [v.x!, v.s!, v.bias!], { epsilon: 1e-5 }),
    });
    await checkCase(rt, 'ln', {
      opset: 17,
      inputs: { x: { dims: [2, 3, 4] }, s: { dims: [3, 4] }, bias: { dims: [3, 4] } },
      build: (b, v) => b.op('LayerNormalization', [v.x!, v.s!, v.bias!], { axis: 1 }),
    });
    await checkCase(rt, 'ln', {
      opset: 18,
      inputs: { x: { dims: [2, 3, 4] }, s: { dims: [1, 4] } },
      build: (b, v) => b.op('LayerNormalization', [v.x!, v.s!], { axis: -2, epsilon: 1e-4 }),
    });
  });

  it('LayerNorm chain of opset-14 exports (ReduceMean, Sub, Pow, Sqrt, Div)', async () => {
    await checkCase(rt, 'ln-chain', {
      opset: 14,
      inputs: { x: { dims: [2, 5, 6] }, s: { dims: [6] }, bias: { dims: [6] } },
      build: (b, v) => {
        const mean = b.op('ReduceMean', [v.x!], { axes: [-1], keepdims: 1 });
        const xc = b.op('Sub', [v.x!, mean]);
        const variance = b.op('ReduceMean', [b.op('Pow', [xc, b.scalar(2)])], { axes: [-1], keepdims: 1 });
        const normed = b.op('Div', [xc, b.op('Sqrt', [b.op('Add', [variance, b.scalar(1e-5)])])]);
        return b.op('Add', [b.op('Mul', [normed, v.s!]), v.bias!]);
      },
    });
  });

  it('GroupNormalization opset 21 (per-channel scale) and opset 18 (per-group scale)', async () => {
    await checkCase(rt, 'gn21', {
      opset: 21,
      inputs: { x: { dims: [2, 6, 3, 2] }, s: { dims: [6] }, bias: { dims: [6] } },
      build: (b, v) => b.op('GroupNormalization', [v.x!, v.s!, v.bias!], { num_groups: 3, epsilon: 1e-5 }),
    });
    await checkCase(rt, 'gn18', {
      opset: 18,
      inputs: { x: { dims: [2, 6, 3, 2] }, s: { dims: [2] }, bias: { dims: [2] } },
      build: (b, v) => b.op('GroupNormalization', [v.x!, v.s!, v.bias!], { num_groups: 2, epsilon: 1e-5 }),
    });
  });
});
