import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VidpriorError } from '../../src/errors.js';
import { saveModel } from '../../src/onnx/external-data.js';
import { cudaProviderLibrary, gpuDeviceNodes } from '../../src/runtime/providers.js';
import { type Runtime, type Session, isGpuTensor, openRuntime } from '../../src/runtime/index.js';
import { type Tensor, float32, fromFloat16, int64, toFloat16, tensor } from '../../src/tensor.js';
import {
  FIXTURE_DIR,
  FIXTURE_SKIP,
  binarySelfModel,
  fixtureRef,
  heavyModel,
  identityModelOf,
  linearModel,
  linearReference,
  matmulModel,
} from './models.js';
import { maxAbsDiff } from '../assert-close.js';

let rt: Runtime;
before(async () => {
  rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
});
after(async () => {
  await rt.close();
});

const isCode =
  (code: string, ...words: string[]) =>
  (err: unknown) => {
    assert.ok(err instanceof VidpriorError, `expected a VidpriorError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const w of words) assert.ok(err.message.includes(w), `message "${err.message}" should mention "${w}"`);
    return true;
  };

test('cpu: a linear model from bytes matches a hand computation, and reports its inputs/outputs', async () => {
  const { bytes, w, bias } = linearModel();
  const s = await rt.createSession(bytes, { label: 'linear' });
  assert.equal(s.ep, 'cpu');
  assert.deepEqual(s.inputs, [{ name: 'x', type: 'float32', dims: ['batch', 4] }]);
  assert.deepEqual(s.outputs, [{ name: 'y', type: 'float32', dims: ['batch', 3] }]);
  const x = Float32Array.from({ length: 8 }, (_, i) => i * 0.25 - 1);
  const { y } = await s.run({ x: float32([2, 4], x) });
  assert.ok(!isGpuTensor(y));
  assert.deepEqual(y.dims, [2, 3]);
  assert.ok(maxAbsDiff(y.data as Float32Array, linearReference(x, w, bias)) < 1e-5);
  assert.equal(x.length, 8, 'feeds are copied by default: the caller keeps its data');
  await s.release();
  await assert.rejects(s.run({ x: float32([2, 4], x) }), isCode('E_BAD_REQUEST', 'released'));
});

test('cpu: transferFeeds moves the input buffer instead of copying it', async () => {
  const s = await rt.createSession(identityModelOf('float32'));
  const data = Float32Array.from([1, 2, 3]);
  const { y } = await s.run({ x: float32([3], data) }, undefined, { transferFeeds: true });
  assert.deepEqual([...(y as Tensor).data], [1, 2, 3]);
  assert.equal(data.length, 0, "the caller's array is detached");
  // A view into a larger buffer is cut out and sent alone; the caller's buffer stays intact.
  const big = Float32Array.from([9, 8, 7, 6]);
  const r = await s.run({ x: float32([2], big.subarray(1, 3)) }, undefined, { transferFeeds: true });
  assert.deepEqual([...(r.y as Tensor).data], [8, 7]);
  assert.equal(big.length, 4);
  await s.release();
});

test('cpu: float16, int64, int32, uint8 and bool tensors go in and out', async () => {
  const f16 = await rt.createSession(binarySelfModel('Add', 'float16'), { label: 'add16' });
  assert.equal(f16.inputs[0]!.type, 'float16');
  const xs = Float32Array.from([0.5, -1.25, 3, 1000]);
  const { y } = await f16.run({ x: tensor('float16', [4], toFloat16(xs)) });
  assert.equal((y as Tensor).type, 'float16');
  assert.ok((y as Tensor).data instanceof Uint16Array);
  assert.deepEqual([...fromFloat16((y as Tensor).data as Uint16Array)], [1, -2.5, 6, 2000]);

  const i64 = await rt.createSession(binarySelfModel('Add', 'int64'));
  const big = 2n ** 40n + 3n;
  const r64 = (await i64.run({ x: int64([2], [big, -5n]) })).y as Tensor;
  assert.equal(r64.type, 'int64');
  assert.deepEqual([...(r64.data as BigInt64Array)], [2n * big, -10n]);

  const cases: Tensor[] = [
    tensor('int32', [3], Int32Array.from([1, -2, 2 ** 30])),
    tensor('uint8', [3], Uint8Array.from([0, 128, 255])),
    tensor('bool', [3], Uint8Array.from([1, 0, 1])),
  ];
  for (const t of cases) {
    const s = await rt.createSession(identityModelOf(t.type));
    const out = (await s.run({ x: t })).y as Tensor;
    assert.equal(out.type, t.type);
    assert.deepEqual([...(out.data as Uint8Array)], [...(t.data as Uint8Array)], t.type);
    await s.release();
  }
  await f16.release();
  await i64.release();
});

test('cpu: bad feeds get errors that name the session and the input', async () => {
  const s = await rt.createSession(linearModel().bytes, { label: 'linear' });
  const x = float32([1, 4]);
  await assert.rejects(s.run({ input: x }), isCode('E_MODEL_INPUT', 'linear', "'input'", 'x'));
  await assert.rejects(s.run({}), isCode('E_MODEL_INPUT', "'x'", 'missing'));
  await assert.rejects(s.run({ x: float32([1, 5]) }), isCode('E_MODEL_INPUT', "'x'", '[1, 5]', '[batch, 4]'));
  await assert.rejects(s.run({ x: float32([4]) }), isCode('E_MODEL_INPUT', "'x'"));
  await assert.rejects(
    s.run({ x: tensor('float16', [1, 4], new Uint16Array(4)) }),
    isCode('E_MODEL_INPUT', "'x'", 'float32', 'float16'),
  );
  await assert.rejects(
    s.run({ x: { type: 'float32', dims: [2, 4], data: new Float32Array(4) } }),
    isCode('E_SHAPE', "'x'"),
  );
  await assert.rejects(s.run({ x }, ['z']), isCode('E_MODEL_INPUT', "'z'"));
  // Shapes only ORT can check (symbolic inner dims) become E_RUNTIME with the label and ORT's message.
  const mm = await rt.createSession(matmulModel(), { label: 'mm' });
  await assert.rejects(mm.run({ a: float32([2, 3]), b: float32([4, 2]) }), isCode('E_RUNTIME', 'mm', 'ONNX Runtime'));
  await s.release();
  await mm.release();
});

test('cpu: bad model files get errors naming the file', async () => {
  await assert.rejects(
    rt.createSession('/nonexistent/unet/model.onnx'),
    isCode('E_MODEL_MISSING', '/nonexistent/unet/model.onnx'),
  );
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-rt-'));
  try {
    const bogus = join(dir, 'broken.onnx');
    writeFileSync(bogus, 'not a model');
    await assert.rejects(rt.createSession(bogus), isCode('E_ONNX', bogus));
    await assert.rejects(rt.createSession(new Uint8Array([1, 2, 3]), { label: 'vae' }), isCode('E_ONNX', 'vae'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cpu: external data loads from a path and from bytes + externalData entries', async () => {
  const { model, w, bias } = linearModel();
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-rt-'));
  try {
    const path = join(dir, 'model.onnx');
    await saveModel(model, path, { externalData: { threshold: 0, fileName: 'weights.bin' } });
    assert.ok(existsSync(join(dir, 'weights.bin')));
    const x = Float32Array.from([1, 2, 3, 4]);
    const expected = linearReference(x, w, bias);
    const y = async (s: Session) => ((await s.run({ x: float32([1, 4], x) })).y as Tensor).data as Float32Array;
    const fromPath = await rt.createSession(path);
    assert.equal(fromPath.label, dir.split('/').pop(), 'a model.onnx is labelled by its folder');
    assert.ok(maxAbsDiff(await y(fromPath), expected) < 1e-5);
    const bytes = readFileSync(path);
    const weights = join(dir, 'weights.bin');
    const fromBytes = await rt.createSession(bytes, {
      externalData: [{ path: 'weights.bin', data: readFileSync(weights) }],
    });
    assert.ok(maxAbsDiff(await y(fromBytes), expected) < 1e-5);
    const fromBytesPath = await rt.createSession(bytes, { externalData: [{ path: 'weights.bin', data: weights }] });
    assert.ok(maxAbsDiff(await y(fromBytesPath), expected) < 1e-5);
    await Promise.all([fromPath.release(), fromBytes.release(), fromBytesPath.release()]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cpu: keepOutputsOnGpu is ignored on the CPU provider (host tensors come back)', async () => {
  const s = await rt.createSession(identityModelOf('float32'), {
    keepOutputsOnGpu: true,
    disabledOptimizers: ['CommonSubexpressionElimination'],
    graphOptimization: 'basic',
    disallowCpuFallback: true,
    freeDimensionOverrides: { n: 2 },
  });
  const { y } = await s.run({ x: float32([2], [4, 5]) });
  assert.ok(!isGpuTensor(y));
  assert.deepEqual([...(y as Tensor).data], [4, 5]);
  await assert.rejects(
    rt.createSession(identityModelOf('float32'), { keepOutputsOnGpu: ['nope'] }),
    isCode('E_MODEL_INPUT', "'nope'"),
  );
  // read/upload/dispose accept host tensors, so code written for GPU-resident tensors runs here unchanged.
  const host = float32([1], [3]);
  assert.equal(await rt.upload(host), host);
  assert.equal(await rt.read(host), host);
  await rt.dispose([host]);
  await s.release();
});

test('the main event loop keeps ticking while the worker runs a heavy model', async () => {
  const s = await rt.createSession(heavyModel(384, 24), { label: 'heavy' });
  const x = float32(
    [384, 384],
    Float32Array.from({ length: 384 * 384 }, (_, i) => Math.sin(i)),
  );
  await s.run({ x }); // warm up (allocations, kernel selection)
  let ticks = 0;
  const timer = setInterval(() => {
    ticks++;
  }, 2);
  // Keep the worker busy for at least 150 ms, whatever the machine's speed (the gaps between runs are tiny).
  const t0 = performance.now();
  let runs = 0;
  while (performance.now() - t0 < 150) {
    await s.run({ x });
    runs++;
  }
  const ms = performance.now() - t0;
  clearInterval(timer);
  await s.release();
  // If run() blocked the main thread, ticks could only happen in the gaps between runs.
  const expected = ms / 2;
  assert.ok(
    ticks >= Math.max(3, runs * 2, expected / 4),
    `${ticks} ticks of a 2 ms interval during ${runs} runs in ${ms.toFixed(0)} ms`,
  );
});

test('a worker that dies rejects pending requests and marks the runtime dead', async () => {
  const local = await openRuntime({ ep: 'cpu' });
  const s = await local.createSession(identityModelOf('float32'));
  // Stop the worker thread behind the runtime's back (its private link owns the Worker). Only while it is
  // idle: terminating a worker inside an ORT run aborts the whole process (onnxruntime-node 1.30).
  const worker = (local as unknown as { link: { worker: { terminate(): Promise<number> } } }).link.worker;
  const stopped = worker.terminate();
  const pending = s.run({ x: float32([2]) });
  await assert.rejects(pending, isCode('E_RUNTIME', 'worker stopped unexpectedly'));
  await stopped;
  await assert.rejects(s.run({ x: float32([2]) }), isCode('E_RUNTIME', 'worker stopped unexpectedly'));
  await local.close();
});

test('a process with an open, idle runtime can exit without close()', async () => {
  const { spawnSync } = await import('node:child_process');
  const script = `
    import { openRuntime } from ${JSON.stringify(new URL('../../src/runtime/index.js', import.meta.url).href)};
    const rt = await openRuntime({ ep: 'cpu' });
    const s = await rt.createSession(new Uint8Array(${JSON.stringify([...identityModelOf('float32')])}));
    const { y } = await s.run({ x: { type: 'float32', dims: [1], data: new Float32Array([7]) } });
    console.log('ran', y.data[0], process.pid);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ran 7/);
  // Without close() nobody removes onnxruntime's empty debug log of that process (see src/runtime/index.ts).
  const pid = /ran 7 (\d+)/.exec(r.stdout)?.[1];
  rmSync(join(tmpdir(), `mat-debug-${pid}.log`), { force: true });
});

