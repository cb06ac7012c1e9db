/**
 * WebGPU provider tests. They need a Vulkan driver, so they run only with VIDPRIOR_TEST_WEBGPU=1 (CI sets it
 * and uses Mesa's software lavapipe: VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json XDG_RUNTIME_DIR=…).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { VidpriorError } from '../../src/errors.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { encodeModel } from '../../src/onnx/codec.js';
import { type GpuTensor, type Runtime, isGpuTensor, openRuntime } from '../../src/runtime/index.js';
import { type Tensor, float32, fromFloat16, int64, tensor, toFloat16 } from '../../src/tensor.js';
import { FIXTURE_DIR, FIXTURE_SKIP, binarySelfModel, fixtureRef, linearModel, linearReference } from './models.js';
import { maxAbsDiff } from '../assert-close.js';

const SKIP =
  process.env.VIDPRIOR_TEST_WEBGPU === '1'
    ? false
    : 'WebGPU tests run with VIDPRIOR_TEST_WEBGPU=1 (and a Vulkan driver, e.g. lavapipe)';

let gpu: Runtime;
before(async () => {
  if (!SKIP) gpu = await openRuntime({ ep: 'webgpu' });
});
after(async () => {
  await gpu?.close();
});

/** y = x·x and z = x + x: two outputs, to keep one on the GPU and bring the other home. */
function twoOutputModel(): Uint8Array {
  const b = new GraphBuilder('two', { opset: 17 });
  const x = b.input('x', 'float32', ['n']);
  b.output(b.op('Mul', [x, x], {}, { outputs: ['y'] }), undefined, 'float32', ['n']);
  b.output(b.op('Add', [x, x], {}, { outputs: ['z'] }), undefined, 'float32', ['n']);
  return encodeModel(b.build());
}

test('webgpu: the decision says webgpu and a session agrees with the CPU provider', { skip: SKIP }, async () => {
  assert.equal(gpu.decision.ep, 'webgpu');
  assert.match(gpu.decision.reason, /adapter/);
  const { bytes, w, bias } = linearModel();
  const s = await gpu.createSession(bytes, { label: 'linear' });
  assert.equal(s.ep, 'webgpu');
  const x = Float32Array.from({ length: 12 }, (_, i) => Math.cos(i));
  const { y } = await s.run({ x: float32([3, 4], x) });
  assert.ok(!isGpuTensor(y), 'without keepOutputsOnGpu outputs come back to the host');
  assert.ok(maxAbsDiff((y as Tensor).data as Float32Array, linearReference(x, w, bias)) < 1e-5);
  await s.release();
});

test('webgpu: outputs kept on the GPU feed the next run and read back through an Identity session', {
  skip: SKIP,
}, async () => {
  const square = await gpu.createSession(binarySelfModel('Mul', 'float32'), {
    keepOutputsOnGpu: true,
    label: 'square',
  });
  const two = await gpu.createSession(twoOutputModel(), { keepOutputsOnGpu: ['y'], label: 'two' });
  const a = (await square.run({ x: float32([3], [1, 2, 3]) })).y as GpuTensor;
  assert.ok(isGpuTensor(a));
  assert.deepEqual([a.type, [...a.dims]], ['float32', [3]]);
  const b = (await square.run({ x: a })).y as GpuTensor; // same session, fed back
  const { y, z } = await two.run({ x: b }); // another session, one output kept, one brought home
  assert.ok(isGpuTensor(y));
  assert.ok(!isGpuTensor(z));
  assert.deepEqual([...(z as Tensor).data], [2, 32, 162]);
  assert.deepEqual([...(await gpu.read(b)).data], [1, 16, 81]);
  assert.deepEqual([...(await gpu.read(y)).data], [1, 256, 6561]);
  await gpu.dispose([a, b, y]);
  const gone = (err: unknown) =>
    err instanceof VidpriorError && err.code === 'E_BAD_REQUEST' && /disposed/.test(err.message);
  await assert.rejects(gpu.read(b), gone);
  await assert.rejects(square.run({ x: b }), gone);
  await square.release();
  await two.release();
});

test('webgpu: float16 and int64 tensors stay on the GPU and read back exactly', { skip: SKIP }, async () => {
  const f16 = await gpu.createSession(binarySelfModel('Add', 'float16'), { keepOutputsOnGpu: true });
  const h = (await f16.run({ x: tensor('float16', [3], toFloat16(Float32Array.from([1.5, -2, 0.25]))) }))
    .y as GpuTensor;
  assert.equal(h.type, 'float16');
  const back = await gpu.read(h);
  assert.ok(back.data instanceof Uint16Array);
  assert.deepEqual([...fromFloat16(back.data as Uint16Array)], [3, -4, 0.5]);
  const i64 = await gpu.createSession(binarySelfModel('Add', 'int64'), { keepOutputsOnGpu: true });
  const k = (await i64.run({ x: int64([2], [5n, -7n]) })).y as GpuTensor;
  assert.deepEqual([...((await gpu.read(k)).data as BigInt64Array)], [10n, -14n]);
  await gpu.dispose([h, k]);
  await f16.release();
  await i64.release();
});

