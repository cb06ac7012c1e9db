import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel } from '../../src/onnx/codec.js';
import { inferShapes, shapeRuleFor, staticShape } from '../../src/onnx/shape-inference.js';
import type { Dim, Model } from '../../src/onnx/ir.js';
import { VidpriorError } from '../../src/errors.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch';

const loadPart = (part: string): Model => decodeModel(readFileSync(`${FIXTURE}/${part}/model.onnx`));
const isShapeError = (re: RegExp) => (e: unknown) =>
  e instanceof VidpriorError && e.code === 'E_SHAPE' && re.test(e.message);

/** Every node output of the model has a fully static shape. */
function assertAllStatic(model: Model, infos: Map<string, { shape: Dim[] | null }>): void {
  for (const n of model.graph.nodes) {
    for (const o of n.outputs) {
      const s = infos.get(o)?.shape;
      assert.ok(
        s?.every((d) => typeof d === 'number'),
        `${n.opType} "${n.name}" output ${o}: ${JSON.stringify(s)}`,
      );
    }
  }
}

test('shape inference: every value of the tiny-sd-torch models is static, outputs match the reference', (t) => {
  if (!existsSync(FIXTURE)) {
    t.skip(`${FIXTURE} not found`);
    return;
  }
  const reference = JSON.parse(readFileSync(`${FIXTURE}/reference.json`, 'utf8')) as Record<
    string,
    { shape: number[] }
  >;
  const cases: [string, Record<string, number[]>, Record<string, number[]>][] = [
    [
      'text_encoder',
      { input_ids: reference.input_ids!.shape },
      { last_hidden_state: reference.te_hidden!.shape, pooler_output: [1, 32] },
    ],
    [
      'unet',
      { sample: reference.unet_x!.shape, timestep: [1], encoder_hidden_states: reference.te_hidden!.shape },
      { out_sample: reference.unet_eps!.shape },
    ],
    [
      'unet',
      { sample: [2, 4, 16, 16], timestep: [1], encoder_hidden_states: [2, 77, 32] },
      { out_sample: [2, 4, 16, 16] },
    ],
    ['vae_encoder', { sample: reference.vae_img!.shape }, { latent_sample: reference.vae_lat!.shape }],
    ['vae_decoder', { latent_sample: reference.vae_lat!.shape }, { sample: reference.vae_dec!.shape }],
  ];
  for (const [part, inputs, outputs] of cases) {
    const model = loadPart(part);
    const result = inferShapes(model, inputs);
    assertAllStatic(model, result.infos);
    for (const [name, shape] of Object.entries(outputs))
      assert.deepEqual(staticShape(result, name), shape, `${part} ${name}`);
    // graph.valueInfo now describes every intermediate value.
    const described = new Set(model.graph.valueInfo.map((v) => v.name));
    const outputNames = new Set(model.graph.outputs.map((o) => o.name));
    for (const n of model.graph.nodes)
      for (const o of n.outputs) if (!outputNames.has(o)) assert.ok(described.has(o), o);
  }
});

test('shape inference: a symbolic batch flows through the fixture models', (t) => {
  if (!existsSync(FIXTURE)) {
    t.skip(`${FIXTURE} not found`);
    return;
  }
  const te = inferShapes(loadPart('text_encoder'), { input_ids: ['batch', 77] });
  assert.deepEqual(te.infos.get('last_hidden_state')!.shape, ['batch', 77, 32]);
  assert.deepEqual(te.infos.get('pooler_output')!.shape, ['batch', 32]);
  const unet = inferShapes(loadPart('unet'), {
    sample: ['batch', 4, 16, 16],
    timestep: [1],
    encoder_hidden_states: ['batch', 77, 32],
  });
  assert.deepEqual(unet.infos.get('out_sample')!.shape, ['batch', 4, 16, 16]);
  const dec = loadPart('vae_decoder');
  const r = inferShapes(dec, { latent_sample: ['n', 4, 8, 8] }, { setSignature: true });
  assert.deepEqual(r.infos.get('sample')!.shape, ['n', 3, 16, 16]);
  assert.deepEqual(dec.graph.outputs[0]!.shape, ['n', 3, 16, 16], 'setSignature writes the inferred output shape');
  assert.deepEqual(dec.graph.inputs[0]!.shape, ['n', 4, 8, 8]);
});

