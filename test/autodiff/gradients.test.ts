import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GRADIENT_RULES, annotatedShapes, buildGradients, differentiableOps } from '../../src/autodiff/index.js';
import { VidpriorError } from '../../src/errors.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { encodeModel } from '../../src/onnx/codec.js';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { type Tensor, float32, toFloat16 } from '../../src/tensor.js';
import { annotateByProbe } from './annotate.js';
import { checkCase, randomTensor } from './gradcheck.js';

/** y = x·W (+ whatever `extra` adds); loss = ReduceSum(y); shapes annotated by a probe run. */
async function smallModel(rt: Runtime, extra?: (b: GraphBuilder, y: string) => string) {
  const b = new GraphBuilder('m', { opset: 17 });
  const x = b.input('x', 'float32', [2, 3]);
  const w = b.initializer('w', 'float32', [3, 4], randomTensor([3, 4], 1).data);
  b.initializer('unused', 'float32', [5], new Float32Array(5));
  let y = b.op('MatMul', [x, w]);
  if (extra) y = extra(b, y);
  const loss = b.op('ReduceSum', [y], { keepdims: 0 });
  b.output(loss, 'loss');
  const model = b.build();
  const feeds = { x: randomTensor([2, 3], 2) };
  await annotateByProbe(rt, model, feeds);
  return { model, b, feeds, loss };
}

