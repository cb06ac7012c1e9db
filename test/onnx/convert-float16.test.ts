import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, encodeModel } from '../../src/onnx/codec.js';
import { convertToFloat16, toHalfClamped } from '../../src/onnx/convert-float16.js';
import { indexGraph, summarize } from '../../src/onnx/graph.js';
import { type Model, attr } from '../../src/onnx/ir.js';
import { type Runtime, isGpuTensor, openRuntime } from '../../src/runtime/index.js';
import { type Tensor, castFloat, float32, floatToHalf, fromFloat16, int64 } from '../../src/tensor.js';
import { Rng } from '../../src/random.js';
import { maxTensorDiff } from '../assert-close.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch';

let rt: Runtime;
before(async () => {
  rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
});
after(async () => {
  await rt.close();
});

async function run(model: Model, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const s = await rt.createSession(encodeModel(model));
  const out = await s.run(feeds);
  await s.release();
  for (const t of Object.values(out)) assert.ok(!isGpuTensor(t));
  return out as Record<string, Tensor>;
}

const seq = (n: number, s = 1): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7) * s);

/** Conv → LayerNorm (with its float32 statistics) → Resize (float32 scales) plus blocked and constant ops. */
function mixedModel(): Model {
  const b = new GraphBuilder('mixed', { opset: 17 });
  const x = b.input('x', 'float32', [1, 2, 4, 4]);
  const w = b.initializer('w', 'float32', [3, 2, 3, 3], seq(54, 0.3));
  const conv = b.op('Conv', [x, w], { pads: [1, 1, 1, 1] }, { name: 'conv' });
  const [ln, mean] = b.opMulti(
    'LayerNormalization',
    [conv, b.constant(new Float32Array(4).fill(1.5), [4]), b.constant(new Float32Array(4).fill(0.1), [4])],
    3,
    { axis: -1 },
    { name: 'ln' },
  );
  const up = b.op(
    'Resize',
    [ln!, '', b.constant([1, 1, 2, 2], [4], 'float32')],
    { mode: 'nearest' },
    { name: 'resize' },
  );
  // A float Range (blocked by default) and a Constant node, both feeding float16 compute.
  const ramp = b.op('Range', [b.scalar(0), b.scalar(8), b.scalar(1)], {}, { name: 'range' });
  const half = b.op('Constant', [], { value_float: attr.float(0.5) }, { name: 'half' });
  const scaled = b.op('Mul', [b.op('Add', [up, ramp]), half], {}, { name: 'mul' });
  // `w` is read again by a node kept in float32 by name: it is stored in both precisions.
  const wsum = b.op('ReduceSum', [w, b.ints([0, 1, 2, 3])], { keepdims: 0 }, { name: 'keep/wsum' });
  b.output(b.op('Add', [scaled, b.op('Cast', [wsum], { to: 1 })], {}, { name: 'out' }), 'y', 'float32');
  b.output(b.op('Identity', [mean!]), 'stats', 'float32');
  return b.build();
}

