import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { GraphBuilder } from '../../../src/onnx/builder.js';
import { decodeModel, encodeModel } from '../../../src/onnx/codec.js';
import type { Model } from '../../../src/onnx/ir.js';
import { fuseAttention, optimizeForGpu } from '../../../src/onnx/optimize/index.js';
import { buildComponent, preset } from '../../../src/models/builder/index.js';
import { findLoraTargets } from '../../../src/training/lora.js';
import { buildGradients } from '../../../src/autodiff/index.js';
import { cloneModel } from '../../../src/onnx/graph.js';
import { type Runtime, openRuntime } from '../../../src/runtime/index.js';
import { type Tensor, float32, int64 } from '../../../src/tensor.js';
import { Rng } from '../../../src/random.js';
import { maxTensorDiff } from '../../assert-close.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch/unet/model.onnx';
const skipFixture = existsSync(FIXTURE) ? false : `${FIXTURE} not found (needs ../shared)`;

let rt: Runtime;
before(async () => {
  rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
});
after(async () => {
  await rt.close();
});

async function run(model: Model, feeds: Record<string, Tensor>): Promise<Tensor> {
  const s = await rt.createSession(encodeModel(model));
  const out = await s.run(feeds);
  await s.release();
  return Object.values(out)[0] as Tensor;
}

function unetFeeds(batch: number, h: number, w: number, text: number, seed: number): Record<string, Tensor> {
  const rng = new Rng(seed);
  return {
    sample: float32([batch, 4, h, w], rng.normalArray(batch * 4 * h * w)),
    timestep: int64([1], [500]),
    encoder_hidden_states: float32([batch, 77, text], rng.normalArray(batch * 77 * text, 0.5)),
  };
}

/** Attention modules of an SD UNet, by their node names (…/attn1, …/attn2). */
function attentionModules(model: Model): Set<string> {
  const out = new Set<string>();
  for (const n of model.graph.nodes) {
    const m = /^(.*\/attn[12])\//.exec(n.name);
    if (m) out.add(m[1]!);
  }
  return out;
}

const ops = (m: Model, op: string): number => m.graph.nodes.filter((n) => n.opType === op).length;

test('the real TorchScript export: every attn1/attn2 fused, outputs unchanged, LoRA targets unchanged', {
  skip: skipFixture,
}, async () => {
  const model = decodeModel(readFileSync(FIXTURE));
  const modules = attentionModules(model);
  const { model: fused, report } = fuseAttention(model);
  assert.equal(modules.size, 12);
  assert.equal(report.fused.length, modules.size, JSON.stringify(report.skipped));
  assert.equal(report.skipped.length, 0);
  assert.equal(ops(fused, 'MultiHeadAttention'), 12);
  assert.equal(ops(fused, 'Softmax'), 0);
  for (const f of report.fused) {
    assert.equal(f.details!.heads, 8);
    assert.ok(Math.abs((f.details!.scale as number) - 1 / Math.sqrt(8)) < 1e-6);
    assert.ok(modules.has(f.fused!.replace(/\/MultiHeadAttention$/, '')));
  }
  // The projections stay, by name and weight: LoRA finds the same targets.
  assert.deepEqual(findLoraTargets(fused), findLoraTargets(model));
  assert.ok(fused.opsetImports.some((o) => o.domain === 'com.microsoft'));
  assert.equal(model.graph.nodes.filter((n) => n.opType === 'Softmax').length, 12, 'the input model is not changed');
  // Proved with symbolic batch/size: agrees at two different sizes.
  for (const [b, h, w] of [
    [2, 16, 16],
    [1, 8, 12],
  ] as const) {
    const feeds = unetFeeds(b, h, w, 32, h);
    const d = maxTensorDiff(await run(model, feeds), await run(fused, feeds));
    assert.ok(d < 1e-4, `max difference ${d} at ${b}×${h}×${w}`);
  }
});