describe('autodiff: buildGradients', () => {
  let rt: Runtime;
  before(async () => {
    rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  });
  after(async () => {
    await rt.close();
  });

  it('has a rule for every operator of SD 1.x UNet exports (TorchScript opset 14/17, dynamo 18–20)', () => {
    const differentiable = new Set(differentiableOps());
    for (const op of [
      'Conv',
      'ConvTranspose',
      'MatMul',
      'Gemm',
      'Add',
      'Sub',
      'Mul',
      'Div',
      'Softmax',
      'InstanceNormalization',
      'LayerNormalization',
      'GroupNormalization',
      'Erf',
      'Gelu',
      'Sigmoid',
      'Sqrt',
      'Pow',
      'Exp',
      'Neg',
      'Reshape',
      'Transpose',
      'Slice',
      'Split',
      'Concat',
      'Resize',
      'Pad',
      'Where',
      'Expand',
      'ReduceMean',
      'ReduceSum',
      'Cast',
      'Einsum',
      'Gather',
      'Unsqueeze',
      'Squeeze',
      'Flatten',
      'Identity',
      'Tile',
      'Relu',
      'Tanh',
      'Softplus',
      'Sin',
      'Cos',
    ]) {
      assert.ok(differentiable.has(op), `${op} has no gradient rule`);
    }
    for (const op of ['Constant', 'Shape', 'ConstantOfShape', 'Equal', 'Range']) {
      assert.ok(GRADIENT_RULES[op] && !GRADIENT_RULES[op]!.backward, `${op} is not marked as passing no gradient`);
    }
  });

  it('fails with E_NO_GRADIENT naming the op and the node when a gradient must cross an op without a rule', async () => {
    const { model, loss } = await smallModel(rt, (b, y) => b.op('Hardmax', [y], {}, { name: 'the_hardmax' }));
    assert.throws(
      () => buildGradients(model, { loss, wrt: ['w'] }),
      (err: unknown) =>
        err instanceof VidpriorError &&
        err.code === 'E_NO_GRADIENT' &&
        /Hardmax/.test(err.message) &&
        /the_hardmax/.test(err.message),
    );
    // …and contrib-domain ops are never taken for standard ones.
    const { model: m2, loss: l2 } = await smallModel(rt, (b, y) =>
      b.op('Gelu', [y], {}, { domain: 'com.microsoft', name: 'ms_gelu' }),
    );
    assert.throws(() => buildGradients(m2, { loss: l2, wrt: ['w'] }), /com\.microsoft\.Gelu.*ms_gelu/);
  });

  it('ignores ops without rules that only compute shapes, and ops off the path', async () => {
    const { model, loss } = await smallModel(rt, (b, y) => {
      const rows = b.op('Mod', [b.op('Shape', [y]), b.ints([100])]); // Mod has no rule; it sees only a shape
      b.op('Hardmax', [y]); // dead end: not on the path to the loss
      return b.op('Reshape', [y, rows]);
    });
    const { gradients } = buildGradients(model, { loss, wrt: ['w'] });
    assert.ok(gradients.w);
  });

  it('rejects unknown names and opsets below 13', async () => {
    const { model, loss } = await smallModel(rt);
    assert.throws(
      () => buildGradients(model, { loss, wrt: ['nope'] }),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_BAD_REQUEST' && /nope/.test(e.message),
    );
    const old = new GraphBuilder('old', { opset: 12 });
    old.output(old.op('Neg', [old.input('a', 'float32', [2])]), 'y');
    assert.throws(() => buildGradients(old.build(), { loss: 'y', wrt: ['a'] }), /opset 12/);
  });

  it('asks for input sizes when shapes are symbolic, and uses them when given', () => {
    const b = new GraphBuilder('sym', { opset: 17 });
    const x = b.input('x', 'float32', ['batch', 3]);
    const w = b.initializer('w', 'float32', [3, 2], randomTensor([3, 2], 1).data);
    const loss = b.op('ReduceSum', [b.op('Softmax', [b.op('MatMul', [x, w])])], { keepdims: 0 });
    const model = b.build();
    assert.throws(
      () => buildGradients(model, { loss, wrt: ['w'] }),
      (e: unknown) =>
        e instanceof VidpriorError && e.code === 'E_SHAPE' && /batch/.test(e.message) && /inputShapes/.test(e.message),
    );
    const { gradients } = buildGradients(model, { loss, wrt: ['w'], inputShapes: { x: [4, 3] } });
    assert.ok(gradients.w);
    assert.equal(model.graph.valueInfo.length, 0, 'shape inference leaves no value_info behind');
  });

  it('reads half-precision constants as numbers (a float16 Pow exponent is 2, not its bits)', () => {
    const b = new GraphBuilder('half', { opset: 17 });
    const x = b.input('x', 'float16', [3]);
    const two = b.constant(toFloat16(Float32Array.of(2)), [], 'float16', 'two');
    const y = b.op('Pow', [x, two]);
    b.output(y, 'y', 'float16', [3]);
    assert.deepEqual(annotatedShapes(b.build()).constInts(two), [2]);
    const before = b.graph.nodes.length;
    buildGradients(b.build(), { loss: 'y', wrt: ['x'] });
    const added = b.graph.nodes.slice(before);
    assert.ok(!added.some((n) => n.opType === 'Pow'), 'x² differentiates as 2x, without a Pow');
    assert.ok(!added.some((n) => n.opType === 'Cast'), 'float16 constants are stored as float16');
  });

  it('gives zeros for a value the loss does not depend on, honours seedGrad, and sums fan-in with Add (no Sum)', async () => {
    const { model, b, feeds, loss } = await smallModel(rt, (bb, y) => bb.op('Mul', [y, y]));
    const seed = b.input('seed', 'float32', []);
    const { gradients } = buildGradients(model, { loss, wrt: ['w', 'unused'], seedGrad: seed, builder: b });
    assert.ok(!model.graph.nodes.some((n) => n.opType === 'Sum'));
    b.output(gradients.w!, 'gw', 'float32', null);
    b.output(gradients.unused!, 'gu', 'float32', null);
    const session = await rt.createSession(encodeModel(model));
    const out = await session.run({ ...feeds, seed: float32([], [3]) });
    await session.release();
    assert.deepEqual(Array.from((out.gu as Tensor<'float32'>).data), [0, 0, 0, 0, 0]);
    // d/dW Σ (xW)² · 3 = 6 xᵀ(xW)
    const x = feeds.x.data,
      w = randomTensor([3, 4], 1).data;
    const gw = (out.gw as Tensor<'float32'>).data;
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 4; j++) {
        let expected = 0;
        for (let r = 0; r < 2; r++) {
          let y = 0;
          for (let k = 0; k < 3; k++) y += x[r * 3 + k]! * w[k * 4 + j]!;
          expected += 6 * x[r * 3 + i]! * y;
        }
        assert.ok(
          Math.abs(gw[i * 4 + j]! - expected) < 1e-4 * (1 + Math.abs(expected)),
          `gw[${i},${j}] = ${gw[i * 4 + j]} vs ${expected}`,
        );
      }
  });

  it('differentiates through a timestep embedding (Sin/Cos, Concat) into its projection weight', async () => {
    await checkCase(rt, 'temb', {
      opset: 14,
      inputs: { t: { dims: [2, 1], wrt: false }, w: { dims: [6, 3] } },
      build: (b, x) => {
        const args = b.op('Mul', [x.t!, b.constant([1, 0.1, 0.01], [1, 3], 'float32')]);
        const emb = b.op('Concat', [b.op('Sin', [args]), b.op('Cos', [args])], { axis: -1 });
        return b.op('MatMul', [emb, x.w!]);
      },
    });
  });

  it("emits only standard-domain ops, none of ORT's gradient ops", async () => {
    const { model, loss } = await smallModel(rt, (b, y) => b.op('Softmax', [b.op('Erf', [y])]));
    const before = model.graph.nodes.length;
    buildGradients(model, { loss, wrt: ['w', 'x'] });
    for (const n of model.graph.nodes.slice(before)) {
      assert.equal(n.domain, '');
      assert.ok(!/Grad$|Optimizer|Accumulator/.test(n.opType), n.opType);
    }
  });
});
