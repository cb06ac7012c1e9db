import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, encodeModel } from '../../src/onnx/codec.js';
import {
  cloneGraph,
  cloneModel,
  constantNodeValue,
  formatSummary,
  indexGraph,
  insertNodes,
  opsetOf,
  outerReferences,
  removeDeadNodes,
  renameValue,
  replaceAllUses,
  sortGraph,
  summarize,
  topologicalSort,
  uniqueName,
} from '../../src/onnx/graph.js';
import { type Model, attr } from '../../src/onnx/ir.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch';

/** x → Relu → a → Neg → b (output); x → Exp → dead; a also read by an If's subgraph. */
function chain(): Model {
  const b = new GraphBuilder('chain', { opset: 17 });
  const x = b.input('x', 'float32', [2, 3]);
  const a = b.op('Relu', [x], {}, { name: 'relu', outputs: ['a'] });
  b.op('Neg', [a], {}, { name: 'neg', outputs: ['b'] });
  b.op('Exp', [x], {}, { name: 'exp', outputs: ['dead'] });
  b.initializer('unused', 'float32', [4]);
  const sub = new GraphBuilder('then', { opset: 17 });
  sub.output(sub.op('Identity', ['a'], {}, { outputs: ['inner'] }), 'then_out', 'float32');
  b.op('If', [b.scalar(1, 'bool')], { then_branch: sub.graph, else_branch: sub.graph }, { name: 'if', outputs: ['c'] });
  b.output('b', undefined, 'float32', [2, 3]);
  b.output('c', undefined, 'float32', [2, 3]);
  return b.build();
}

test('graph: index knows producers, consumers (incl. subgraph reads), initializers and constants', () => {
  const m = chain();
  const ix = indexGraph(m.graph);
  assert.equal(ix.producer('a')!.name, 'relu');
  assert.deepEqual(
    ix.consumers('a').map((n) => n.name),
    ['neg', 'if'],
  );
  assert.deepEqual(
    ix.consumers('x').map((n) => n.name),
    ['relu', 'exp'],
  );
  assert.equal(ix.producer('x'), undefined);
  assert.ok(ix.isInput('x') && ix.isOutput('b') && !ix.isOutput('a'));
  assert.equal(ix.initializer('unused')!.dims[0], 4);
  assert.equal(ix.valueInfo('b')!.shape!.length, 2);
  assert.deepEqual(
    [...outerReferences(m.graph.nodes.find((n) => n.name === 'if')!.attributes.then_branch!.value as never)],
    ['a'],
  );
  const c = {
    name: 'k',
    opType: 'Constant',
    domain: '',
    inputs: [],
    outputs: ['kv'],
    attributes: { value_ints: attr.ints([3, 4]) },
  };
  m.graph.nodes.push(c);
  assert.deepEqual(indexGraph(m.graph).constant('kv')!.data, BigInt64Array.from([3n, 4n]));
  assert.deepEqual(constantNodeValue({ ...c, attributes: { value_float: attr.float(2.5) } }).dims, []);
});

test('graph: topological sort is stable, fixes order, and names a node on a cycle', () => {
  const m = chain();
  const names = m.graph.nodes.map((n) => n.name);
  assert.deepEqual(
    topologicalSort(m.graph).map((n) => n.name),
    names,
  );
  m.graph.nodes.reverse();
  sortGraph(m.graph);
  const pos = (n: string) => m.graph.nodes.findIndex((x) => x.name === n);
  assert.ok(pos('relu') < pos('neg') && pos('relu') < pos('if'));
  const cyc = chain();
  cyc.graph.nodes.find((n) => n.name === 'relu')!.inputs = ['b'];
  assert.throws(() => topologicalSort(cyc.graph), /cycle through node "(relu|neg)"/);
  const missing = chain();
  missing.graph.nodes.find((n) => n.name === 'neg')!.inputs = ['nowhere'];
  assert.throws(() => topologicalSort(missing.graph), /node "neg" \(Neg\) reads "nowhere"/);
});

test('graph: dead nodes and unused initializers go; subgraph reads keep values alive', () => {
  const m = chain();
  const removed = removeDeadNodes(m.graph);
  assert.deepEqual(removed, { nodes: 1, initializers: 1 });
  assert.ok(!m.graph.nodes.some((n) => n.name === 'exp'));
  assert.ok(m.graph.nodes.some((n) => n.name === 'relu'));
  assert.deepEqual(
    m.graph.inputs.map((v) => v.name),
    ['x'],
  );
});

