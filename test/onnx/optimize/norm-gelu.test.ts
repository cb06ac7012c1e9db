import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { decodeModel, encodeModel } from '../../../src/onnx/codec.js';
import type { Model } from '../../../src/onnx/ir.js';
import { fuseBiasSplitGelu, fuseLayerNorm, optimizeForGpu } from '../../../src/onnx/optimize/index.js';
import { inferShapes } from '../../../src/onnx/shape-inference.js';
import { buildComponent, preset } from '../../../src/models/builder/index.js';
import { findLoraTargets } from '../../../src/training/lora.js';
import { type Runtime, openRuntime } from '../../../src/runtime/index.js';
import { type Tensor, asFloat32, float32, int64 } from '../../../src/tensor.js';
import { Rng } from '../../../src/random.js';
import { maxAbsDiff } from '../../assert-close.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch/unet/model.onnx';
const skipFixture = existsSync(FIXTURE) ? false : `${FIXTURE} not found (needs ../shared)`;

let rt: Runtime;
before(async () => {
  rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
});
after(async () => {
  await rt.close();
});

async function run(model: Model, feeds: Record<string, Tensor>): Promise<Float32Array> {
  const s = await rt.createSession(encodeModel(model));
  const out = await s.run(feeds);
  await s.release();
  return asFloat32(Object.values(out)[0] as Tensor).data;
}

const count = (m: Model, op: string): number => m.graph.nodes.filter((n) => n.opType === op).length;

function feeds(seed: number): Record<string, Tensor> {
  const rng = new Rng(seed);
  return {
    sample: float32([2, 4, 16, 16], rng.normalArray(2048)),
    timestep: int64([1], [500]),
    encoder_hidden_states: float32([2, 77, 32], rng.normalArray(2 * 77 * 32, 0.5)),
  };
}

test('LayerNorm chains of the opset-14 export → LayerNormalization, outputs unchanged', {
  skip: skipFixture,
}, async () => {
  const model = decodeModel(readFileSync(FIXTURE));
  const { model: fused, report } = fuseLayerNorm(model);
  assert.equal(report.fused.length, 18, JSON.stringify(report.skipped)); // norm1/2/3 of 6 transformer blocks
  assert.equal(count(fused, 'LayerNormalization'), 18);
  assert.equal(count(fused, 'ReduceMean'), 0);
  for (const f of report.fused) assert.ok(Math.abs((f.details!.epsilon as number) - 1e-5) < 1e-9);
  assert.deepEqual(findLoraTargets(fused), findLoraTargets(model));
  const f = feeds(1);
  assert.ok(maxAbsDiff(await run(model, f), await run(fused, f)) < 1e-4);
});

test('builder UNet at opset 14: LayerNorm fused; at opset 17 nothing to do', async () => {
  const m14 = buildComponent('unet', preset('tiny'), { opset: 14, seed: 5 }).model;
  const r14 = fuseLayerNorm(m14);
  assert.equal(r14.report.fused.length, 12);
  const f = feeds(2);
  assert.ok(maxAbsDiff(await run(m14, f), await run(r14.model, f)) < 1e-4);
  const r17 = fuseLayerNorm(buildComponent('unet', preset('tiny'), { opset: 17, weights: 'none' }).model);
  assert.equal(r17.report.fused.length + r17.report.skipped.length, 0);
});

test('GEGLU → BiasSplitGelu: the fixture and the builder, proj MatMul kept, shapes consistent', {
  skip: skipFixture,
}, () => {
  for (const [model, blocks] of [
    [decodeModel(readFileSync(FIXTURE)), 6],
    [buildComponent('unet', preset('tiny'), { opset: 17, weights: 'none' }).model, 4],
  ] as const) {
    const { model: fused, report } = fuseBiasSplitGelu(model);
    assert.equal(report.fused.length, blocks, JSON.stringify(report.skipped));
    assert.equal(count(fused, 'BiasSplitGelu'), blocks);
    assert.equal(count(fused, 'Erf'), 0);
    const projs = fused.graph.nodes.filter((n) => /ff\/net\.0\/proj\/MatMul$/.test(n.name));
    assert.equal(projs.length, blocks);
    inferShapes(fused); // the BiasSplitGelu rule: [..., 2I] → [..., I], consistent with net.2
  }
  // ORT has no CPU kernel for it: the all-in-one pass leaves it off unless asked.
  const { reports } = optimizeForGpu(buildComponent('unet', preset('tiny'), { opset: 17, weights: 'none' }).model);
  assert.ok(!reports.some((r) => r.pass === 'bias-split-gelu'));
});
