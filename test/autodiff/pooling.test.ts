import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { buildGradients } from '../../src/autodiff/index.js';
import { encodeModel } from '../../src/onnx/codec.js';
import { float32, type Tensor } from '../../src/tensor.js';
import { checkCase } from './gradcheck.js';

describe('autodiff: MaxPool and AveragePool (non-overlapping windows)', () => {
  let rt: Runtime;
  before(async () => {
    rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  });
  after(async () => {
    await rt.close();
  });

  const cases: [string, number[], number[]][] = [
    ['2×2 (the U-Net downsampling)', [2, 3, 6, 8], [2, 2]],
    ['odd sides (floor mode drops the last row and column)', [1, 2, 7, 5], [2, 2]],
    ['non-square window', [1, 2, 6, 6], [3, 2]],
    ['1-D', [2, 2, 9], [3]],
  ];
  for (const op of ['MaxPool', 'AveragePool']) {
    for (const [label, dims, kernel] of cases) {
      it(`${op} ${label}`, async () => {
        await checkCase(rt, op, {
          opset: 17,
          inputs: { x: { dims } },
          build: (b, v) => b.op(op, [v.x!], { kernel_shape: kernel, strides: kernel }),
          // Random data has no ties; a step small enough to stay inside each window's winner.
          eps: op === 'MaxPool' ? 1e-3 : 1e-2,
        });
      });
    }
  }

  it('MaxPool shares the gradient equally between tied maxima (a flat window)', async () => {
    const b = new GraphBuilder('ties', { opset: 17 });
    const x = b.input('x', 'float32', [1, 1, 2, 4]);
    const y = b.op('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2] });
    const loss = b.op('ReduceSum', [y], { keepdims: 0 });
    const { gradients } = buildGradients(b.model, { loss, wrt: ['x'], inputShapes: { x: [1, 1, 2, 4] } });
    b.output(gradients.x!, 'dx', 'float32', [1, 1, 2, 4]);
    b.model.graph.valueInfo = [];
    const session = await rt.createSession(encodeModel(b.model));
    try {
      // Left window: all four equal (each gets 1/4); right window: one maximum (it gets all).
      const out = await session.run({ x: float32([1, 1, 2, 4], [5, 5, 1, 2, 5, 5, 3, 0]) }, ['dx']);
      assert.deepEqual([...(out.dx as Tensor<'float32'>).data], [0.25, 0.25, 0, 0, 0.25, 0.25, 1, 0]);
    } finally {
      await session.release();
    }
  });

  it('overlapping windows and padding are refused with the node named', () => {
    for (const attrs of [
      { kernel_shape: [3, 3], strides: [2, 2] },
      { kernel_shape: [2, 2], strides: [2, 2], pads: [1, 1, 1, 1] },
    ]) {
      const b = new GraphBuilder('bad', { opset: 17 });
      const x = b.input('x', 'float32', [1, 1, 6, 6]);
      const loss = b.op('ReduceSum', [b.op('MaxPool', [x], attrs, { name: 'pool' })], { keepdims: 0 });
      assert.throws(
        () => buildGradients(b.model, { loss, wrt: ['x'], inputShapes: { x: [1, 1, 6, 6] } }),
        (e: Error & { code?: string }) => e.code === 'E_NO_GRADIENT' && /MaxPool node "pool"/.test(e.message),
      );
    }
  });
});
