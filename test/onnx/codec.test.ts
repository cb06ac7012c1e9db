import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, encodeModel } from '../../src/onnx/codec.js';
import { type Model, type TensorValue, attr } from '../../src/onnx/ir.js';
import { onnxTypes } from '../../src/onnx/schema.js';
import { VidpriorError } from '../../src/errors.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch';

function sampleModel(): Model {
  const b = new GraphBuilder('sample', { opset: 17, domains: { 'com.microsoft': 1 } });
  const x = b.input('x', 'float32', ['batch', 4, null]);
  const w = b.initializer(
    'w',
    'float32',
    [4, 4],
    Float32Array.from({ length: 16 }, (_, i) => i * 0.5 - 3),
  );
  const h = b.initializer('h', 'float16', [3], Uint16Array.from([0x3c00, 0xc000, 0x7bff]));
  void h;
  b.initializer('u8', 'uint8', [4], Uint8Array.from([1, 2, 3, 250]));
  const big = b.constant(
    BigInt64Array.from([9223372036854775807n, -9223372036854775808n, -1n]),
    [3],
    'int64',
    'extremes',
  );
  const y = b.op('MatMul', [x, w]);
  const sliced = b.op('Slice', [y, b.ints([0]), big, b.ints([1])]);
  const constT: TensorValue = { name: '', type: 'int32', dims: [2, 1], data: Int32Array.from([7, -8]) };
  const strT: TensorValue = { name: 'labels', type: 'string', dims: [2], strings: ['a', 'ünï'] };
  const c = b.op('Constant', [], { value: constT });
  const sub = new GraphBuilder('then', { opset: 17 });
  sub.output(sub.op('Identity', [c]), 'then_out', 'int32');
  b.op('If', [b.scalar(1, 'bool')], { then_branch: sub.graph, else_branch: sub.graph }, { outputs: ['if_out'] });
  b.op(
    'Custom',
    [sliced],
    {
      f: attr.float(1.5),
      i: 3,
      s: 'nearest',
      t: constT,
      fs: attr.floats([1, 2.5]),
      is: [1, -2, 2 ** 40],
      ss: ['x', 'y'],
      ts: { type: 'tensors', value: [constT, strT] },
      gs: { type: 'graphs', value: [sub.graph] },
    },
    { domain: 'com.microsoft', outputs: ['z'] },
  );
  b.output('z', undefined, 'float32', ['batch', 4, 'n']);
  b.output('if_out', undefined, 'int32', null);
  const model = b.build();
  model.metadata = { author: 'test', note: 'ü' };
  model.docString = 'doc';
  model.graph.valueInfo.push({ name: sliced, type: 'float32', shape: [1, 4, 0] });
  model.functions.push({
    name: 'Twice',
    domain: 'local',
    inputs: ['a'],
    outputs: ['b'],
    attributes: ['k'],
    nodes: [{ name: 'n', opType: 'Add', domain: '', inputs: ['a', 'a'], outputs: ['b'], attributes: {} }],
    opsetImports: [{ domain: '', version: 17 }],
    attributeDefaults: { k: attr.int(2) },
  });
  return model;
}

test('codec: builder-made model round-trips with every attribute type', () => {
  const model = sampleModel();
  const bytes = encodeModel(model);
  const back = decodeModel(bytes);
  assert.deepEqual(back, model);
  // A second pass gives identical bytes (encoding is deterministic).
  assert.deepEqual(encodeModel(back), bytes);
  const extremes = back.graph.initializers.find((t) => t.name === 'extremes')!;
  assert.deepEqual([...(extremes.data as BigInt64Array)], [9223372036854775807n, -9223372036854775808n, -1n]);
});

test('codec: tensors decode zero-copy when aligned, and copyData detaches them', () => {
  const model = sampleModel();
  const bytes = encodeModel(model);
  // uint8 data is always aligned, so it must be a view into `bytes`.
  const viewed = decodeModel(bytes).graph.initializers.find((t) => t.name === 'u8')!;
  const copied = decodeModel(bytes, { copyData: true }).graph.initializers.find((t) => t.name === 'u8')!;
  assert.deepEqual(viewed.data, copied.data);
  assert.equal(viewed.data!.buffer, bytes.buffer);
  assert.notEqual(copied.data!.buffer, bytes.buffer);
});

