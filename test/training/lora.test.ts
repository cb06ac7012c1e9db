import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeModel, encodeModel } from '../../src/onnx/codec.js';
import { openRuntime } from '../../src/runtime/index.js';
import { findLoraTargets, injectLora } from '../../src/training/lora.js';
import { type Adapter, checkAdapterFits, loadAdapter, mergeAdapter, saveAdapter } from '../../src/training/adapter.js';
import { Rng } from '../../src/random.js';
import { float32, int64, type Tensor } from '../../src/tensor.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch/unet/model.onnx';
const skip = existsSync(FIXTURE) ? false : `${FIXTURE} not found (needs ../shared)`;

function unetFeeds(rng: Rng): Record<string, Tensor> {
  return {
    sample: float32([1, 4, 8, 8], rng.normalArray(4 * 64)),
    timestep: int64([1], [500]),
    encoder_hidden_states: float32([1, 77, 32], rng.normalArray(77 * 32)),
  };
}

test('finds the attention projections of a real export by node name', { skip }, () => {
  const model = decodeModel(readFileSync(FIXTURE));
  const targets = findLoraTargets(model);
  // 2 down + 3 up + 1 mid transformer blocks (see the fixture README), 2 attentions each, 4 projections.
  const modules = targets.map((t) => t.module);
  assert.ok(modules.includes('down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q'), modules.slice(0, 4).join());
  assert.ok(modules.includes('mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0'));
  assert.equal(targets.length % 8, 0);
  const k = targets.find((t) => t.module.endsWith('attn2.to_k'))!;
  assert.deepEqual([k.inFeatures, k.outFeatures], [32, 64]); // cross-attention reads the 32-wide text states
  const convs = findLoraTargets(model, { convs: true }).filter((t) => t.kind === 'conv');
  assert.ok(convs.some((t) => t.module.endsWith('resnets.0.conv1')));
});

test('zero-B LoRA leaves the output bit for bit unchanged; a merged adapter equals the branch', { skip }, async (t) => {
  const rt = await openRuntime({ ep: 'cpu' });
  try {
    const feeds = unetFeeds(new Rng(1));
    const base = await rt.createSession(FIXTURE, { label: 'unet' });
    const ref = (await base.run(feeds)).out_sample as Tensor<'float32'>;

    const model = decodeModel(readFileSync(FIXTURE));
    const targets = findLoraTargets(model);
    const params = injectLora(model, targets, { rank: 4, alpha: 4, as: 'inputs' });
    const withLora = await rt.createSession(encodeModel(model), { label: 'unet+lora' });
    const rng = new Rng(2);
    const zeroFeeds: Record<string, Tensor> = { ...feeds };
    const randomFeeds: Record<string, Tensor> = { ...feeds };
    const adapter: Adapter = { rank: 4, alpha: 8, weights: new Map(), record: { prompt: 'test' } };
    for (const p of params) {
      const a = rng.normalArray(
        p.aDims.reduce((x, y) => x * y),
        0.1,
      );
      const b = rng.normalArray(
        p.bDims.reduce((x, y) => x * y),
        0.1,
      );
      zeroFeeds[p.a] = float32(p.aDims, a);
      zeroFeeds[p.b] = float32(p.bDims, new Float32Array(b.length));
      randomFeeds[p.a] = float32(p.aDims, a);
      randomFeeds[p.b] = float32(p.bDims, b);
      adapter.weights.set(p.target.module, { kind: 'linear', a, b, aDims: p.aDims, bDims: p.bDims });
    }
    const same = (await withLora.run(zeroFeeds)).out_sample as Tensor<'float32'>;
    assert.deepEqual(Buffer.from(same.data.buffer), Buffer.from(ref.data.buffer));

    // alpha 8 / rank 4 = scale 2 in the adapter; the injected graph used alpha = rank (scale 1): double B.
    for (const p of params) {
      const b = randomFeeds[p.b]!.data as Float32Array;
      randomFeeds[p.b] = float32(
        p.bDims,
        b.map((v) => v * 2),
      );
    }
    const branched = (await withLora.run(randomFeeds)).out_sample as Tensor<'float32'>;

    const dir = mkdtempSync(join(tmpdir(), 'lora-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    await saveAdapter(join(dir, 'a.safetensors'), adapter);
    const loaded = await loadAdapter(join(dir, 'a.safetensors'));
    assert.equal(loaded.rank, 4);
    assert.equal(loaded.alpha, 8);
    const merged = decodeModel(readFileSync(FIXTURE));
    mergeAdapter(merged, findLoraTargets(merged), loaded);
    const mergedSession = await rt.createSession(encodeModel(merged), { label: 'unet merged' });
    const out = (await mergedSession.run(feeds)).out_sample as Tensor<'float32'>;
    let maxDiff = 0,
      maxRef = 0;
    for (let i = 0; i < out.data.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(out.data[i]! - branched.data[i]!));
      maxRef = Math.max(maxRef, Math.abs(branched.data[i]! - ref.data[i]!));
    }
    assert.ok(maxRef > 1e-2, `the adapter should change the output (changed by ${maxRef})`);
    assert.ok(
      maxDiff < 1e-4 * Math.max(1, maxRef),
      `merged vs branch differ by ${maxDiff} (adapter changed the output by ${maxRef})`,
    );
  } finally {
    await rt.close();
  }
});

test('an adapter for another model is refused with a clear error', { skip }, async () => {
  const model = decodeModel(readFileSync(FIXTURE));
  const targets = findLoraTargets(model);
  const wrong: Adapter = {
    rank: 4,
    alpha: 4,
    record: {},
    weights: new Map([
      [
        targets[0]!.module,
        {
          kind: 'linear',
          a: new Float32Array(320 * 4),
          b: new Float32Array(4 * 320),
          aDims: [320, 4],
          bDims: [4, 320],
        },
      ],
    ]),
  };
  assert.throws(
    () => checkAdapterFits(wrong, targets, 'x.safetensors'),
    /x\.safetensors does not fit this model: .*to_q needs A \[64,4\]/,
  );
  const missing: Adapter = {
    ...wrong,
    weights: new Map([['down_blocks.9.attn1.to_q', wrong.weights.get(targets[0]!.module)!]]),
  };
  assert.throws(() => checkAdapterFits(missing, targets), /which the model does not have/);
});