test('auto picks the provider this machine has and says why; a missing CUDA is E_EP_UNAVAILABLE', async () => {
  const cudaInstalled = existsSync(cudaProviderLibrary());
  const auto = await openRuntime({ ep: 'auto' });
  try {
    assert.ok(auto.decision.reason.length > 0);
    if (!cudaInstalled && gpuDeviceNodes().length === 0) {
      assert.equal(auto.decision.ep, 'cpu');
      assert.match(auto.decision.reason, /CUDA provider not installed/);
      assert.match(auto.decision.reason, /no GPU device/);
    }
  } finally {
    await auto.close();
  }
  if (!cudaInstalled) {
    await assert.rejects(
      openRuntime({ ep: 'cuda' }),
      isCode('E_EP_UNAVAILABLE', 'libonnxruntime_providers_cuda', 'README'),
    );
  }
  await assert.rejects(openRuntime({ ep: 'tpu' as never }), isCode('E_BAD_REQUEST', 'tpu'));
});

test('fixture: the VAE decoder exported by diffusers matches its reference to 1e-4', {
  skip: FIXTURE_SKIP,
}, async () => {
  const s = await rt.createSession(join(FIXTURE_DIR, 'vae_decoder', 'model.onnx'));
  assert.equal(s.label, 'vae_decoder');
  assert.deepEqual(s.inputs[0], { name: 'latent_sample', type: 'float32', dims: ['batch', 4, 'height', 'width'] });
  const lat = fixtureRef('vae_lat');
  const dec = fixtureRef('vae_dec');
  const { sample } = await s.run({ latent_sample: float32(lat.dims, lat.data) });
  assert.deepEqual(sample!.dims, dec.dims);
  assert.ok(maxAbsDiff((sample as Tensor).data as Float32Array, dec.data) < 1e-4);
  await s.release();
});

test('fixture: the UNet (int64 timestep) matches its reference to 1e-4', { skip: FIXTURE_SKIP }, async () => {
  const s = await rt.createSession(join(FIXTURE_DIR, 'unet', 'model.onnx'));
  assert.deepEqual(
    s.inputs.map((i) => [i.name, i.type]),
    [
      ['sample', 'float32'],
      ['timestep', 'int64'],
      ['encoder_hidden_states', 'float32'],
    ],
  );
  const x = fixtureRef('unet_x');
  const ctx = fixtureRef('te_hidden');
  const eps = fixtureRef('unet_eps');
  const { out_sample } = await s.run({
    sample: float32(x.dims, x.data),
    timestep: int64([1], [500]),
    encoder_hidden_states: float32(ctx.dims, ctx.data),
  });
  assert.ok(maxAbsDiff((out_sample as Tensor).data as Float32Array, eps.data) < 1e-4);
  await s.release();
});