test('codec: typed data fields (float_data, int32_data for small types, int64_data, double_data) decode', () => {
  const tensors = [
    { name: 'f32', data_type: 1, dims: [2], float_data: [1.5, -2] },
    { name: 'f16', data_type: 10, dims: [2], int32_data: [0x3c00, 0xc000] },
    { name: 'i8', data_type: 3, dims: [3], int32_data: [-1, 2, 127] },
    { name: 'b', data_type: 9, dims: [2], int32_data: [1, 0] },
    { name: 'i64', data_type: 7, dims: [2], int64_data: [5, -6] },
    { name: 'f64', data_type: 11, dims: [1], double_data: [0.1] },
    { name: 'u32', data_type: 12, dims: [1], uint64_data: [4000000000] },
    { name: 'scalar', data_type: 6, dims: [], int32_data: [42] },
    {
      name: 'ext',
      data_type: 1,
      dims: [2, 3],
      data_location: 1,
      external_data: [
        { key: 'location', value: 'weights.bin' },
        { key: 'offset', value: '4096' },
      ],
    },
  ];
  const bytes = onnxTypes()
    .ModelProto.encode({
      ir_version: 8,
      opset_import: [{ domain: '', version: 14 }],
      graph: {
        name: 'g',
        initializer: tensors,
        output: [{ name: 'f32', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 2 }] } } } }],
      },
    })
    .finish();
  const inits = Object.fromEntries(decodeModel(bytes).graph.initializers.map((t) => [t.name, t]));
  assert.deepEqual(inits.f32!.data, Float32Array.from([1.5, -2]));
  assert.deepEqual(inits.f16!.data, Uint16Array.from([0x3c00, 0xc000]));
  assert.deepEqual(inits.i8!.data, Int8Array.from([-1, 2, 127]));
  assert.deepEqual(inits.b!.data, Uint8Array.from([1, 0]));
  assert.deepEqual(inits.i64!.data, BigInt64Array.from([5n, -6n]));
  assert.deepEqual(inits.f64!.data, Float64Array.from([0.1]));
  assert.deepEqual(inits.u32!.data, Uint32Array.from([4000000000]));
  assert.deepEqual(inits.scalar!.data, Int32Array.from([42]));
  assert.equal(inits.ext!.data, undefined);
  assert.deepEqual(inits.ext!.external, { location: 'weights.bin', offset: 4096, length: 24 });
  // External references survive a round trip.
  const again = decodeModel(encodeModel(decodeModel(bytes))).graph.initializers.find((t) => t.name === 'ext')!;
  assert.deepEqual(again.external, { location: 'weights.bin', offset: 4096, length: 24 });
});

test('codec: bad input is an E_ONNX error', () => {
  assert.throws(
    () => decodeModel(Uint8Array.from([0xff, 0xff, 0xff])),
    (e: unknown) => e instanceof VidpriorError && e.code === 'E_ONNX',
  );
  const wrongCount = onnxTypes()
    .ModelProto.encode({
      graph: { name: 'g', initializer: [{ name: 'w', data_type: 1, dims: [3], float_data: [1] }] },
    })
    .finish();
  assert.throws(() => decodeModel(wrongCount), /tensor "w" holds 1 float32 values but its dims \[3\] need 3/);
  const noGraph = onnxTypes().ModelProto.encode({ ir_version: 8 }).finish();
  assert.throws(() => decodeModel(noGraph), /no graph/);
});

test('codec: the tiny-sd-torch exports round-trip (decode → encode → decode)', (t) => {
  if (!existsSync(FIXTURE)) {
    t.skip(`${FIXTURE} not found`);
    return;
  }
  for (const part of ['text_encoder', 'unet', 'vae_encoder', 'vae_decoder']) {
    const model = decodeModel(readFileSync(`${FIXTURE}/${part}/model.onnx`));
    assert.ok(model.graph.nodes.length > 10, part);
    assert.ok(
      model.graph.initializers.every((i) => (i.data && i.data.length > 0) || i.dims.includes(0)),
      part,
    );
    assert.deepEqual(decodeModel(encodeModel(model)), model, part);
  }
});