test('webgpu: disallowCpuFallback turns a CPU-only node into an error naming the session', { skip: SKIP }, async () => {
  // Sign has no WebGPU kernel in ORT 1.30, so it would silently run on the CPU.
  const b = new GraphBuilder('sign', { opset: 17 });
  const x = b.input('x', 'float32', [4]);
  b.output(b.op('Sign', [x], {}, { outputs: ['y'] }), undefined, 'float32', [4]);
  const bytes = encodeModel(b.build());
  const lenient = await gpu.createSession(bytes);
  assert.deepEqual([...((await lenient.run({ x: float32([4], [-2, 0, 3, -0.5]) })).y as Tensor).data], [-1, 0, 1, -1]);
  await lenient.release();
  await assert.rejects(
    gpu.createSession(bytes, { disallowCpuFallback: true, label: 'strict' }),
    (err: unknown) =>
      err instanceof VidpriorError &&
      err.code === 'E_RUNTIME' &&
      /strict/.test(err.message) &&
      /fallback/i.test(err.message),
  );
});

test('webgpu: the diffusers VAE decoder matches its reference (NCHW and NHWC layouts)', {
  skip: SKIP || FIXTURE_SKIP,
}, async () => {
  const lat = fixtureRef('vae_lat');
  const dec = fixtureRef('vae_dec');
  for (const preferredLayout of ['NCHW', 'NHWC'] as const) {
    const s = await gpu.createSession(join(FIXTURE_DIR, 'vae_decoder', 'model.onnx'), { preferredLayout });
    const { sample } = await s.run({ latent_sample: float32(lat.dims, lat.data) });
    const diff = maxAbsDiff((sample as Tensor).data as Float32Array, dec.data);
    assert.ok(diff < 1e-4, `${preferredLayout}: max |diff| ${diff}`);
    await s.release();
  }
});

test('webgpu: a kept tensor outlives its session; handles of another runtime are refused', { skip: SKIP }, async () => {
  const s = await gpu.createSession(binarySelfModel('Add', 'float32'), { keepOutputsOnGpu: true });
  const h = (await s.run({ x: float32([2], [1, -1]) })).y as GpuTensor;
  await s.release();
  assert.deepEqual([...(await gpu.read(h)).data], [2, -2]);
  const other = await openRuntime({ ep: 'webgpu' });
  try {
    const foreign = (err: unknown) =>
      err instanceof VidpriorError && err.code === 'E_BAD_REQUEST' && /another runtime/.test(err.message);
    await assert.rejects(other.read(h), foreign);
    const s2 = await other.createSession(binarySelfModel('Add', 'float32'));
    await assert.rejects(s2.run({ x: h }), foreign);
  } finally {
    await other.close();
  }
  await gpu.dispose(h);
});

test('webgpu: upload() puts a host tensor on the GPU once, to feed many runs', { skip: SKIP }, async () => {
  const noise = await gpu.upload(float32([3], [0.5, -1, 2]));
  assert.ok(isGpuTensor(noise));
  const s = await gpu.createSession(binarySelfModel('Add', 'float32'));
  for (let i = 0; i < 2; i++) assert.deepEqual([...((await s.run({ x: noise })).y as Tensor).data], [1, -2, 4]);
  const half = await gpu.upload(tensor('float16', [2], toFloat16(Float32Array.from([1, -0.5]))));
  assert.deepEqual([...fromFloat16((await gpu.read(half)).data as Uint16Array)], [1, -0.5]);
  await gpu.dispose([noise, half]);
  await s.release();
});

test('webgpu: asking for a subset of outputs when some stay on the GPU gives the right ones by name', {
  skip: SKIP,
}, async () => {
  // onnxruntime-node 1.30 fails such a run ("Output count mismatch"); the runtime runs all outputs and drops the rest.
  const b = new GraphBuilder('subset', { opset: 17 });
  const x = b.input('x', 'float32', [6, 4]);
  b.output(b.op('Transpose', [x]), 'xt', 'float32', [4, 6]);
  b.output(b.op('Add', [x, x]), 'twice', 'float32', [6, 4]);
  b.output(b.op('ReduceSum', [x], { keepdims: 0 }), 'sum', 'float32', []);
  const s = await gpu.createSession(encodeModel(b.build()), { label: 'subset', keepOutputsOnGpu: ['xt', 'twice'] });
  const feed = {
    x: float32(
      [6, 4],
      Float32Array.from({ length: 24 }, (_, i) => i),
    ),
  };
  const onlySum = await s.run(feed, ['sum']);
  assert.deepEqual(Object.keys(onlySum), ['sum']);
  assert.equal((onlySum.sum as Tensor<'float32'>).data[0], 276);
  const pair = await s.run(feed, ['sum', 'xt']);
  assert.deepEqual((pair.xt as GpuTensor).dims, [4, 6]);
  assert.equal((await gpu.read(pair.xt as GpuTensor)).data[1], 4);
  await gpu.dispose(pair.xt as GpuTensor);
  await s.release();
});
