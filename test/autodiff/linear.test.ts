import { after, before, describe, it } from 'node:test';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { checkCase } from './gradcheck.js';

describe('autodiff: MatMul, Gemm, Einsum', () => {
  let rt: Runtime;
  before(async () => {
    rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  });
  after(async () => {
    await rt.close();
  });

  const matmuls: [number[], number[]][] = [
    [
      [3, 4],
      [4, 5],
    ], // plain
    [
      [2, 3, 4],
      [4, 5],
    ], // activations × weight (flattened Gemm path)
    [
      [2, 3, 4],
      [2, 4, 5],
    ], // batched
    [
      [2, 1, 3, 4],
      [3, 4, 2],
    ], // broadcast batch on both sides
    [[4], [4, 3]], // 1-D left
    [[2, 3, 4], [4]], // 1-D right
    [[4], [4]], // dot product
  ];
  for (const [a, bShape] of matmuls) {
    it(`MatMul [${a}] × [${bShape}]`, async () => {
      await checkCase(rt, 'matmul', {
        opset: 14,
        inputs: { a: { dims: a }, b: { dims: bShape } },
        build: (b, x) => b.op('MatMul', [x.a!, x.b!]),
      });
    });
  }

  for (const [transA, transB] of [
    [0, 0],
    [1, 0],
    [0, 1],
    [1, 1],
  ]) {
    it(`Gemm transA=${transA} transB=${transB}, alpha/beta, broadcast C`, async () => {
      const aDims = transA ? [4, 3] : [3, 4];
      const bDims = transB ? [5, 4] : [4, 5];
      await checkCase(rt, 'gemm', {
        opset: 14,
        inputs: { a: { dims: aDims }, b: { dims: bDims }, c: { dims: [5] } },
        build: (b, x) => b.op('Gemm', [x.a!, x.b!, x.c!], { transA, transB, alpha: 0.7, beta: 1.3 }),
      });
      await checkCase(rt, 'gemm', {
        opset: 17,
        inputs: { a: { dims: aDims }, b: { dims: bDims }, c: { dims: [3, 1] } },
        build: (b, x) => b.op('Gemm', [x.a!, x.b!, x.c!], { transA, transB }),
      });
    });
  }

  it('Gemm without C', async () => {
    await checkCase(rt, 'gemm', {
      opset: 17,
      inputs: { a: { dims: [2, 3] }, b: { dims: [3, 4] } },
      build: (b, x) => b.op('Gemm', [x.a!, x.b!]),
    });
  });

  const einsums: [string, number[][]][] = [
    [
      'bid,bjd->bij',
      [
        [2, 3, 4],
        [2, 5, 4],
      ],
    ], // SD 1.4 attention scores
    [
      'bij,bjd->bid',
      [
        [2, 3, 5],
        [2, 5, 4],
      ],
    ], // SD 1.4 attention output
    [
      'ij,jk',
      [
        [3, 4],
        [4, 2],
      ],
    ], // implicit output
    [
      'bhid,bhjd->bhij',
      [
        [1, 2, 3, 4],
        [1, 2, 5, 4],
      ],
    ],
    ['ij->i', [[3, 4]]], // summed-away index (gradient broadcast back)
    ['ij,j->i', [[3, 4], [4]]],
    [
      '...ij,...jk->...ik',
      [
        [2, 3, 4],
        [2, 4, 2],
      ],
    ],
  ];
  for (const [equation, shapes] of einsums) {
    it(`Einsum ${equation}`, async () => {
      const inputs = Object.fromEntries(shapes.map((d, i) => [`x${i}`, { dims: d }]));
      await checkCase(rt, 'einsum', {
        opset: 14,
        inputs,
        build: (b, x) =>
          b.op(
            'Einsum',
            shapes.map((_, i) => x[`x${i}`]!),
            { equation },
          ),
      });
    });
  }
});
