import { after, before, describe, it } from 'node:test';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { checkCase } from './gradcheck.js';

describe('autodiff: elementwise rules', () => {
  let rt: Runtime;
  before(async () => {
    rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  });
  after(async () => {
    await rt.close();
  });

  for (const op of ['Add', 'Sub', 'Mul', 'Div']) {
    it(`${op} with broadcasting (leading axes, size-1 axes, scalars)`, async () => {
      const pos: [number, number] | undefined = op === 'Div' ? [0.5, 2] : undefined;
      await checkCase(rt, op, {
        opset: 14,
        inputs: { a: { dims: [2, 3, 5] }, b: { dims: [3, 1], range: pos } },
        build: (b, x) => b.op(op, [x.a!, x.b!]),
      });
      await checkCase(rt, op, {
        opset: 17,
        inputs: { a: { dims: [1, 5] }, b: { dims: [4, 1, 5], range: pos } },
        build: (b, x) => b.op(op, [x.a!, x.b!]),
      });
      await checkCase(rt, op, {
        opset: 18,
        inputs: { a: { dims: [3, 4] }, b: { dims: [], range: pos } },
        build: (b, x) => b.op(op, [x.a!, x.b!]),
      });
    });
  }

  it('Mul by a constant, the same value used twice (fan-in)', async () => {
    await checkCase(rt, 'mulc', {
      opset: 14,
      inputs: { a: { dims: [3, 7] } },
      build: (b, x) => b.op('Mul', [b.op('Mul', [x.a!, b.scalar(0.5)]), x.a!]),
    });
  });

  it('Pow with a constant exponent (2, 3, 0.5) and with a differentiated exponent', async () => {
    for (const e of [2, 3, 0.5]) {
      await checkCase(rt, `pow${e}`, {
        opset: 14,
        inputs: { a: { dims: [2, 5], range: [0.5, 1.5] } },
        build: (b, x) => b.op('Pow', [x.a!, b.scalar(e)]),
      });
    }
    await checkCase(rt, 'powe', {
      opset: 17,
      inputs: { a: { dims: [2, 5], range: [0.5, 1.5] }, e: { dims: [5], range: [0.5, 2] } },
      build: (b, x) => b.op('Pow', [x.a!, x.e!]),
    });
  });

  const unary: [string, [number, number] | undefined, Record<string, unknown>?][] = [
    ['Neg', undefined],
    ['Identity', undefined],
    ['Sqrt', [0.5, 2]],
    ['Exp', undefined],
    ['Log', [0.5, 2]],
    ['Reciprocal', [0.5, 2]],
    ['Erf', undefined],
    ['Sigmoid', undefined],
    ['Tanh', undefined],
    ['Softplus', undefined],
    ['Relu', undefined],
    ['LeakyRelu', undefined, { alpha: 0.2 }],
    ['Sin', undefined],
    ['Cos', undefined],
  ];
  for (const [op, range, attrs] of unary) {
    it(`${op}`, async () => {
      await checkCase(rt, op, {
        opset: 14,
        inputs: { a: { dims: [3, 5], range } },
        build: (b, x) => b.op(op, [x.a!], attrs as Record<string, number>),
        eps: op === 'Relu' || op === 'LeakyRelu' ? 1e-3 : 1e-2,
      });
    });
  }

  it('Gelu (opset 20): exact and tanh approximation', async () => {
    await checkCase(rt, 'gelu', { opset: 20, inputs: { a: { dims: [4, 6] } }, build: (b, x) => b.op('Gelu', [x.a!]) });
    await checkCase(rt, 'gelut', {
      opset: 20,
      inputs: { a: { dims: [4, 6] } },
      build: (b, x) => b.op('Gelu', [x.a!], { approximate: 'tanh' }),
    });
  });

  it('Where with a computed condition (no gradient into the condition) and broadcasting', async () => {
    await checkCase(rt, 'where', {
      opset: 14,
      inputs: { a: { dims: [3, 4] }, b: { dims: [4] } },
      build: (b, x) => b.op('Where', [b.op('Greater', [x.a!, b.scalar(0)]), x.a!, x.b!]),
    });
  });

  it('Cast float → float passes the gradient; a cast to int64 on the path passes none', async () => {
    await checkCase(rt, 'cast', {
      opset: 17,
      inputs: { a: { dims: [2, 3] } },
      build: (b, x) => {
        const asInt = b.op('Cast', [b.op('Mul', [x.a!, b.scalar(10)])], { to: 7 });
        const back = b.op('Cast', [asInt], { to: 1 });
        return b.op('Add', [b.op('Cast', [x.a!], { to: 1 }), b.op('Mul', [back, b.scalar(0)])]);
      },
    });
  });

  it('CastLike, variadic Sum/Mean with broadcasting, Clip, Dropout (inference)', async () => {
    await checkCase(rt, 'castlike', {
      opset: 15,
      inputs: { a: { dims: [2, 3] }, l: { dims: [1], wrt: false } },
      build: (b, x) => b.op('CastLike', [x.a!, x.l!]),
    });
    await checkCase(rt, 'sum', {
      opset: 14,
      inputs: { a: { dims: [2, 3] }, c: { dims: [3] }, d: { dims: [2, 1] } },
      build: (b, x) => b.op('Sum', [x.a!, x.c!, x.d!, x.a!]),
    });
    await checkCase(rt, 'mean', {
      opset: 14,
      inputs: { a: { dims: [2, 3] }, c: { dims: [3] } },
      build: (b, x) => b.op('Mean', [x.a!, x.c!, x.a!]),
    });
    await checkCase(rt, 'clip', {
      opset: 14,
      inputs: { a: { dims: [3, 5] } },
      build: (b, x) => b.op('Clip', [x.a!, b.scalar(-0.5), b.scalar(0.7)]),
      eps: 1e-3,
    });
    await checkCase(rt, 'clip', {
      opset: 14,
      inputs: { a: { dims: [3, 5] } },
      build: (b, x) => b.op('Clip', [x.a!, '', b.scalar(0.2)]),
      eps: 1e-3,
    });
    await checkCase(rt, 'dropout', {
      opset: 14,
      inputs: { a: { dims: [3, 5] } },
      build: (b, x) => b.op('Dropout', [x.a!, b.scalar(0.3)]),
    });
  });

  it('Max/Min of two inputs', async () => {
    await checkCase(rt, 'max', {
      opset: 14,
      inputs: { a: { dims: [3, 4] }, b: { dims: [4] } },
      build: (b, x) => b.op('Max', [x.a!, x.b!]),
      eps: 1e-3,
    });
    await checkCase(rt, 'min', {
      opset: 14,
      inputs: { a: { dims: [3, 4] }, b: { dims: [4] } },
      build: (b, x) => b.op('Min', [x.a!, x.b!]),
      eps: 1e-3,
    });
  });
});
