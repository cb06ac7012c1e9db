import { after, before, describe, it } from 'node:test';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { checkCase } from './gradcheck.js';

describe('autodiff: Gather, Resize, ReduceSum/ReduceMean', () => {
  let rt: Runtime;
  before(async () => {
    rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  });
  after(async () => {
    await rt.close();
  });

  // Repeated ids check that rows accumulate (scatter-add), not overwrite.
  const ids = [3, 0, 3, 1, 4, 3];
  for (const opset of [14, 17]) {
    it(`Gather as an embedding with runtime ids, repeated (opset ${opset}: ${opset >= 16 ? 'ScatterND add' : 'one-hot Gemm'})`, async () => {
      await checkCase(rt, 'embed', {
        opset,
        inputs: { table: { dims: [5, 3] }, ids: { dims: [2, 3], int64: ids } },
        build: (b, x) => b.op('Gather', [x.table!, x.ids!]),
      });
    });
  }

  it('Gather index-select on axis 1 and 2 with constant and negative indices, scalar index', async () => {
    await checkCase(rt, 'select', {
      opset: 14,
      inputs: { a: { dims: [2, 5, 3] } },
      build: (b, x) => b.op('Gather', [x.a!, b.ints([4, -1, 0])], { axis: 1 }),
    });
    await checkCase(rt, 'select', {
      opset: 17,
      inputs: { a: { dims: [2, 3, 4] } },
      build: (b, x) => b.op('Gather', [x.a!, b.ints([1, 1, 3])], { axis: -1 }),
    });
    await checkCase(rt, 'select', {
      opset: 17,
      inputs: { a: { dims: [2, 3, 4] } },
      build: (b, x) => b.op('Gather', [x.a!, b.constant([0], [], 'int64')], { axis: 1 }),
    });
  });

  it('Resize nearest ×2 as TorchScript exports it (asymmetric, floor; scales input)', async () => {
    await checkCase(rt, 'resize', {
      opset: 14,
      inputs: { a: { dims: [1, 2, 3, 4] } },
      build: (b, x) =>
        b.op('Resize', [x.a!, '', b.constant([1, 1, 2, 2], [4], 'float32')], {
          mode: 'nearest',
          coordinate_transformation_mode: 'asymmetric',
          nearest_mode: 'floor',
        }),
    });
  });

  it('Resize nearest by sizes, half_pixel default rounding, ×3 and ×1 axes', async () => {
    await checkCase(rt, 'resize', {
      opset: 18,
      inputs: { a: { dims: [1, 2, 2, 3] } },
      build: (b, x) => b.op('Resize', [x.a!, '', '', b.ints([1, 2, 6, 3])], { mode: 'nearest' }),
    });
  });

  it('ReduceSum: axes input, keepdims 0/1, negative axes, all axes', async () => {
    await checkCase(rt, 'rsum', {
      opset: 14,
      inputs: { a: { dims: [2, 3, 4] } },
      build: (b, x) => b.op('ReduceSum', [x.a!, b.ints([1])], { keepdims: 0 }),
    });
    await checkCase(rt, 'rsum', {
      opset: 17,
      inputs: { a: { dims: [2, 3, 4] } },
      build: (b, x) => b.op('ReduceSum', [x.a!, b.ints([-1, 0])]),
    });
    await checkCase(rt, 'rsum', {
      opset: 17,
      inputs: { a: { dims: [2, 3] } },
      build: (b, x) => b.op('ReduceSum', [x.a!], { keepdims: 0 }),
    });
  });

  it('ReduceMean: axes attribute (opset 14, 17) and input (opset 18), noop_with_empty_axes', async () => {
    await checkCase(rt, 'rmean', {
      opset: 14,
      inputs: { a: { dims: [2, 3, 4] } },
      build: (b, x) => b.op('ReduceMean', [x.a!], { axes: [1, 2], keepdims: 0 }),
    });
    await checkCase(rt, 'rmean', {
      opset: 17,
      inputs: { a: { dims: [2, 3, 4] } },
      build: (b, x) => b.op('ReduceMean', [x.a!], { axes: [-1] }),
    });
    await checkCase(rt, 'rmean', {
      opset: 18,
      inputs: { a: { dims: [2, 3, 4] } },
      build: (b, x) => b.op('ReduceMean', [x.a!, b.ints([0, 2])], { keepdims: 0 }),
    });
    await checkCase(rt, 'rmean', {
      opset: 18,
      inputs: { a: { dims: [2, 3] } },
      build: (b, x) => b.op('Mul', [b.op('ReduceMean', [x.a!], { noop_with_empty_axes: 1 }), x.a!]),
    });
  });
});
