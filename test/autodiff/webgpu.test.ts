/**
 * Backward graphs on the WebGPU provider with CPU fallback disallowed: every node of the gradient graph must
 * be placed on WebGPU, and the gradients must match the CPU provider's. Runs only with VIDPRIOR_TEST_WEBGPU=1
 * (a Vulkan driver is needed, e.g. lavapipe: VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { encodeModel } from '../../src/onnx/codec.js';
import type { Model } from '../../src/onnx/ir.js';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { buildGradients } from '../../src/autodiff/index.js';
import { type Tensor, fromFloat16, toFloat16 } from '../../src/tensor.js';
import { prepareBackward, randomTensor } from './gradcheck.js';
import { buildSdBlock } from './sd-block.js';

const SKIP =
  process.env.VIDPRIOR_TEST_WEBGPU === '1'
    ? false
    : 'WebGPU tests run with VIDPRIOR_TEST_WEBGPU=1 (and a Vulkan driver, e.g. lavapipe)';

type Build = (b: GraphBuilder, x: Record<string, string>) => string;

/** Forward graphs whose ops (and backward ops) all have WebGPU kernels in ORT 1.30. */
const OP_GRAPHS: [string, number, Record<string, number[]>, Build][] = [
  [
    'Add/Sub/Mul/Div broadcast',
    14,
    { a: [2, 3, 4], c: [3, 1] },
    (b, x) =>
      b.op('Div', [
        b.op('Sub', [b.op('Mul', [b.op('Add', [x.a!, x.c!]), x.c!]), x.a!]),
        b.op('Add', [b.op('Mul', [x.c!, x.c!]), b.scalar(1)]),
      ]),
  ],
  [
    'unary chain',
    14,
    { a: [3, 4] },
    (b, x) => {
      let v = b.op('Pow', [b.op('Sigmoid', [x.a!]), b.scalar(3)]);
      for (const op of ['Sqrt', 'Exp', 'Erf', 'Tanh', 'Softplus', 'Sin', 'Cos', 'Neg', 'Sigmoid', 'Reciprocal', 'Relu'])
        v = b.op(op, [v]);
      return v;
    },
  ],
  [
    'Pow with a tensor exponent, Max/Min, Where',
    14,
    { a: [3, 4], c: [4] },
    (b, x) =>
      b.op('Where', [
        b.op('Greater', [x.a!, x.c!]),
        b.op('Pow', [b.op('Sigmoid', [x.a!]), x.c!]),
        b.op('Max', [b.op('Min', [x.a!, x.c!]), x.c!]),
      ]),
  ],
  ['Gelu none/tanh', 20, { a: [3, 4] }, (b, x) => b.op('Gelu', [b.op('Gelu', [x.a!], { approximate: 'tanh' })])],
  [
    'MatMul/Gemm',
    14,
    { a: [2, 3, 4], w: [4, 5], c: [2, 4, 5] },
    (b, x) =>
      b.op(
        'Gemm',
        [
          b.op('Reshape', [b.op('Add', [b.op('MatMul', [x.a!, x.w!]), b.op('MatMul', [x.a!, x.c!])]), b.ints([6, 5])]),
          x.w!,
        ],
        { transB: 1 },
      ),
  ],
  [
    'Einsum',
    14,
    { q: [2, 3, 4], k: [2, 5, 4] },
    (b, x) => b.op('Einsum', [b.op('Einsum', [x.q!, x.k!], { equation: 'bid,bjd->bij' })], { equation: 'bij->bi' }),
  ],
  [
    'Conv (stride, pads, group, dilation) and ConvTranspose',
    17,
    { x: [1, 4, 7, 7], w: [4, 2, 3, 3], t: [4, 2, 3, 3] },
    (b, x) =>
      b.op(
        'ConvTranspose',
        [b.op('Conv', [x.x!, x.w!], { group: 2, strides: [2, 2], pads: [1, 1, 1, 1], dilations: [1, 1] }), x.t!],
        { strides: [2, 2] },
      ),
  ],
  [
    'Softmax, InstanceNormalization, LayerNormalization',
    17,
    { x: [2, 3, 6], s: [3], c: [6] },
    (b, x) =>
      b.op('Add', [
        b.op('Add', [
          b.op('LayerNormalization', [x.x!, x.c!, x.c!]),
          b.op('InstanceNormalization', [x.x!, x.s!, x.s!]),
        ]),
        b.op('Softmax', [x.x!], { axis: 1 }),
      ]),
  ],
  [
    'layout ops',
    18,
    { a: [2, 1, 6, 4] },
    (b, x) => {
      const t = b.op('Transpose', [b.op('Squeeze', [b.op('Reshape', [x.a!, b.ints([2, 1, 4, 6])]), b.ints([1])])], {
        perm: [2, 0, 1],
      });
      const s = b.op('Slice', [t, b.ints([3, 1]), b.ints([-10, 6]), b.ints([0, 2]), b.ints([-1, 2])]);
      const [p, q] = b.opMulti('Split', [b.op('Pad', [s, b.ints([1, 1]), undefined, b.ints([1])])], 2, {
        axis: 1,
        num_outputs: 2,
      });
      return b.op('Tile', [
        b.op('Concat', [q!, b.op('Expand', [p!, b.ints([4, 2, 2])])], { axis: 0 }),
        b.ints([1, 2, 1]),
      ]);
    },
  ],
  [
    'Resize, ReduceSum/Mean, Gather (constant indices)',
    14,
    { a: [1, 2, 3, 3] },
    (b, x) =>
      b.op(
        'ReduceSum',
        [
          b.op(
            'ReduceMean',
            [
              b.op(
                'Gather',
                [
                  b.op('Resize', [x.a!, '', b.constant([1, 1, 2, 2], [4], 'float32')], {
                    mode: 'nearest',
                    coordinate_transformation_mode: 'asymmetric',
                    nearest_mode: 'floor',
                  }),
                  b.ints([0, 5, 5]),
                ],
                { axis: 2 },
              ),
            ],
            { axes: [1] },
          ),
          b.ints([-1]),
        ],
        { keepdims: 0 },
      ),
  ],
];

