import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  truncateSync,
  readdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, encodeModel } from '../../src/onnx/codec.js';
import { loadModel, readExternalTensor, saveModel, savedModelBytes } from '../../src/onnx/external-data.js';
import type { Model } from '../../src/onnx/ir.js';
import { VidpriorError } from '../../src/errors.js';
import { isGpuTensor, openRuntime } from '../../src/runtime/index.js';
import { type Tensor, float32 } from '../../src/tensor.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch';

function weightsModel(): Model {
  const b = new GraphBuilder('weights', { opset: 17 });
  const x = b.input('x', 'float32', [1, 64]);
  const w1 = b.initializer(
    'w1',
    'float32',
    [64, 64],
    Float32Array.from({ length: 64 * 64 }, (_, i) => Math.sin(i)),
  );
  const w2 = b.initializer(
    'w2',
    'float16',
    [64, 3],
    Uint16Array.from({ length: 192 }, (_, i) => i * 7),
  );
  const small = b.initializer('small', 'float32', [3], Float32Array.from([1, 2, 3]));
  const shape = b.ints([1, 3]);
  const y = b.op('Add', [
    b.op('Cast', [b.op('MatMul', [b.op('MatMul', [x, w1]), b.op('Cast', [w2], { to: 1 })])], { to: 1 }),
    small,
  ]);
  b.output(b.op('Reshape', [y, shape]), 'y', 'float32', [1, 3]);
  return b.build();
}

function withTempDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vidprior-extdata-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const isCode = (code: string) => (e: unknown) => e instanceof VidpriorError && e.code === code;

test(
  'external data: save with a small threshold, load back equal',
  withTempDir(async (dir) => {
    const model = weightsModel();
    const before = encodeModel(model);
    const path = join(dir, 'model.onnx');
    await saveModel(model, path, { externalData: { threshold: 64 } });
    assert.deepEqual(encodeModel(model), before, "saving does not modify the caller's model");
    assert.deepEqual(readdirSync(dir).sort(), ['model.onnx', 'model.onnx.data']);
    assert.ok(statSync(path).size < 2000, 'the .onnx holds references, not weights');
    assert.ok(statSync(join(dir, 'model.onnx.data')).size >= 64 * 64 * 4 + 192 * 2);
    // The references are in the file: decoding it alone leaves w1/w2 unloaded, 'small' (12 bytes) inline.
    const refs = decodeModel(readFileSync(path)).graph.initializers;
    assert.equal(refs.find((t) => t.name === 'w1')!.external!.location, 'model.onnx.data');
    assert.equal(refs.find((t) => t.name === 'w2')!.external!.offset % 64, 0);
    assert.ok(refs.find((t) => t.name === 'small')!.data);
    const loaded = await loadModel(path);
    assert.deepEqual(loaded, model);
    assert.equal(await savedModelBytes(path), statSync(path).size + statSync(join(dir, 'model.onnx.data')).size);
  }),
);

test(
  'external data: lazy load, read one tensor, re-save elsewhere and in place',
  withTempDir(async (dir) => {
    const model = weightsModel();
    const first = join(dir, 'a.onnx');
    await saveModel(model, first, { externalData: { threshold: 64, fileName: 'weights.pb' } });
    const lazy = await loadModel(first, { loadExternal: false });
    const w1 = lazy.graph.initializers.find((t) => t.name === 'w1')!;
    assert.equal(w1.data, undefined);
    assert.deepEqual(await readExternalTensor(w1), model.graph.initializers.find((t) => t.name === 'w1')!.data);
    // Copy to another name with external data streamed from the source file.
    const second = join(dir, 'b.onnx');
    await saveModel(lazy, second, { externalData: { threshold: 64 } });
    assert.deepEqual(await loadModel(second), model);
    // Inline save of a lazily loaded model reads the bytes.
    const third = join(dir, 'c.onnx');
    await saveModel(lazy, third, { externalData: false });
    assert.deepEqual(decodeModel(readFileSync(third)), model);
    // Saving over its own files works (temporary names, then rename).
    await saveModel(lazy, first, { externalData: { threshold: 64, fileName: 'weights.pb' } });
    assert.deepEqual(await loadModel(first), model);
    assert.ok(!readdirSync(dir).some((f) => f.includes('.tmp-')), 'no temporary files left');
  }),
);

test(
  'external data: missing, truncated and escaping data files are clear errors',
  withTempDir(async (dir) => {
    const path = join(dir, 'model.onnx');
    await saveModel(weightsModel(), path, { externalData: { threshold: 64 } });
    truncateSync(join(dir, 'model.onnx.data'), 100);
    await assert.rejects(loadModel(path), isCode('E_ONNX'));
    rmSync(join(dir, 'model.onnx.data'));
    await assert.rejects(
      loadModel(path),
      (e: unknown) => isCode('E_MODEL_MISSING')(e) && /model\.onnx\.data/.test((e as Error).message),
    );
    await assert.rejects(loadModel(join(dir, 'nope.onnx')), isCode('E_MODEL_MISSING'));
    // A location outside the model's folder is refused.
    const m = decodeModel(readFileSync(path));
    m.graph.initializers.find((t) => t.name === 'w1')!.external!.location = '../secret.bin';
    writeFileSync(path, encodeModel(m));
    await assert.rejects(loadModel(path), /outside the model's folder/);
    writeFileSync(path, Uint8Array.from([1, 2, 3]));
    await assert.rejects(loadModel(path), isCode('E_ONNX'));
  }),
);

test('external data: the tiny-sd-torch UNet saves with external data and loads back equal', async (t) => {
  if (!existsSync(FIXTURE)) {
    t.skip(`${FIXTURE} not found`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-extdata-'));
  try {
    const model = await loadModel(`${FIXTURE}/unet/model.onnx`);
    const path = join(dir, 'model.onnx');
    await saveModel(model, path, { externalData: true });
    assert.ok(statSync(path).size < 1_000_000, `.onnx is ${statSync(path).size} bytes`);
    assert.deepEqual(await loadModel(path), model);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('external data: ONNX Runtime loads a model saved with external data and gives the same outputs', async (t) => {
  if (!existsSync(FIXTURE)) {
    t.skip(`${FIXTURE} not found`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-extdata-'));
  const rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  try {
    const source = `${FIXTURE}/vae_decoder/model.onnx`;
    const path = join(dir, 'model.onnx');
    await saveModel(await loadModel(source), path, { externalData: { threshold: 256, fileName: 'weights.pb' } });
    const feeds = {
      latent_sample: float32(
        [1, 4, 8, 8],
        Float32Array.from({ length: 256 }, (_, i) => Math.sin(i)),
      ),
    };
    const outputs: Tensor[] = [];
    for (const model of [source, path]) {
      const s = await rt.createSession(model);
      const { sample } = await s.run(feeds);
      assert.ok(sample && !isGpuTensor(sample));
      outputs.push(sample);
      await s.release();
    }
    assert.deepEqual(outputs[1]!.data, outputs[0]!.data);
  } finally {
    await rt.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
