import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VidpriorError } from '../../src/errors.js';
import { toOrtSessionOptions } from '../../src/runtime/ort-options.js';
import { type ProviderProbe, decideProvider, shortOrtMessage } from '../../src/runtime/providers.js';
import type { ExecutionProvider } from '../../src/runtime/types.js';

/** A probe that succeeds for the providers listed and records what was probed. */
function fakeProbe(working: ExecutionProvider[], log: string[]): ProviderProbe {
  return async (ep) => {
    log.push(ep);
    if (!working.includes(ep))
      throw new Error(
        '/onnxruntime_src/x.cc:1 f() cond was false. Failed to get a WebGPU adapter: No supported adapters',
      );
  };
}

// This test file stands in for an installed CUDA provider library (any existing path does).
const existing = new URL(import.meta.url).pathname;
const missing = '/nonexistent/libonnxruntime_providers_cuda.so';

test('auto: CUDA when its library exists and the probe works', async () => {
  const log: string[] = [];
  const d = await decideProvider({
    choice: 'auto',
    probe: fakeProbe(['cuda', 'webgpu'], log),
    cudaLibrary: existing,
    gpuDevices: ['/dev/nvidia0'],
  });
  assert.equal(d.ep, 'cuda');
  assert.deepEqual(log, ['cuda']);
});

test('auto: WebGPU when CUDA is missing and a GPU device answers; CPU when the probe fails', async () => {
  const log: string[] = [];
  const d = await decideProvider({
    choice: 'auto',
    probe: fakeProbe(['webgpu'], log),
    cudaLibrary: missing,
    gpuDevices: ['/dev/dri/renderD128'],
  });
  assert.equal(d.ep, 'webgpu');
  assert.match(d.reason, /CUDA provider not installed/);
  assert.deepEqual(log, ['webgpu']);
  const cpu = await decideProvider({
    choice: 'auto',
    probe: fakeProbe([], []),
    cudaLibrary: existing,
    gpuDevices: ['/dev/dri/renderD128'],
  });
  assert.equal(cpu.ep, 'cpu');
  assert.match(cpu.reason, /CUDA provider installed but failed to start/);
  assert.match(cpu.reason, /no WebGPU adapter \(Failed to get a WebGPU adapter: No supported adapters\)/);
});

test('auto: without a GPU device node WebGPU is not probed (a software Vulkan would be slower than CPU)', async () => {
  const log: string[] = [];
  const d = await decideProvider({
    choice: 'auto',
    probe: fakeProbe(['webgpu'], log),
    cudaLibrary: missing,
    gpuDevices: [],
  });
  assert.equal(d.ep, 'cpu');
  assert.match(d.reason, /no GPU device/);
  assert.deepEqual(log, []);
});

test('explicit providers: work when available, else E_EP_UNAVAILABLE with a way out', async () => {
  assert.equal(
    (await decideProvider({ choice: 'webgpu', probe: fakeProbe(['webgpu'], []), gpuDevices: [] })).ep,
    'webgpu',
  );
  assert.equal((await decideProvider({ choice: 'cpu', probe: fakeProbe([], []) })).ep, 'cpu');
  const unavailable = (words: RegExp) => (err: unknown) =>
    err instanceof VidpriorError && err.code === 'E_EP_UNAVAILABLE' && words.test(err.message);
  await assert.rejects(
    decideProvider({ choice: 'cuda', probe: fakeProbe(['cuda'], []), cudaLibrary: missing }),
    unavailable(/not installed.*onnxruntime-node-install=cuda12/s),
  );
  await assert.rejects(
    decideProvider({ choice: 'cuda', probe: fakeProbe([], []), cudaLibrary: existing }),
    unavailable(/could not start/),
  );
  await assert.rejects(
    decideProvider({ choice: 'webgpu', probe: fakeProbe([], []) }),
    unavailable(/No supported adapters.*Vulkan/s),
  );
});

test("shortOrtMessage keeps the sentence after ORT's source location", () => {
  assert.equal(
    shortOrtMessage(
      '/src/a.cc:136 lambda adapter_result.status == Success was false. Failed to get a WebGPU adapter: No supported adapters\n',
    ),
    'Failed to get a WebGPU adapter: No supported adapters',
  );
  assert.equal(shortOrtMessage('plain   message'), 'plain message');
});

test("session options map onto ORT's", () => {
  const o = toOrtSessionOptions(
    {
      graphOptimization: 'extended',
      disabledOptimizers: ['CommonSubexpressionElimination', 'ConstantFolding'],
      freeDimensionOverrides: { batch: 2 },
      disallowCpuFallback: true,
      keepOutputsOnGpu: ['y'],
      preferredLayout: 'NHWC',
    },
    'webgpu',
    3,
  );
  assert.deepEqual(o.executionProviders, [{ name: 'webgpu', preferredLayout: 'NHWC' }]);
  assert.equal(o.graphOptimizationLevel, 'extended');
  assert.equal(o.intraOpNumThreads, 3);
  assert.deepEqual(o.freeDimensionOverrides, { batch: 2 });
  assert.deepEqual(o.extra, {
    optimization: { disable_specified_optimizers: 'CommonSubexpressionElimination,ConstantFolding' },
    session: { disable_cpu_ep_fallback: '1' },
  });
  assert.deepEqual(o.preferredOutputLocation, { y: 'gpu-buffer' });
  assert.equal(toOrtSessionOptions({ keepOutputsOnGpu: true }, 'webgpu', 0).preferredOutputLocation, 'gpu-buffer');
  // On the CPU provider GPU outputs, the CPU-fallback switch and the WebGPU layout do not apply.
  const cpu = toOrtSessionOptions(
    { keepOutputsOnGpu: true, disallowCpuFallback: true, preferredLayout: 'NHWC' },
    'cpu',
    0,
  );
  assert.deepEqual(cpu.executionProviders, ['cpu']);
  assert.equal(cpu.preferredOutputLocation, undefined);
  assert.equal(cpu.extra, undefined);
  assert.equal(cpu.intraOpNumThreads, undefined);
});