for (const opset of [14, 17]) {
  test(`the model builder's UNet (opset ${opset}): every attention fused, outputs unchanged`, async () => {
    const { model } = buildComponent('unet', preset('tiny'), { opset, seed: 3 });
    const { model: fused, report } = fuseAttention(model);
    assert.equal(report.fused.length, attentionModules(model).size);
    assert.equal(report.skipped.length, 0, JSON.stringify(report.skipped));
    assert.deepEqual(findLoraTargets(fused), findLoraTargets(model));
    const feeds = unetFeeds(2, 16, 16, 32, opset);
    const d = maxTensorDiff(await run(model, feeds), await run(fused, feeds));
    assert.ok(d < 1e-4, `max difference ${d}`);
  });
}

test('fused then float16 runs and stays close to float32', async () => {
  const { model } = buildComponent('unet', preset('tiny'), { opset: 17, seed: 4 });
  const { model: half, reports } = optimizeForGpu(model, { float16: true });
  assert.deepEqual(
    reports.map((r) => r.pass),
    ['layernorm', 'attention', 'float16'],
  );
  assert.ok(half.graph.nodes.some((n) => n.opType === 'MultiHeadAttention'));
  const feeds = unetFeeds(2, 16, 16, 32, 9);
  const ref = await run(model, feeds);
  const d = maxTensorDiff(ref, await run(half, feeds));
  assert.ok(d < 2e-2, `max difference ${d}`);
});

// ---- small graphs: the shapes other exporters write, and what must be left alone ----------------------------

type Variant = {
  scoreScale?: 'mul' | 'div' | 'qk';
  kTranspose?: 'direct' | 'late';
  einsum?: boolean;
  mask?: boolean;
  vScale?: boolean;
  wrongMerge?: boolean;
};

/** q/k/v projections of x [B, S, C] (k, v of ctx [B, L, E]), H heads, in one of several spellings. */
function attentionGraph(v: Variant): Model {
  const [C, H, E] = [16, 4, 12];
  const d = C / H;
  const b = new GraphBuilder('attn', { opset: 17 });
  const rng = new Rng(5);
  const x = b.input('x', 'float32', ['B', 'S', C]);
  const ctx = b.input('ctx', 'float32', ['B', 'L', E]);
  const w = (name: string, i: number): string =>
    b.initializer(name, 'float32', [i, C], Float32Array.from(rng.normalArray(i * C, 0.3)));
  const q = b.op('MatMul', [x, w('to_q.weight', C)], {}, { name: 'attn2/to_q/MatMul' });
  const k = b.op('MatMul', [ctx, w('to_k.weight', E)], {}, { name: 'attn2/to_k/MatMul' });
  const vv = b.op('MatMul', [ctx, w('to_v.weight', E)], {}, { name: 'attn2/to_v/MatMul' });
  const split = (t: string): string => b.op('Reshape', [t, b.ints([0, -1, H, d])]);
  let qh = b.op('Transpose', [split(q)], { perm: [0, 2, 1, 3] });
  let kh =
    v.kTranspose === 'late'
      ? b.op('Transpose', [b.op('Transpose', [split(k)], { perm: [0, 2, 1, 3] })], { perm: [0, 1, 3, 2] })
      : b.op('Transpose', [split(k)], { perm: v.einsum ? [0, 2, 1, 3] : [0, 2, 3, 1] });
  let vh = b.op('Transpose', [split(vv)], { perm: [0, 2, 1, 3] });
  if (v.vScale) vh = b.op('Mul', [vh, b.scalar(2)]);
  const s = Math.sqrt(1 / Math.sqrt(d));
  if (v.scoreScale === 'qk') {
    qh = b.op('Mul', [qh, b.scalar(s)]);
    kh = b.op('Mul', [kh, b.scalar(s)]);
  }
  let scores = v.einsum ? b.op('Einsum', [qh, kh], { equation: 'bhid,bhjd->bhij' }) : b.op('MatMul', [qh, kh]);
  if (v.scoreScale === 'div') scores = b.op('Div', [scores, b.scalar(Math.sqrt(d))]);
  else if (v.scoreScale !== 'qk') scores = b.op('Mul', [scores, b.scalar(1 / Math.sqrt(d))]);
  if (v.mask) scores = b.op('Add', [scores, b.scalar(-1)]);
  const p = b.op('Softmax', [scores], { axis: -1 }, { name: 'attn2/Softmax' });
  let o = v.einsum ? b.op('Einsum', [p, vh], { equation: 'bhij,bhjd->bhid' }) : b.op('MatMul', [p, vh]);
  o = b.op('Reshape', [
    b.op('Transpose', [o], { perm: v.wrongMerge ? [0, 2, 3, 1] : [0, 2, 1, 3] }),
    b.ints([0, 0, C]),
  ]);
  b.output(b.op('MatMul', [o, w('to_out.weight', C)], {}, { name: 'attn2/to_out.0/MatMul' }), 'y', 'float32', [
    'B',
    'S',
    C,
  ]);
  return b.build();
}