test('shape inference: Reshape targets computed from Shape chains become static', () => {
  const b = new GraphBuilder('chain', { opset: 17 });
  const x = b.input('x', 'float32', ['batch', 8, 'h', 'w']);
  const shape = b.op('Shape', [x]);
  const n = b.op('Unsqueeze', [b.op('Gather', [shape, b.scalar(0, 'int64')], { axis: 0 }), b.ints([0])]);
  const target = b.op('Concat', [n, b.ints([2, 4]), b.ints([-1])], { axis: 0 });
  const y = b.op('Reshape', [x, target], {}, { outputs: ['y'] });
  const back = b.op('Reshape', [y, shape], {}, { outputs: ['back'] });
  const flat = b.op('Flatten', [x], { axis: 2 }, { outputs: ['flat'] });
  b.output(b.op('Add', [back, x]), 'z');
  b.output(flat, undefined, 'float32');
  const m = b.build();
  const fixed = inferShapes(m, { x: [3, 8, 4, 5] });
  assert.deepEqual(fixed.infos.get('y')!.shape, [3, 2, 4, 20]);
  assert.deepEqual(fixed.values.get(target)!.values, [3, 2, 4, -1]);
  const symbolic = inferShapes(m);
  assert.deepEqual(symbolic.infos.get('y')!.shape, ['batch', 2, 4, 'h*w']);
  assert.deepEqual(symbolic.infos.get('back')!.shape, ['batch', 8, 'h', 'w']);
  assert.deepEqual(symbolic.infos.get('flat')!.shape, ['8*batch', 'h*w']);
  assert.deepEqual(symbolic.values.get(shape)!.values, ['batch', 8, 'h', 'w']);
});

