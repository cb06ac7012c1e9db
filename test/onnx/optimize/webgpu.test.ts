/**
 * Fused attention on the WebGPU provider: MultiHeadAttention must get a WebGPU kernel (no CPU fallback) and
 * agree with the CPU provider. Runs only with VIDPRIOR_TEST_WEBGPU=1 and a Vulkan driver, e.g. lavapipe:
 *   VIDPRIOR_TEST_WEBGPU=1 VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json XDG_RUNTIME_DIR=/tmp …
 *
 * Known (2026-11-25, onnxruntime-node 1.30 on Mesa lavapipe): the WebGPU MultiHeadAttention kernel is wrong
 * once the query length exceeds 16 (max error 0.04–0.25 on unit-normal q/k/v, whatever the batch, heads or
 * key length; the CPU kernel matches a float64 reference to 2e-7). The checks below therefore run the fused
 * graphs at ≤ 16 query tokens, where they agree, and the longer case is a `todo` that reports the error. Until
 * it is measured to agree on a real GPU (bench/gpu/session.sh: each variant's maxAbsDiff), do not turn fusion
 * on by default for WebGPU (src/models/inference-unet.ts checks it again where it runs).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { decodeModel, encodeModel } from '../../../src/onnx/codec.js';
import { foldConstants } from '../../../src/onnx/fold.js';
import type { Model } from '../../../src/onnx/ir.js';
import { optimizeForGpu } from '../../../src/onnx/optimize/index.js';
import { Net } from '../../../src/models/builder/net.js';
import { transformer2d } from '../../../src/models/builder/blocks.js';
import { type Runtime, type SessionOptions, openRuntime } from '../../../src/runtime/index.js';
import { type Tensor, asFloat32, float32, int64 } from '../../../src/tensor.js';
import { Rng } from '../../../src/random.js';
import { maxAbsDiff } from '../../assert-close.js';

const SKIP =
  process.env.VIDPRIOR_TEST_WEBGPU === '1'
    ? false
    : 'WebGPU tests run with VIDPRIOR_TEST_WEBGPU=1 (and a Vulkan driver, e.g. lavapipe)';
const FIXTURE = '../shared/fixtures/tiny-sd-torch/unet/model.onnx';

let cpu: Runtime, gpu: Runtime;
before(async () => {
  if (SKIP) return;
  cpu = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  gpu = await openRuntime({ ep: 'webgpu' });
});
after(async () => {
  await cpu?.close();
  await gpu?.close();
});

async function run(
  rt: Runtime,
  model: Model,
  feeds: Record<string, Tensor>,
  options: SessionOptions = {},
): Promise<Float32Array> {
  const s = await rt.createSession(encodeModel(model), options);
  const out = await s.run(feeds);
  await s.release();
  return asFloat32(await rt.read(Object.values(out)[0]!)).data;
}

/** A Transformer2DModel of the model builder (self- and cross-attention, GEGLU) on a side×side map. */
function transformerBlock(side: number): {
  model: Model;
  feeds: Record<string, Tensor>;
  shapes: Record<string, number[]>;
} {
  const net = new Net('transformer', { opset: 17, dtype: 'float32', weights: 'random', seed: 2 });
  const shapes = { x: [2, 32, side, side], ctx: [2, 77, 24] };
  const x = net.input('x', 'float32', shapes.x);
  const ctx = net.input('ctx', 'float32', shapes.ctx);
  net.output(
    transformer2d(net, 'attentions.0', x, 32, {
      heads: 4,
      groups: 32,
      context: ctx,
      crossDim: 24,
      layers: 1,
      linearProjection: false,
    }),
    'float32',
    shapes.x,
  );
  const rng = new Rng(3);
  return {
    model: net.build(),
    shapes,
    feeds: {
      x: float32(shapes.x, rng.normalArray(64 * side * side)),
      ctx: float32(shapes.ctx, rng.normalArray(2 * 77 * 24)),
    },
  };
}

async function blockError(side: number, float16: boolean): Promise<number> {
  const { model, feeds, shapes } = transformerBlock(side);
  const ref = await run(cpu, model, feeds);
  const { model: fused, reports } = optimizeForGpu(model, { float16 });
  assert.equal(reports.find((r) => r.pass === 'attention')!.fused.length, 2);
  // Shape arithmetic (GroupNorm's Shape → Reshape) is int64 work ORT keeps on the CPU: fold it for this check.
  foldConstants(fused, shapes);
  return maxAbsDiff(ref, await run(gpu, fused, feeds, { disallowCpuFallback: true }));
}

