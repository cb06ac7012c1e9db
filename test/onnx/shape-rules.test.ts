/**
 * Shape rules checked against ONNX Runtime itself: graphs with one node per case are inferred, then run on the
 * CPU provider, and every inferred output type and shape must equal what ORT produced.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { encodeModel } from '../../src/onnx/codec.js';
import { inferShapes } from '../../src/onnx/shape-inference.js';
import type { Dim } from '../../src/onnx/ir.js';
import { type Runtime, isGpuTensor, openRuntime } from '../../src/runtime/index.js';
import { float32 } from '../../src/tensor.js';

let rt: Runtime;
before(async () => {
  rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
});
after(async () => {
  await rt.close();
});

const seq = (n: number, scale = 0.1): Float32Array =>
  Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7) * scale * 10);

/** Declares every case output as a graph output, infers, runs on ORT and compares types and dims. */
async function checkAgainstOrt(
  b: GraphBuilder,
  cases: Record<string, string>,
  dynamic: Record<string, Dim[]> = {},
): Promise<string[]> {
  const evaluated: string[] = [];
  const model = b.build();
  const first = inferShapes(model);
  for (const [label, value] of Object.entries(cases)) {
    model.graph.outputs.push({ name: value, type: first.infos.get(value)!.type, shape: null });
    void label;
  }
  const { infos, values } = inferShapes(model);
  const session = await rt.createSession(encodeModel(model), { label: model.graph.name });
  const feeds = Object.fromEntries(
    model.graph.inputs.map((v) => [
      v.name,
      float32(v.shape as number[], seq((v.shape as number[]).reduce((a, d) => a * d, 1))),
    ]),
  );
  const outs = await session.run(feeds);
  for (const [label, value] of Object.entries(cases)) {
    const actual = outs[value]!;
    assert.ok(!isGpuTensor(actual));
    const inferred = infos.get(value)!;
    assert.equal(inferred.type, actual.type, `${label}: type`);
    const expected = dynamic[label] ?? [...actual.dims];
    assert.deepEqual(
      inferred.shape,
      expected,
      `${label}: inferred ${JSON.stringify(inferred.shape)}, ORT ${JSON.stringify(actual.dims)}`,
    );
    // Values computed during inference (shape arithmetic, constants) must be what ORT computes.
    const known = values.get(value);
    if (known) {
      const ort = Array.from(actual.data as ArrayLike<number | bigint>, Number);
      assert.equal(known.values.length, ort.length, `${label}: value count`);
      known.values.forEach((v, i) => {
        assert.ok(
          typeof v === 'number' && Math.abs(v - ort[i]!) <= 1e-6 * Math.max(1, Math.abs(ort[i]!)),
          `${label}[${i}]: ${v} vs ORT ${ort[i]}`,
        );
      });
      evaluated.push(label);
    }
  }
  await session.release();
  return evaluated;
}