describe('autodiff on WebGPU (no CPU fallback)', { skip: SKIP }, () => {
  let cpu: Runtime, gpu: Runtime;
  before(async () => {
    cpu = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
    gpu = await openRuntime({ ep: 'webgpu' });
  });
  after(async () => {
    await cpu?.close();
    await gpu?.close();
  });

  /** Builds the backward graph on the CPU runtime, runs it on both, returns the worst relative difference. */
  async function compare(model: Model, wrt: string[], feeds: Record<string, Tensor>): Promise<number> {
    const { backward, feeds: all, gradNames } = await prepareBackward(cpu, model, { wrt, feeds });
    const bytes = encodeModel(backward);
    const inputs = Object.fromEntries(backward.graph.inputs.map((i) => [i.name, all[i.name]!]));
    const ref = await cpu.createSession(bytes);
    const dev = await gpu.createSession(bytes, { disallowCpuFallback: true });
    assert.equal(dev.ep, 'webgpu');
    const [a, r] = [await dev.run(inputs), await ref.run(inputs)];
    await dev.release();
    await ref.release();
    let worst = 0;
    for (const g of Object.values(gradNames)) {
      const x = (a[g] as Tensor<'float32'>).data,
        y = (r[g] as Tensor<'float32'>).data;
      let diff = 0,
        scale = 1e-6;
      for (let i = 0; i < x.length; i++) {
        diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
        scale = Math.max(scale, Math.abs(y[i]!));
      }
      worst = Math.max(worst, diff / scale);
    }
    return worst;
  }

  for (const [label, opset, inputs, build] of OP_GRAPHS) {
    it(`${label}: backward graph runs entirely on WebGPU`, async () => {
      const b = new GraphBuilder('g', { opset });
      const names: Record<string, string> = {};
      const feeds: Record<string, Tensor> = {};
      let seed = 3;
      for (const [n, dims] of Object.entries(inputs)) {
        names[n] = b.input(n, 'float32', dims);
        feeds[n] = randomTensor(dims, seed++, [0.3, 1.2]);
      }
      b.output(build(b, names), 'y');
      const worst = await compare(b.build(), Object.keys(inputs), feeds);
      assert.ok(worst < 1e-4, `worst relative difference ${worst}`);
    });
  }

  // (Not opset 21: ORT 1.30 runs the GroupNormalization-21 function partly on the CPU, forward pass included.)
  for (const opset of [14, 17, 20]) {
    it(`the SD block's backward graph (opset ${opset}) runs entirely on WebGPU and matches the CPU`, async () => {
      const { model, weights } = buildSdBlock({
        opset,
        batch: 1,
        cIn: 4,
        c: 8,
        size: 4,
        groups: 2,
        heads: 2,
        ctxLen: 3,
        ctxDim: 6,
        tembDim: 5,
      });
      const feeds = {
        sample: randomTensor([1, 4, 4, 4], 1),
        temb: randomTensor([1, 5], 2),
        context: randomTensor([1, 3, 6], 3),
      };
      assert.ok((await compare(model, [...weights, 'sample', 'context'], feeds)) < 1e-4);
    });
  }

  it('Gather with runtime ids: the int64 index reshape needs the CPU, the result is still right', async () => {
    for (const opset of [14, 17]) {
      const b = new GraphBuilder('embed', { opset });
      b.output(b.op('Gather', [b.input('t', 'float32', [50, 8]), b.input('ids', 'int64', [2, 6])]), 'y');
      const feeds = {
        t: randomTensor([50, 8], 1),
        ids: {
          type: 'int64' as const,
          dims: [2, 6],
          data: BigInt64Array.from([3, 0, 3, 1, 49, 3, 7, 7, 7, 0, 3, 2], BigInt),
        },
      };
      const { backward, feeds: all, gradNames } = await prepareBackward(cpu, b.build(), { wrt: ['t'], feeds });
      const bytes = encodeModel(backward);
      await assert.rejects(gpu.createSession(bytes, { disallowCpuFallback: true }), /CPU/);
      const inputs = Object.fromEntries(backward.graph.inputs.map((i) => [i.name, all[i.name]!]));
      const dev = await gpu.createSession(bytes);
      const ref = await cpu.createSession(bytes);
      const [x, y] = [
        (await dev.run(inputs))[gradNames.t!] as Tensor<'float32'>,
        (await ref.run(inputs))[gradNames.t!] as Tensor<'float32'>,
      ];
      await dev.release();
      await ref.release();
      assert.ok(x.data.every((v, i) => Math.abs(v - y.data[i]!) < 1e-5));
    }
  });

  it('a float16 model gets a float16 backward graph that runs on WebGPU, close to float32', async () => {
    const spec = { opset: 17, batch: 1, cIn: 4, c: 8, size: 4, groups: 2, heads: 2, ctxLen: 3, ctxDim: 6, tembDim: 5 };
    const feeds32: Record<string, Tensor<'float32'>> = {
      sample: randomTensor([1, 4, 4, 4], 1),
      temb: randomTensor([1, 5], 2),
      context: randomTensor([1, 3, 6], 3),
    };
    const grads: Record<string, Float32Array>[] = [];
    for (const half of [false, true]) {
      const { model, weights } = buildSdBlock(spec);
      if (half) toHalf(model);
      const b = new GraphBuilder(model);
      const loss = b.op('ReduceMean', [model.graph.outputs[0]!.name], { keepdims: 0 });
      model.graph.outputs = [];
      const { gradients } = buildGradients(model, { loss, wrt: weights, builder: b });
      weights.forEach((w, i) => {
        b.output(gradients[w]!, `g${i}`, half ? 'float16' : 'float32', null);
      });
      const feeds = half
        ? Object.fromEntries(
            Object.entries(feeds32).map(([k, t]) => [
              k,
              { type: 'float16' as const, dims: t.dims, data: toFloat16(t.data) },
            ]),
          )
        : feeds32;
      const session = await gpu.createSession(encodeModel(model), { disallowCpuFallback: true });
      const out = await session.run(feeds);
      await session.release();
      grads.push(
        Object.fromEntries(
          weights.map((w, i) => {
            const t = out[`g${i}`] as Tensor;
            return [w, half ? fromFloat16(t.data as Uint16Array) : (t.data as Float32Array)];
          }),
        ),
      );
    }
    for (const [w, ref] of Object.entries(grads[0]!)) {
      const h = grads[1]![w]!;
      let diff = 0,
        scale = 1e-6;
      for (let i = 0; i < ref.length; i++) {
        diff = Math.max(diff, Math.abs(h[i]! - ref[i]!));
        scale = Math.max(scale, Math.abs(ref[i]!));
      }
      assert.ok(
        diff / scale < 0.05,
        `${w}: float16 differs from float32 by ${(diff / scale).toFixed(4)} of its largest element`,
      );
    }
  });
});

/** Turns the float32 block into a float16 one (Resize's scales stay float32, as ONNX requires). */
function toHalf(model: Model): void {
  const keep = new Set(model.graph.nodes.filter((n) => n.opType === 'Resize').flatMap((n) => n.inputs.slice(1)));
  for (const t of model.graph.initializers) {
    if (t.type !== 'float32' || keep.has(t.name)) continue;
    t.data = toFloat16(t.data as Float32Array);
    t.type = 'float16';
  }
  for (const v of [...model.graph.inputs, ...model.graph.outputs]) if (v.type === 'float32') v.type = 'float16';
}