test('shape inference: axes as attributes or inputs by opset (Reduce*, Squeeze, Unsqueeze, Split, Slice, Pad)', () => {
  const run = (opset: number, build: (b: GraphBuilder, x: string) => string): Dim[] | null => {
    const b = new GraphBuilder('o', { opset });
    const x = b.input('x', 'float32', [2, 3, 4, 1]);
    b.output(build(b, x), 'y', 'float32');
    return inferShapes(b.build()).infos.get('y')!.shape;
  };
  assert.deepEqual(
    run(11, (b, x) => b.op('ReduceSum', [x], { axes: [1], keepdims: 0 })),
    [2, 4, 1],
  );
  assert.deepEqual(
    run(13, (b, x) => b.op('ReduceSum', [x, b.ints([1, -2])])),
    [2, 1, 1, 1],
  );
  assert.deepEqual(
    run(13, (b, x) => b.op('ReduceSum', [x])),
    [1, 1, 1, 1],
  );
  assert.deepEqual(
    run(13, (b, x) => b.op('ReduceSum', [x], { noop_with_empty_axes: 1 })),
    [2, 3, 4, 1],
  );
  assert.deepEqual(
    run(17, (b, x) => b.op('ReduceMean', [x], { axes: [-1, 2] })),
    [2, 3, 1, 1],
  );
  assert.deepEqual(
    run(18, (b, x) => b.op('ReduceMean', [x, b.ints([0])], { keepdims: 0 })),
    [3, 4, 1],
  );
  assert.deepEqual(
    run(11, (b, x) => b.op('Squeeze', [x], { axes: [3] })),
    [2, 3, 4],
  );
  assert.deepEqual(
    run(13, (b, x) => b.op('Squeeze', [x, b.ints([-1])])),
    [2, 3, 4],
  );
  assert.deepEqual(
    run(13, (b, x) => b.op('Squeeze', [x])),
    [2, 3, 4],
  );
  assert.deepEqual(
    run(11, (b, x) => b.op('Unsqueeze', [x], { axes: [0, 5] })),
    [1, 2, 3, 4, 1, 1],
  );
  assert.deepEqual(
    run(13, (b, x) => b.op('Unsqueeze', [x, b.ints([-1])])),
    [2, 3, 4, 1, 1],
  );
  assert.deepEqual(
    run(11, (b, x) => b.opMulti('Split', [x], 2, { axis: 2, split: [1, 3] })[1]!),
    [2, 3, 3, 1],
  );
  assert.deepEqual(
    run(13, (b, x) => b.opMulti('Split', [x, b.ints([3, 1])], 2, { axis: 2 })[0]!),
    [2, 3, 3, 1],
  );
  assert.deepEqual(
    run(13, (b, x) => b.opMulti('Split', [x], 2, { axis: 2 })[1]!),
    [2, 3, 2, 1],
  );
  assert.deepEqual(
    run(18, (b, x) => b.opMulti('Split', [x], 3, { axis: 1, num_outputs: 3 })[2]!),
    [2, 1, 4, 1],
  );
  assert.deepEqual(
    run(9, (b, x) => b.op('Slice', [x], { starts: [1], ends: [100], axes: [2] })),
    [2, 3, 3, 1],
  );
  assert.deepEqual(
    run(13, (b, x) =>
      // biome-ignore lint/correctness/noPrecisionLoss: INT64_MAX as exports write it (an "until the end" slice)
      b.op('Slice', [x, b.ints([-1, 0]), b.ints([-4, 9223372036854775807]), b.ints([2, 0]), b.ints([-1, 2])]),
    ),
    [1, 3, 3, 1],
  );
  assert.deepEqual(
    run(10, (b, x) => b.op('Pad', [x], { pads: [0, 1, 0, 0, 0, 2, 0, 0] })),
    [2, 6, 4, 1],
  );
  assert.deepEqual(
    run(13, (b, x) => b.op('Pad', [x, b.ints([0, 0, 1, 0, 0, 0, 1, 0])])),
    [2, 3, 6, 1],
  );
  assert.deepEqual(
    run(18, (b, x) => b.op('Pad', [x, b.ints([1, 2]), '', b.ints([2])])),
    [2, 3, 7, 1],
  );
});

test('shape inference: Resize by scales or sizes across opsets', () => {
  const run = (
    opset: number,
    inputs: (b: GraphBuilder) => (string | undefined)[],
    attrs: Record<string, number[] | string> = {},
  ): Dim[] | null => {
    const b = new GraphBuilder('r', { opset });
    const x = b.input('x', 'float32', [1, 4, 8, 6]);
    b.output(b.op('Resize', [x, ...inputs(b)], { mode: 'nearest', ...attrs }), 'y', 'float32');
    return inferShapes(b.build()).infos.get('y')!.shape;
  };
  assert.deepEqual(
    run(10, (b) => [b.constant([1, 1, 2, 2], [4], 'float32')]),
    [1, 4, 16, 12],
  );
  assert.deepEqual(
    run(11, (b) => [b.constant([], [0], 'float32'), b.constant([1, 1, 2, 0.5], [4], 'float32')]),
    [1, 4, 16, 3],
  );
  assert.deepEqual(
    run(13, (b) => ['', '', b.ints([1, 4, 5, 7])]),
    [1, 4, 5, 7],
  );
  assert.deepEqual(
    run(18, (b) => ['', b.constant([3, 3], [2], 'float32')], { axes: [2, 3] }),
    [1, 4, 24, 18],
  );
});