test('shape rules agree with ORT: convolution, pooling, matmul, einsum, normalization (opset 17)', async () => {
  const b = new GraphBuilder('nn', { opset: 17 });
  const x = b.input('x', 'float32', [2, 3, 8, 8]);
  const m = b.input('m', 'float32', [2, 5, 4]);
  const w = (name: string, dims: number[]) =>
    b.initializer(name, 'float32', dims, seq(dims.reduce((a, d) => a * d, 1)));
  const cases: Record<string, string> = {
    conv: b.op('Conv', [x, w('w1', [6, 3, 3, 3]), w('b1', [6])], { pads: [1, 1, 1, 1], strides: [2, 2] }),
    convGroupDilated: b.op('Conv', [x, w('w2', [3, 1, 3, 3])], { group: 3, dilations: [2, 2] }),
    convSame: b.op('Conv', [x, w('w3', [4, 3, 2, 2])], { auto_pad: 'SAME_UPPER', strides: [3, 3] }),
    convT: b.op('ConvTranspose', [x, w('w4', [3, 4, 3, 3])], {
      strides: [2, 2],
      pads: [1, 1, 1, 1],
      output_padding: [1, 1],
    }),
    convTGroup: b.op('ConvTranspose', [x, w('w5', [3, 2, 4, 4])], { group: 3, strides: [2, 2] }),
    maxPool: b.op('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2] }),
    avgPool: b.op('AveragePool', [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 }),
    globalPool: b.op('GlobalAveragePool', [x]),
    matmul: b.op('MatMul', [m, w('w6', [4, 7])]),
    matmulVec: b.op('MatMul', [w('v1', [4]), w('w7', [3, 4, 2])]),
    matmulBatch: b.op('MatMul', [w('a1', [3, 1, 2, 4]), w('a2', [5, 4, 6])]),
    gemm: b.op('Gemm', [w('g1', [5, 4]), w('g2', [7, 4]), w('g3', [7])], { transB: 1 }),
    gemmTA: b.op('Gemm', [w('g4', [4, 5]), w('g5', [4, 2])], { transA: 1 }),
    einsum: b.op('Einsum', [m, w('e1', [2, 4, 3])], { equation: 'bij,bjk->bik' }),
    einsumImplicit: b.op('Einsum', [w('e2', [3, 4])], { equation: 'ij' }),
    einsumTranspose: b.op('Einsum', [m], { equation: 'bij->jbi' }),
    einsumEllipsis: b.op('Einsum', [x, w('e3', [8, 5])], { equation: '...ij,jk->...ik' }),
    softmax: b.op('Softmax', [m], { axis: 1 }),
    layerNorm: b.op('LayerNormalization', [m, w('ln1', [4]), w('ln2', [4])], { axis: -1, epsilon: 1e-5 }),
    instanceNorm: b.op('InstanceNormalization', [x, w('in1', [3]), w('in2', [3])]),
    resize: b.op('Resize', [x, '', b.constant([1, 1, 2, 2], [4], 'float32')], { mode: 'nearest' }),
    resizeSizes: b.op('Resize', [x, '', '', b.ints([2, 3, 5, 12])], { mode: 'linear' }),
  };
  const [, mean, invStd] = b.opMulti('LayerNormalization', [m, w('ln3', [5, 4])], 3, { axis: 1 });
  cases.layerNormMean = mean!;
  cases.layerNormInvStd = invStd!;
  await checkAgainstOrt(b, cases);
});

test('shape rules agree with ORT: data movement, elementwise and shape arithmetic (opset 17)', async () => {
  const b = new GraphBuilder('data', { opset: 17 });
  const x = b.input('x', 'float32', [2, 3, 4, 1]);
  const m = b.input('m', 'float32', [5, 4]);
  const shape = b.op('Shape', [x]);
  const cases: Record<string, string> = {
    reshape: b.op('Reshape', [x, b.ints([0, -1, 2])]),
    reshapeFromShape: b.op('Reshape', [
      m,
      b.op('Concat', [b.op('Slice', [shape, b.ints([2]), b.ints([3])]), b.ints([-1])], { axis: 0 }),
    ]),
    flatten: b.op('Flatten', [x], { axis: 2 }),
    flatten0: b.op('Flatten', [x], { axis: 0 }),
    transpose: b.op('Transpose', [x], { perm: [3, 1, 0, 2] }),
    transposeDefault: b.op('Transpose', [m]),
    squeeze: b.op('Squeeze', [x, b.ints([3])]),
    unsqueeze: b.op('Unsqueeze', [m, b.ints([0, -1])]),
    concat: b.op('Concat', [x, x, x], { axis: 1 }),
    // biome-ignore lint/correctness/noPrecisionLoss: INT64_MAX as exports write it (an "until the end" slice)
    slice: b.op('Slice', [x, b.ints([-1, 0]), b.ints([-10, 9223372036854775807]), b.ints([2, 1]), b.ints([-1, 3])]),
    gather: b.op('Gather', [x, b.constant([0, 2, 1, 2, 0, 1], [2, 3], 'int64')], { axis: 1 }),
    gatherScalar: b.op('Gather', [m, b.scalar(-1, 'int64')]),
    gatherElements: b.op('GatherElements', [m, b.constant([0, 1, 2, 3, 0, 1], [3, 2], 'int64')], { axis: 0 }),
    expand: b.op('Expand', [m, b.ints([3, 1, 4])]),
    tile: b.op('Tile', [m, b.ints([2, 3])]),
    pad: b.op('Pad', [x, b.ints([0, 1, 2, 0, 0, 3, 0, 0])]),
    where: b.op('Where', [
      b.op('Greater', [m, b.scalar(0)]),
      m,
      b.op('Neg', [b.op('Reshape', [m, b.ints([5, 1, 4])])]),
    ]),
    equal: b.op('Equal', [m, b.op('Transpose', [b.op('Relu', [b.op('Transpose', [m])])])]),
    less: b.op('Less', [x, b.scalar(0)]),
    not: b.op('Not', [b.op('Less', [m, b.scalar(0)])]),
    range: b.op('Range', [b.scalar(1, 'int64'), b.op('Gather', [shape, b.scalar(2, 'int64')]), b.scalar(2, 'int64')]),
    rangeFloat: b.op('Range', [b.scalar(0), b.scalar(2.5), b.scalar(0.5)]),
    constantOfShape: b.op('ConstantOfShape', [b.op('Slice', [shape, b.ints([1]), b.ints([3])])], {
      value: { name: '', type: 'int64', dims: [1], data: BigInt64Array.from([7n]) },
    }),
    cast: b.op('Cast', [m], { to: 7 }),
    cumsum: b.op('CumSum', [m, b.scalar(1, 'int32')]),
    trilu: b.op('Trilu', [m], { upper: 0 }),
    minMax: b.op('Max', [m, b.op('Min', [m, b.scalar(0.5)]), b.op('Reshape', [m, b.ints([5, 1, 4])])]),
    sum: b.op('Sum', [m, b.scalar(1), b.op('Unsqueeze', [m, b.ints([0])])]),
    mean: b.op('Mean', [m, m]),
    clip: b.op('Clip', [m, b.scalar(-0.5), b.scalar(0.5)]),
    argmax: b.op('ArgMax', [x], { axis: 1, keepdims: 0 }),
    argmaxKeep: b.op('ArgMax', [m], { axis: -1 }),
    reduceSum: b.op('ReduceSum', [x, b.ints([1, 2])], { keepdims: 0 }),
    reduceMean: b.op('ReduceMean', [x], { axes: [-1] }),
    reduceMax: b.op('ReduceMax', [m], { keepdims: 0 }),
    unary: b.op('Reciprocal', [b.op('Exp', [b.op('Tanh', [b.op('Sigmoid', [b.op('Erf', [m])])])])]),
    log: b.op('Log', [b.op('Sqrt', [b.op('Abs', [m])])]),
    pow: b.op('Pow', [m, b.scalar(2)]),
    shapeSlice: b.op('Shape', [x], { start: 1, end: -1 }),
    size: b.op('Size', [x]),
    isNaN: b.op('IsNaN', [m]),
    lessOrEqual: b.op('LessOrEqual', [m, b.scalar(0)]),
    identity: b.op('Identity', [m]),
  };
  const [s0, s1] = b.opMulti('Split', [x, b.ints([1, 2])], 2, { axis: 1 });
  const [topV, topI] = b.opMulti('TopK', [m, b.ints([2])], 2, { axis: 1 });
  cases.split0 = s0!;
  cases.split1 = s1!;
  cases.topKValues = topV!;
  cases.topKIndices = topI!;
  cases.nonZero = b.op('NonZero', [m]);
  const evaluated = await checkAgainstOrt(b, cases, { nonZero: [2, null] });
  for (const label of ['range', 'rangeFloat', 'constantOfShape', 'shapeSlice', 'size'])
    assert.ok(evaluated.includes(label), label);
});

test('shape rules agree with ORT: opset 18/20 forms (axes inputs, num_outputs, Gelu, GroupNormalization)', async () => {
  const b = new GraphBuilder('new', { opset: 20 });
  const x = b.input('x', 'float32', [2, 4, 6, 6]);
  const [a, c, d] = b.opMulti('Split', [x], 3, { axis: 2, num_outputs: 3 });
  const cases: Record<string, string> = {
    split0: a!,
    split1: c!,
    split2: d!,
    splitUneven: b.opMulti('Split', [b.op('Slice', [x, b.ints([0]), b.ints([5]), b.ints([3])])], 2, {
      axis: 3,
      num_outputs: 2,
    })[1]!,
    reduceMean: b.op('ReduceMean', [x, b.ints([2, 3])]),
    reduceMax: b.op('ReduceMax', [x, b.ints([1])], { keepdims: 0 }),
    padAxes: b.op('Pad', [x, b.ints([1, 2, 3, 4]), b.scalar(0), b.ints([1, -1])]),
    resizeAxes: b.op('Resize', [x, '', b.constant([2, 0.5], [2], 'float32')], { axes: [2, 3], mode: 'nearest' }),
    gelu: b.op('Gelu', [x], { approximate: 'tanh' }),
    // Before opset 21, scale and bias have one value per group.
    groupNorm: b.op(
      'GroupNormalization',
      [x, b.constant(new Float32Array(2).fill(1), [2]), b.constant(new Float32Array(2), [2])],
      { num_groups: 2 },
    ),
  };
  await checkAgainstOrt(b, cases);
});

test('shape rules agree with ORT: com.microsoft MultiHeadAttention', async () => {
  const b = new GraphBuilder('mha', { opset: 17, domains: { 'com.microsoft': 1 } });
  const q = b.input('q', 'float32', [2, 5, 8]);
  const kv = b.input('kv', 'float32', [2, 7, 8]);
  const out = b.op(
    'MultiHeadAttention',
    [q, kv, b.op('Slice', [b.op('Concat', [kv, kv], { axis: 2 }), b.ints([0]), b.ints([6]), b.ints([2])])],
    { num_heads: 2 },
    { domain: 'com.microsoft' },
  );
  await checkAgainstOrt(b, { mha: out });
});

test('constant evaluation agrees with ORT on int64 and float shape arithmetic', async () => {
  const b = new GraphBuilder('consts', { opset: 17 });
  const c = b.constant(BigInt64Array.from([3n, -7n, 5n, 2n, 8n, -1n]), [2, 3], 'int64', 'c');
  const f = b.constant(Float32Array.from([1.5, -2.25, 9, 0.5]), [4], 'float32', 'f');
  const two = b.scalar(2, 'int64');
  const cases: Record<string, string> = {
    gather: b.op('Gather', [c, b.constant([1, -1, 0], [3], 'int64')], { axis: 1 }),
    concat: b.op('Concat', [c, b.op('Neg', [c])], { axis: 1 }),
    sliceBack: b.op('Slice', [c, b.ints([-1]), b.ints([-9]), b.ints([1]), b.ints([-2])]),
    transpose: b.op('Transpose', [c]),
    tile: b.op('Tile', [c, b.ints([2, 1])]),
    expand: b.op('Expand', [b.op('Reshape', [c, b.ints([2, 1, 3])]), b.ints([2, 2, 3])]),
    where: b.op('Where', [b.op('Greater', [c, b.scalar(2, 'int64')]), c, b.op('Mul', [c, two])]),
    equal: b.op('Equal', [c, b.op('Abs', [c])]),
    arith: b.op('Sub', [
      b.op('Add', [b.op('Div', [c, two]), b.op('Mod', [c, b.scalar(3, 'int64')])]),
      b.scalar(1, 'int64'),
    ]),
    minMax: b.op('Max', [b.op('Min', [c, b.scalar(4, 'int64')]), b.scalar(-2, 'int64')]),
    castDown: b.op('Cast', [b.op('Mul', [f, b.scalar(1.5)])], { to: 7 }),
    floatMath: b.op('Sqrt', [b.op('Abs', [b.op('Floor', [b.op('Div', [f, b.scalar(0.3)])])])]),
    ceil: b.op('Ceil', [f]),
    reduceProd: b.op('ReduceProd', [c], { axes: [1], keepdims: 0 }),
    reduceSum: b.op('ReduceSum', [c, b.ints([0])]),
    range: b.op('Range', [b.scalar(10, 'int64'), b.scalar(-3, 'int64'), b.scalar(-4, 'int64')]),
    squeeze: b.op('Squeeze', [b.op('Unsqueeze', [c, b.ints([0, 3])]), b.ints([3])]),
    flatten: b.op('Identity', [b.op('Flatten', [c], { axis: 0 })]),
  };
  const evaluated = await checkAgainstOrt(b, cases);
  assert.deepEqual(evaluated.sort(), Object.keys(cases).sort(), 'every case was evaluated at inference time');
});

test('shape rules agree with ORT: opset 23 Attention (4-D and 3-D with head counts)', async () => {
  const b = new GraphBuilder('attention', { opset: 23 });
  const q = b.input('q', 'float32', [2, 4, 5, 8]);
  const kv = b.input('kv', 'float32', [2, 2, 7, 8]);
  const q3 = b.op('Reshape', [b.op('Transpose', [q], { perm: [0, 2, 1, 3] }), b.ints([2, 5, 32])]);
  const kv3 = b.op('Reshape', [b.op('Transpose', [kv], { perm: [0, 2, 1, 3] }), b.ints([2, 7, 16])]);
  const [y4, presentK] = b.opMulti('Attention', [q, kv, kv], 3);
  await checkAgainstOrt(b, {
    attention4d: y4!,
    presentK: presentK!,
    attention3d: b.op('Attention', [q3, kv3, kv3], { q_num_heads: 4, kv_num_heads: 2 }),
  });
});