test('graph: replace uses, rename values, insert nodes, unique names', () => {
  const m = chain();
  insertNodes(m.graph, [{ name: 'tanh', opType: 'Tanh', domain: '', inputs: ['x'], outputs: ['t'], attributes: {} }], {
    after: 'relu',
  });
  assert.equal(m.graph.nodes[1]!.name, 'tanh');
  replaceAllUses(m.graph, 'a', 't');
  assert.deepEqual(
    indexGraph(m.graph)
      .consumers('t')
      .map((n) => n.name),
    ['neg', 'if'],
  );
  assert.deepEqual(indexGraph(m.graph).consumers('a'), []);
  renameValue(m.graph, 'b', 'out');
  assert.ok(m.graph.outputs.some((o) => o.name === 'out'));
  assert.deepEqual(m.graph.nodes.find((n) => n.name === 'neg')!.outputs, ['out']);
  assert.throws(() => renameValue(m.graph, 'out', 'x'), /already has a value "x"/);
  assert.throws(() => insertNodes(m.graph, [], { before: 'nope' }), /no node "nope"/);
  assert.equal(uniqueName(m.graph, 'x'), 'x_1');
  assert.equal(uniqueName(m.graph, 'fresh'), 'fresh');
  topologicalSort(m.graph);
});

test('graph: clones are independent in structure and share data unless asked', () => {
  const m = chain();
  m.graph.initializers.push({ name: 'w', type: 'float32', dims: [1], data: Float32Array.from([1]) });
  const g = cloneGraph(m.graph);
  g.nodes[0]!.inputs[0] = 'changed';
  (g.nodes.find((n) => n.name === 'if')!.attributes.then_branch!.value as { name: string }).name = 'changed';
  assert.equal(m.graph.nodes[0]!.inputs[0], 'x');
  assert.equal(
    (m.graph.nodes.find((n) => n.name === 'if')!.attributes.then_branch!.value as { name: string }).name,
    'then',
  );
  assert.equal(g.initializers.at(-1)!.data, m.graph.initializers.at(-1)!.data);
  assert.notEqual(cloneGraph(m.graph, { copyData: true }).initializers.at(-1)!.data, m.graph.initializers.at(-1)!.data);
  assert.deepEqual(decodeModel(encodeModel(cloneModel(m))), decodeModel(encodeModel(m)));
});

test('graph: opsetOf and summarize', () => {
  const b = new GraphBuilder('s', { opset: 18, domains: { 'com.microsoft': 1 } });
  const x = b.input('x', 'float32', ['n', 4]);
  const w = b.initializer('w', 'float32', [4, 4]);
  const h = b.initializer('h', 'float16', [4]);
  b.output(b.op('Add', [b.op('MatMul', [x, w]), b.op('Cast', [h], { to: 1 })]), 'y', 'float32', ['n', 4]);
  const m = b.build();
  assert.equal(opsetOf(m), 18);
  assert.equal(opsetOf(m, 'ai.onnx'), 18);
  assert.equal(opsetOf(m, 'com.microsoft'), 1);
  assert.equal(opsetOf(m, 'other'), undefined);
  const s = summarize(m);
  assert.deepEqual(s.opCounts, { Add: 1, Cast: 1, Identity: 1, MatMul: 1 });
  assert.deepEqual(s.parameters, {
    count: 20,
    bytes: 72,
    byType: { float32: { count: 16, bytes: 64 }, float16: { count: 4, bytes: 8 } },
  });
  assert.deepEqual(
    s.inputs.map((v) => v.name),
    ['x'],
  );
  assert.match(formatSummary(s), /x: float32\[n, 4\]/);
});

test('graph: the fixture UNet sorts stably and has no dead nodes', (t) => {
  if (!existsSync(FIXTURE)) {
    t.skip(`${FIXTURE} not found`);
    return;
  }
  const m = decodeModel(readFileSync(`${FIXTURE}/unet/model.onnx`));
  assert.deepEqual(topologicalSort(m.graph), m.graph.nodes);
  const s = summarize(m);
  assert.ok(s.opCounts.Conv! > 10 && s.parameters.count > 1e5, formatSummary(s));
  const before = m.graph.nodes.length;
  removeDeadNodes(m.graph);
  assert.equal(m.graph.nodes.length, before);
});