const smallFeeds = (): Record<string, Tensor> => {
  const rng = new Rng(6);
  return { x: float32([2, 5, 16], rng.normalArray(160)), ctx: float32([2, 7, 12], rng.normalArray(168)) };
};

const FUSED: [string, Variant][] = [
  ['scale on the scores (Mul)', {}],
  ['scale on the scores (Div)', { scoreScale: 'div' }],
  ['√scale on q and on kᵀ (SDPA export)', { scoreScale: 'qk' }],
  ['K transposed in two steps (dynamo)', { kTranspose: 'late' }],
  ['Einsum products', { einsum: true }],
];
for (const [name, variant] of FUSED) {
  test(`fused: ${name}`, async () => {
    const model = attentionGraph(variant);
    const { model: fused, report } = fuseAttention(model);
    assert.equal(report.fused.length, 1, JSON.stringify(report.skipped));
    assert.deepEqual(
      fused.graph.nodes.map((n) => n.opType).sort(),
      ['Identity', 'MatMul', 'MatMul', 'MatMul', 'MatMul', 'MultiHeadAttention'],
      'q/k/v/out MatMuls and the fused node remain',
    );
    assert.ok(Math.abs((report.fused[0]!.details!.scale as number) - 0.5) < 1e-6);
    const feeds = smallFeeds();
    assert.ok(maxTensorDiff(await run(model, feeds), await run(fused, feeds)) < 1e-5);
  });
}

const LEFT: [string, Variant, RegExp][] = [
  ['an additive mask', { mask: true }, /mask/],
  ['a scaled value', { vScale: true }, /value is scaled/],
  ['a merge with the wrong permutation', { wrongMerge: true }, /heads are merged from axes/],
];
for (const [name, variant, reason] of LEFT) {
  test(`left alone: ${name}`, () => {
    const model = attentionGraph(variant);
    const { model: out, report } = fuseAttention(model);
    assert.equal(report.fused.length, 0);
    assert.equal(report.skipped.length, 1);
    assert.match(report.skipped[0]!.reason!, reason);
    assert.equal(out.graph.nodes.length, model.graph.nodes.length);
  });
}

/**
 * Heads folded into the batch, as diffusers < 0.14 and SD 1.4's CompVis attention export it:
 * [B, S, H·d] → [B, S, H, d] → [B, H, S, d] → [B·H, S, d], bmm or Einsum, and back.
 */
