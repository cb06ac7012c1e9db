import { after, before, describe, it } from 'node:test';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { checkCase } from './gradcheck.js';

describe('autodiff: reshapes, Transpose, Expand, Tile, Slice, Pad, Split, Concat', () => {
  let rt: Runtime;
  before(async () => {
    rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  });
  after(async () => {
    await rt.close();
  });

  it('Reshape (static and Shape-computed targets), Flatten, Squeeze, Unsqueeze, Identity', async () => {
    await checkCase(rt, 'reshape', {
      opset: 14,
      inputs: { a: { dims: [2, 3, 4] } },
      build: (b, x) => b.op('Reshape', [x.a!, b.ints([6, -1])]),
    });
    await checkCase(rt, 'reshape', {
      opset: 14,
      inputs: { a: { dims: [2, 3, 4] }, c: { dims: [6, 4] } },
      build: (b, x) => b.op('Mul', [b.op('Reshape', [x.c!, b.op('Shape', [x.a!])]), x.a!]),
    });
    await checkCase(rt, 'flatten', {
      opset: 14,
      inputs: { a: { dims: [2, 3, 4] } },
      build: (b, x) => b.op('Flatten', [x.a!], { axis: 2 }),
    });
    await checkCase(rt, 'squeeze', {
      opset: 14,
      inputs: { a: { dims: [2, 1, 4] } },
      build: (b, x) => b.op('Squeeze', [x.a!, b.ints([1])]),
    });
    await checkCase(rt, 'unsqueeze', {
      opset: 17,
      inputs: { a: { dims: [2, 4] } },
      build: (b, x) => b.op('Unsqueeze', [x.a!, b.ints([0, -1])]),
    });
  });

  it('Transpose (explicit and default perm)', async () => {
    await checkCase(rt, 'transpose', {
      opset: 14,
      inputs: { a: { dims: [2, 3, 4, 5] } },
      build: (b, x) => b.op('Transpose', [x.a!], { perm: [0, 2, 3, 1] }),
    });
    await checkCase(rt, 'transpose', {
      opset: 14,
      inputs: { a: { dims: [2, 3, 4] } },
      build: (b, x) => b.op('Transpose', [x.a!]),
    });
  });

  it('Expand and Tile', async () => {
    await checkCase(rt, 'expand', {
      opset: 14,
      inputs: { a: { dims: [3, 1] } },
      build: (b, x) => b.op('Expand', [x.a!, b.ints([2, 3, 4])]),
    });
    await checkCase(rt, 'tile', {
      opset: 14,
      inputs: { a: { dims: [2, 3] } },
      build: (b, x) => b.op('Tile', [x.a!, b.ints([2, 3])]),
    });
    await checkCase(rt, 'tile', {
      opset: 14,
      inputs: { a: { dims: [1, 2, 3] } },
      build: (b, x) => b.op('Tile', [x.a!, b.ints([3, 1, 2])]),
    });
  });

  const slices: [string, number[], number[], number[], number[] | undefined, number[] | undefined][] = [
    ['step 1 on two axes', [4, 6], [1, 2], [3, 5], [0, 1], undefined],
    ['negative indices', [4, 6], [-3], [-1], [1], undefined],
    ['step 2 (odd length)', [3, 7], [1], [7], [1], [2]],
    ['step 3 with overshoot', [3, 8], [0], [8], [1], [3]],
    ['negative step', [5, 4], [-1], [-1000], [0], [-1]],
    ['negative step 2 and step 2 on two axes', [7, 6], [5, 1], [0, 6], [0, 1], [-2, 2]],
    ['end past the dim (INT64-style large end)', [3, 5], [2], [1000000], [1], undefined],
    ['empty axes input (all axes)', [3, 4], [1, 0], [3, 2], undefined, undefined],
  ];
  for (const [label, dims, starts, ends, axes, steps] of slices) {
    it(`Slice: ${label}`, async () => {
      await checkCase(rt, 'slice', {
        opset: 14,
        inputs: { a: { dims } },
        build: (b, x) =>
          b.op('Slice', [
            x.a!,
            b.ints(starts),
            b.ints(ends),
            axes ? b.ints(axes) : undefined,
            steps ? b.ints(steps) : undefined,
          ]),
      });
    });
  }

  it('Slice with starts/ends from Shape arithmetic (TorchScript chunk)', async () => {
    await checkCase(rt, 'chunk', {
      opset: 14,
      inputs: { a: { dims: [2, 3, 8] } },
      build: (b, x) => {
        const last = b.op('Gather', [b.op('Shape', [x.a!]), b.ints([2])]);
        const half = b.op('Div', [last, b.ints([2])]);
        const first = b.op('Slice', [x.a!, b.ints([0]), half, b.ints([-1])]);
        const second = b.op('Slice', [x.a!, half, b.op('Mul', [half, b.ints([2])]), b.ints([-1])]);
        return b.op('Mul', [first, b.op('Erf', [second])]);
      },
    });
  });

  it('Pad (constant): positive, negative (crop) and axes input (opset 18)', async () => {
    await checkCase(rt, 'pad', {
      opset: 14,
      inputs: { a: { dims: [2, 3, 4] } },
      build: (b, x) => b.op('Pad', [x.a!, b.ints([0, 1, 2, 0, 2, 1])]),
    });
    await checkCase(rt, 'pad', {
      opset: 14,
      inputs: { a: { dims: [3, 5] } },
      build: (b, x) => b.op('Pad', [x.a!, b.ints([-1, 2, 1, -2])]),
    });
    await checkCase(rt, 'pad', {
      opset: 18,
      inputs: { a: { dims: [2, 3, 4] } },
      build: (b, x) => b.op('Pad', [x.a!, b.ints([1, 2]), b.scalar(0.5), b.ints([-1])]),
    });
  });

  it('Split: sizes input (opset 14), num_outputs (opset 18), one output unused', async () => {
    await checkCase(rt, 'split', {
      opset: 14,
      inputs: { a: { dims: [2, 7] } },
      build: (b, x) => {
        const [p, q, r] = b.opMulti('Split', [x.a!, b.ints([2, 4, 1])], 3, { axis: 1 });
        return b.op('Concat', [b.op('Mul', [p!, b.scalar(2)]), r!, q!], { axis: 1 });
      },
    });
    await checkCase(rt, 'split', {
      opset: 18,
      inputs: { a: { dims: [6, 3] } },
      build: (b, x) => b.opMulti('Split', [x.a!], 2, { axis: 0, num_outputs: 2 })[1]!,
    });
  });

  it('Concat on a negative axis, one input constant', async () => {
    await checkCase(rt, 'concat', {
      opset: 14,
      inputs: { a: { dims: [2, 3] }, c: { dims: [2, 2] }, k: { dims: [2, 1], wrt: false } },
      build: (b, x) => b.op('Concat', [x.a!, x.k!, x.c!, x.a!], { axis: -1 }),
    });
  });
});