test('float16: types follow the rules (weights half, fp32-only slots, blocked ops, boundary casts)', async () => {
  const model = mixedModel();
  const before = encodeModel(model);
  const h = convertToFloat16(model, { blockNodes: [/^keep\//] });
  assert.deepEqual(encodeModel(model), before, 'the input model is not modified');
  const ix = indexGraph(h.graph);
  assert.equal(ix.initializer('w')!.type, 'float16');
  const keepNode = ix.node('keep/wsum')!;
  assert.equal(ix.initializer(keepNode.inputs[0]!)!.type, 'float32', 'the float32 reader gets a float32 copy of w');
  const resize = ix.node('resize')!;
  assert.equal(ix.initializer(resize.inputs[2]!)!.type, 'float32', 'Resize scales stay float32');
  assert.equal(
    h.graph.valueInfo.find((v) => v.name === ix.node('range')!.outputs[0])!.type,
    'float32',
    'Range is blocked',
  );
  assert.equal(
    h.graph.valueInfo.find((v) => v.name === ix.node('ln')!.outputs[1])!.type,
    'float32',
    'LayerNorm statistics stay float32',
  );
  assert.equal(h.graph.valueInfo.find((v) => v.name === ix.node('mul')!.outputs[0])!.type, 'float16');
  assert.deepEqual(
    h.graph.inputs.map((v) => v.type),
    ['float32'],
  );
  assert.deepEqual(
    h.graph.outputs.map((v) => [v.name, v.type]),
    [
      ['y', 'float32'],
      ['stats', 'float32'],
    ],
  );
  const x = float32([1, 2, 4, 4], seq(32));
  const [a, b] = [await run(model, { x }), await run(h, { x })];
  assert.ok(maxTensorDiff(a.y!, b.y!) < 2e-2, `y differs by ${maxTensorDiff(a.y!, b.y!)}`);
  assert.ok(maxTensorDiff(a.stats!, b.stats!) < 2e-2);
});

test('float16: io "float16" changes the signature; clamping keeps finite values finite', async () => {
  const model = mixedModel();
  const h = convertToFloat16(model, { io: 'float16' });
  assert.deepEqual(
    h.graph.inputs.map((v) => v.type),
    ['float16'],
  );
  assert.deepEqual(
    h.graph.outputs.map((v) => v.type),
    ['float16', 'float16'],
  );
  const x = float32([1, 2, 4, 4], seq(32));
  const ref = await run(model, { x });
  const out = await run(h, { x: castFloat(x, 'float16') });
  assert.equal(out.y!.type, 'float16');
  assert.ok(maxTensorDiff(ref.y!, out.y!) < 2e-2);
  assert.deepEqual(
    [...fromFloat16(toHalfClamped(Float32Array.from([1e6, -3.4e38, -Infinity, 1.5])))],
    [65504, -65504, -Infinity, 1.5],
  );
  // Bit-exact with the reference conversion in src/tensor.ts across normal, subnormal and tiny values.
  const rng = new Rng(5);
  const probe = Float32Array.from({ length: 20000 }, (_, i) => rng.normal() * 2 ** ((i % 60) - 40));
  probe.set([0, -0, 2 ** -25, 2 ** -24, 3 * 2 ** -26, 65504, 65519, 6.1e-5, NaN]);
  const fast = toHalfClamped(probe);
  probe.forEach((v, i) => {
    if (Math.abs(v) < 65520) assert.equal(fast[i], floatToHalf(v), `${v}`);
  });
});

test('float16: the fixture models convert, halve in size and agree with float32', async (t) => {
  if (!existsSync(FIXTURE)) {
    t.skip(`${FIXTURE} not found`);
    return;
  }
  const cases: [string, Record<string, Tensor>, number][] = [
    [
      'unet',
      {
        sample: float32([1, 4, 8, 8], seq(256)),
        timestep: int64([1], [981]),
        encoder_hidden_states: float32([1, 77, 32], seq(77 * 32)),
      },
      1e-2,
    ],
    [
      'text_encoder',
      {
        input_ids: {
          type: 'int32',
          dims: [1, 77],
          data: Int32Array.from({ length: 77 }, (_, i) => (i === 0 ? 49406 : i < 4 ? 320 + i : 49407)),
        } as Tensor,
      },
      1e-2,
    ],
    ['vae_decoder', { latent_sample: float32([1, 4, 8, 8], seq(256, 2)) }, 1e-2],
  ];
  for (const [part, feeds, tol] of cases) {
    const model = decodeModel(readFileSync(`${FIXTURE}/${part}/model.onnx`));
    const h = convertToFloat16(model);
    const s32 = summarize(model).parameters,
      s16 = summarize(h).parameters;
    assert.ok(s16.bytes < s32.bytes * 0.55, `${part}: ${s32.bytes} → ${s16.bytes} bytes`);
    assert.ok(s16.byType.float16!.count > s32.count * 0.9, part);
    const [a, b] = [await run(model, feeds), await run(h, feeds)];
    for (const name of Object.keys(a)) {
      assert.equal(b[name]!.type, 'float32', `${part} ${name} keeps float32 output`);
      const d = maxTensorDiff(a[name]!, b[name]!);
      assert.ok(d < tol, `${part} ${name}: float16 differs by ${d}`);
    }
  }
});
