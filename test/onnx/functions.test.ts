import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, encodeModel } from '../../src/onnx/codec.js';
import { inlineFunctions } from '../../src/onnx/functions.js';
import { summarize, topologicalSort } from '../../src/onnx/graph.js';
import { type FunctionDef, type Model, attr } from '../../src/onnx/ir.js';
import { inferShapes } from '../../src/onnx/shape-inference.js';
import { isGpuTensor, openRuntime } from '../../src/runtime/index.js';
import { type Tensor, float32 } from '../../src/tensor.js';

/** local::ScaledAdd(a, b; alpha) = a·alpha + b, and local::Twice(a) = ScaledAdd(a, a; alpha = 1). */
function modelWithFunctions(): Model {
  const scaledAdd: FunctionDef = {
    name: 'ScaledAdd',
    domain: 'local',
    inputs: ['a', 'b'],
    outputs: ['out'],
    attributes: ['alpha'],
    attributeDefaults: { alpha: attr.float(2) },
    opsetImports: [{ domain: '', version: 17 }],
    nodes: [
      {
        name: 'k',
        opType: 'Constant',
        domain: '',
        inputs: [],
        outputs: ['k'],
        attributes: {},
        attributeRefs: { value_float: { ref: 'alpha', type: 'float' } },
      },
      { name: 'mul', opType: 'Mul', domain: '', inputs: ['a', 'k'], outputs: ['t'], attributes: {} },
      { name: 'add', opType: 'Add', domain: '', inputs: ['t', 'b'], outputs: ['out'], attributes: {} },
    ],
  };
  const twice: FunctionDef = {
    name: 'Twice',
    domain: 'local',
    inputs: ['a'],
    outputs: ['out'],
    attributes: [],
    opsetImports: [
      { domain: '', version: 17 },
      { domain: 'local', version: 1 },
    ],
    nodes: [
      {
        name: 'call',
        opType: 'ScaledAdd',
        domain: 'local',
        inputs: ['a', 'a'],
        outputs: ['out'],
        attributes: { alpha: attr.float(1) },
      },
    ],
  };
  const b = new GraphBuilder('fn', { opset: 17, domains: { local: 1 } });
  const x = b.input('x', 'float32', ['n', 3]);
  const y = b.input('y', 'float32', [1, 3]);
  const s1 = b.op('ScaledAdd', [x, y], { alpha: attr.float(0.5) }, { domain: 'local', name: 'first' });
  const s2 = b.op('ScaledAdd', [s1, y], {}, { domain: 'local', name: 'second' }); // default alpha 2
  b.output(b.op('Twice', [s2], {}, { domain: 'local', name: 'third' }), 'z', 'float32', ['n', 3]);
  const model = b.build();
  model.functions.push(scaledAdd, twice);
  return model;
}

test('functions: attribute references survive the codec', () => {
  const model = modelWithFunctions();
  const back = decodeModel(encodeModel(model));
  assert.deepEqual(back.functions, model.functions);
});

test('functions: shape inference looks through (nested) function calls', () => {
  const model = modelWithFunctions();
  const r = inferShapes(model, { x: [4, 3] });
  assert.deepEqual(r.infos.get('z')!.shape, [4, 3]);
});

test('functions: inlining gives a flat graph that computes what the functions compute', async () => {
  const model = modelWithFunctions();
  const flat = decodeModel(encodeModel(model));
  assert.equal(inlineFunctions(flat), 4, 'three calls, one nested call');
  assert.deepEqual(flat.functions, []);
  assert.deepEqual(summarize(flat).opCounts, { Constant: 3, Mul: 3, Add: 3, Identity: 1 });
  topologicalSort(flat.graph);
  assert.deepEqual(inferShapes(flat, { x: [2, 3] }).infos.get('z')!.shape, [2, 3]);
  const rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  try {
    const feeds = { x: float32([2, 3], [1, 2, 3, 4, 5, 6]), y: float32([1, 3], [10, 20, 30]) };
    const results: Tensor[] = [];
    for (const m of [model, flat]) {
      const s = await rt.createSession(encodeModel(m));
      const { z } = await s.run(feeds);
      assert.ok(z && !isGpuTensor(z));
      results.push(z);
      await s.release();
    }
    // z = 2·((x·0.5 + y)·2 + y)
    const expected = [1, 2, 3, 4, 5, 6].map(
      (v, i) => 2 * ((v * 0.5 + [10, 20, 30][i % 3]!) * 2 + [10, 20, 30][i % 3]!),
    );
    assert.deepEqual([...results[0]!.data], expected);
    assert.deepEqual([...results[1]!.data], expected);
  } finally {
    await rt.close();
  }
});