test('shape inference: unknown ops, mismatches and bad input shapes are E_SHAPE errors naming the node', () => {
  const one = (build: (b: GraphBuilder) => string, inputs: Record<string, Dim[]> = {}) => {
    const b = new GraphBuilder('e', { opset: 17 });
    b.input('a', 'float32', [2, 3]);
    b.input('b', 'float32', [4, 3]);
    b.output(build(b), 'y', 'float32');
    return () => inferShapes(b.build(), inputs);
  };
  assert.throws(
    one((b) => b.op('FancyOp', ['a'], {}, { name: 'fancy' })),
    isShapeError(/no shape rule for operator FancyOp \(node "fancy"\)/),
  );
  assert.throws(
    one((b) => b.op('Foo', ['a'], {}, { name: 'f', domain: 'com.example' })),
    isShapeError(/com\.example::Foo/),
  );
  assert.throws(
    one((b) => b.op('Add', ['a', 'b'], {}, { name: 'add' })),
    isShapeError(/node "add" \(Add\): cannot broadcast/),
  );
  assert.throws(
    one((b) => b.op('MatMul', ['a', 'b'], {}, { name: 'mm' })),
    isShapeError(/node "mm" \(MatMul\): inner dims/),
  );
  assert.throws(
    one((b) => b.op('Add', ['a', b.op('Cast', ['a'], { to: 10 })])),
    isShapeError(/input types differ: float32, float16/),
  );
  assert.throws(
    one((b) => b.op('Reshape', ['a', b.ints([5, -1])])),
    isShapeError(/cannot reshape \[2, 3\]/),
  );
  assert.throws(
    one((b) => b.op('Relu', ['a']), { a: [2, 4] }),
    isShapeError(/input "a" is declared \[2, 3\]/),
  );
  assert.throws(
    one((b) => b.op('Relu', ['a']), { nope: [1] }),
    isShapeError(/"nope" is not an input/),
  );
  // Declared outputs must agree with what the graph computes.
  const b = new GraphBuilder('o', { opset: 17 });
  const a = b.input('a', 'float32', [2, 3]);
  b.output(b.op('Relu', [a]), 'y', 'float32', [3, 2]);
  assert.throws(() => inferShapes(b.build()), isShapeError(/output "y" is declared \[3, 2\] but computes \[2, 3\]/));
});

test('shape inference: every operator the brief lists has a rule', () => {
  const ops = [
    'Add',
    'Cast',
    'Concat',
    'Constant',
    'Conv',
    'Cos',
    'Div',
    'Erf',
    'Gather',
    'Gemm',
    'Identity',
    'InstanceNormalization',
    'MatMul',
    'Mul',
    'Pow',
    'ReduceMean',
    'Reshape',
    'Resize',
    'Shape',
    'Sigmoid',
    'Sin',
    'Slice',
    'Softmax',
    'Sqrt',
    'Sub',
    'Transpose',
    'Unsqueeze',
    'ConstantOfShape',
    'Equal',
    'Expand',
    'Where',
    'LayerNormalization',
    'Gelu',
    'Split',
    'ArgMax',
    'Flatten',
    'IsNaN',
    'LessOrEqual',
    'Einsum',
    'ConvTranspose',
    'ReduceSum',
    'Pad',
    'Tile',
    'Neg',
    'Reciprocal',
    'Exp',
    'Log',
    'Relu',
    'Tanh',
    'Less',
    'Greater',
    'Not',
    'Softmax',
    'GroupNormalization',
    'Range',
    'Squeeze',
    'CumSum',
    'Trilu',
    'Min',
    'Max',
    'Clip',
    'Sum',
    'Mean',
  ];
  for (const op of ops)
    assert.ok(shapeRuleFor({ name: 'n', opType: op, domain: '', inputs: [], outputs: [], attributes: {} }), op);
  assert.ok(
    shapeRuleFor({
      name: 'n',
      opType: 'MultiHeadAttention',
      domain: 'com.microsoft',
      inputs: [],
      outputs: [],
      attributes: {},
    }),
  );
});
