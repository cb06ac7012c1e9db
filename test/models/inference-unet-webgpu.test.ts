/**
 * The inference UNet on the WebGPU provider. Runs only with VIDPRIOR_TEST_WEBGPU=1 and a Vulkan driver, e.g.
 *   VIDPRIOR_TEST_WEBGPU=1 VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json XDG_RUNTIME_DIR=$(mktemp -d) …
 *
 * On lavapipe (Mesa 25, onnxruntime-node 1.30) the WebGPU MultiHeadAttention kernel is wrong past 16 query
 * tokens (test/onnx/optimize/webgpu.test.ts): the agreement check must catch it and fall back to the plain
 * graph, and a float16 variant with the same kernels must fall back through its float32 sibling. Should a
 * driver get it right, the fused graph must then run and agree.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModelFolder } from '../../src/models/builder/folder.js';
import { openInferenceUnet } from '../../src/models/inference-unet.js';
import { type Runtime, openRuntime } from '../../src/runtime/index.js';

const SKIP =
  process.env.VIDPRIOR_TEST_WEBGPU === '1'
    ? false
    : 'WebGPU tests run with VIDPRIOR_TEST_WEBGPU=1 (and a Vulkan driver, e.g. lavapipe)';

let root: string;
let gpu: Runtime;

before(async () => {
  if (SKIP) return;
  root = mkdtempSync(join(tmpdir(), 'vidprior-inference-unet-webgpu-'));
  gpu = await openRuntime({ ep: 'webgpu' });
});
after(async () => {
  await gpu?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

test('webgpu: a fused variant runs only when it agrees with the plain graph', { skip: SKIP }, async () => {
  const dir = join(root, 'tiny');
  await createModelFolder(dir, 'tiny', { seed: 0, opset: 17 });
  const unet = join(dir, 'unet', 'model.onnx');
  const notes: string[] = [];
  const opts = {
    cacheDir: join(root, 'cache'),
    sessionOptions: { keepOutputsOnGpu: true },
    onNote: (l: string) => notes.push(l),
  };
  const fused = await openInferenceUnet(gpu, unet, { variant: 'fused', ...opts });
  await fused.session.release();
  if (fused.variant === 'fused') {
    assert.ok(
      notes.some((n) => /the fused graph agrees with the plain one on webgpu/.test(n)),
      notes.join('\n'),
    );
  } else {
    assert.equal(fused.variant, 'original');
    assert.match(
      notes.at(-1)!,
      /^unet: running the plain graph: the fused graph disagrees with the plain graph \(max abs diff/,
    );
    const fp16 = await openInferenceUnet(gpu, unet, { variant: 'fused-fp16', ...opts });
    await fp16.session.release();
    assert.equal(fp16.variant, 'original');
    assert.match(
      notes.at(-1)!,
      /^unet: running the plain graph: the fused-fp16 graph uses the kernels of the fused graph, which failed on webgpu before/,
    );
  }
});