function foldedGraph(einsum: boolean, staticShapes: boolean): Model {
  const [B, S, L, C, H, E] = [2, 5, 7, 16, 4, 12];
  const d = C / H;
  const b = new GraphBuilder('attn', { opset: 14 });
  const rng = new Rng(8);
  const x = b.input('x', 'float32', staticShapes ? [B, S, C] : ['B', 'S', C]);
  const ctx = b.input('ctx', 'float32', staticShapes ? [B, L, E] : ['B', 'L', E]);
  const w = (name: string, i: number): string =>
    b.initializer(name, 'float32', [i, C], Float32Array.from(rng.normalArray(i * C, 0.3)));
  const q = b.op('MatMul', [x, w('to_q.weight', C)], {}, { name: 'attn2/to_q/MatMul' });
  const k = b.op('MatMul', [ctx, w('to_k.weight', E)], {}, { name: 'attn2/to_k/MatMul' });
  const v = b.op('MatMul', [ctx, w('to_v.weight', E)], {}, { name: 'attn2/to_v/MatMul' });
  const fold = (t: string, len: number): string =>
    b.op('Reshape', [
      b.op('Transpose', [b.op('Reshape', [t, b.ints(staticShapes ? [B, len, H, d] : [0, -1, H, d])])], {
        perm: [0, 2, 1, 3],
      }),
      b.ints(staticShapes ? [B * H, len, d] : [B * H, -1, d]),
    ]);
  const [q3, k3, v3] = [fold(q, S), fold(k, L), fold(v, L)];
  const scores = b.op('Mul', [
    einsum
      ? b.op('Einsum', [q3, k3], { equation: 'b i d, b j d -> b i j' })
      : b.op('MatMul', [q3, b.op('Transpose', [k3], { perm: [0, 2, 1] })]),
    b.scalar(0.5),
  ]);
  const p = b.op('Softmax', [scores], { axis: -1 }, { name: 'attn2/Softmax' });
  const o3 = einsum ? b.op('Einsum', [p, v3], { equation: 'b i j, b j d -> b i d' }) : b.op('MatMul', [p, v3]);
  const o = b.op('Reshape', [
    b.op('Transpose', [b.op('Reshape', [o3, b.ints([B, H, S, d])])], { perm: [0, 2, 1, 3] }),
    b.ints([B, S, C]),
  ]);
  b.output(b.op('MatMul', [o, w('to_out.weight', C)], {}, { name: 'attn2/to_out.0/MatMul' }), 'y', 'float32', [
    B,
    S,
    C,
  ]);
  return b.build();
}

for (const einsum of [false, true]) {
  test(`heads folded into the batch (${einsum ? 'Einsum, SD 1.4' : 'bmm, diffusers < 0.14'}): fused when shapes prove the fold`, async () => {
    const model = foldedGraph(einsum, true);
    const { model: fused, report } = fuseAttention(model);
    assert.equal(report.fused.length, 1, JSON.stringify(report.skipped));
    assert.match(report.fused[0]!.details!.form as string, /folded/);
    const feeds = smallFeeds();
    assert.ok(maxTensorDiff(await run(model, feeds), await run(fused, feeds)) < 1e-5);
  });
}

test('left alone: heads folded into the batch with a fold that symbolic shapes cannot prove', () => {
  const { report } = fuseAttention(foldedGraph(true, false));
  assert.equal(report.fused.length, 0);
  assert.match(report.skipped[0]!.reason!, /cannot prove that .* folds/);
});

test('autodiff has no rule for the fused op: training differentiates the unfused graph', () => {
  // The fused graph is for inference; train-step graphs are built from the model as exported.
  const model = attentionGraph({});
  const shapes = { x: [2, 5, 16], ctx: [2, 7, 12] };
  assert.doesNotThrow(() =>
    buildGradients(cloneModel(model), { loss: 'y', wrt: ['to_q.weight'], inputShapes: shapes }),
  );
  const { model: fused } = fuseAttention(model);
  assert.throws(
    () => buildGradients(fused, { loss: 'y', wrt: ['to_q.weight'], inputShapes: shapes }),
    (err: Error & { code?: string }) =>
      err.code === 'E_NO_GRADIENT' && /com\.microsoft\.MultiHeadAttention/.test(err.message),
  );
});