test('fused transformer block (16 tokens): every node on WebGPU, agrees with CPU (float32 and float16)', {
  skip: SKIP,
}, async () => {
  const d32 = await blockError(4, false);
  assert.ok(d32 < 1e-4, `float32: max difference ${d32}`);
  const d16 = await blockError(4, true);
  assert.ok(d16 < 2e-2, `float16: max difference ${d16}`);
});

test('fused transformer block (64 tokens) agrees with CPU', {
  skip: SKIP,
  todo: 'WebGPU MultiHeadAttention is wrong past 16 query tokens on lavapipe (ORT 1.30); check on a real GPU',
}, async () => {
  const d = await blockError(8, false);
  assert.ok(d < 1e-4, `float32: max difference ${d}`);
});

test('GEGLU as BiasSplitGelu (64 tokens, no attention fusion): on WebGPU, agrees with CPU', {
  skip: SKIP,
}, async () => {
  const { model, feeds, shapes } = transformerBlock(8);
  const ref = await run(cpu, model, feeds);
  const { model: fused, reports } = optimizeForGpu(model, { attention: false, biasSplitGelu: true });
  assert.equal(reports.find((r) => r.pass === 'bias-split-gelu')!.fused.length, 1);
  foldConstants(fused, shapes);
  const d = maxAbsDiff(ref, await run(gpu, fused, feeds, { disallowCpuFallback: true }));
  assert.ok(d < 1e-4, `max difference ${d}`);
});

test('GEGLU as BiasSplitGelu in a float16 graph stays float32 and finite on WebGPU', { skip: SKIP }, async () => {
  const { model, feeds, shapes } = transformerBlock(4);
  const ref = await run(cpu, model, feeds);
  const { model: fused, reports } = optimizeForGpu(model, { biasSplitGelu: true, float16: true });
  assert.ok(reports.find((r) => r.pass === 'float16')!.notes!.includes('BiasSplitGelu kept in float32'));
  assert.ok(
    fused.graph.nodes
      .filter((n) => n.opType === 'BiasSplitGelu')
      .every((n) => n.inputs.every((i) => fused.graph.valueInfo.find((v) => v.name === i)?.type !== 'float16')),
  );
  foldConstants(fused, shapes);
  const y = await run(gpu, fused, feeds, { disallowCpuFallback: true });
  assert.ok(y.every(Number.isFinite));
  const d = maxAbsDiff(ref, y);
  assert.ok(d < 2e-2, `max difference ${d}`);
});

test('fused real export (fixture UNet, 16-token attention) on WebGPU agrees with the unfused one on CPU', {
  skip: SKIP || (existsSync(FIXTURE) ? false : `${FIXTURE} not found`),
}, async () => {
  const model = decodeModel(readFileSync(FIXTURE));
  const { model: fused, reports } = optimizeForGpu(model);
  assert.equal(reports.find((r) => r.pass === 'attention')!.fused.length, 12);
  const rng = new Rng(4);
  // 8×8 latents: the fixture's attention runs after one downsampling, on 4×4 = 16 tokens.
  const feeds = {
    sample: float32([2, 4, 8, 8], rng.normalArray(512)),
    timestep: int64([1], [500]),
    encoder_hidden_states: float32([2, 77, 32], rng.normalArray(2 * 77 * 32)),
  };
  // The int64 timestep path (Expand, Unsqueeze, Cast) runs on the CPU provider in the original too.
  const ref = await run(cpu, model, feeds);
  const unfusedGpu = await run(gpu, model, feeds);
  const fusedGpu = await run(gpu, fused, feeds);
  const [dFused, dUnfused, dGpu] = [
    maxAbsDiff(ref, fusedGpu),
    maxAbsDiff(ref, unfusedGpu),
    maxAbsDiff(unfusedGpu, fusedGpu),
  ];
  // WebGPU's own float32 error on this UNet (convolutions, GroupNorm) is ~1e-4 of outputs ~1.5: the fused graph
  // must add nothing beyond it.
  assert.ok(
    dFused < Math.max(2 * dUnfused, 1e-4),
    `fused on WebGPU vs CPU ${dFused}, unfused on WebGPU vs CPU ${dUnfused}`,
  );
  assert.ok(dGpu < 2e-4, `fused vs unfused, both on WebGPU: ${dGpu}`);
});
