/**
 * The builder's graphs run in onnxruntime (CPU, through src/runtime) with the shapes of diffusers' exports and
 * healthy values (finite, neither flat nor exploding); opsets 14/17/18 compute the same function; float16
 * builds track float32; the same seed gives the same bytes. Small spatial sizes keep this fast.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildComponent, preset } from '../../../src/models/builder/index.js';
import { encodeModel } from '../../../src/onnx/codec.js';
import { Rng } from '../../../src/random.js';
import { openRuntime, type Runtime } from '../../../src/runtime/index.js';
import { castFloat, float32, int32, int64 } from '../../../src/tensor.js';
import { assertHealthy, runModel } from './helpers.js';
import { maxAbsDiff } from '../../assert-close.js';

const cfg = preset('tiny');
const V = cfg.text_encoder.vocab_size;
let runtime: Runtime;

before(async () => {
  runtime = await openRuntime({ ep: 'cpu' });
});
after(async () => {
  await runtime?.close();
});

/** Two prompts: BOS, n content ids, EOS, EOS padding. */
function promptIds(lengths: number[], seed = 1) {
  const rng = new Rng(seed);
  const ids = new Int32Array(lengths.length * 77);
  lengths.forEach((n, b) => {
    ids.fill(V - 1, b * 77, (b + 1) * 77);
    ids[b * 77] = V - 2;
    for (let i = 1; i <= n; i++) ids[b * 77 + i] = 1 + rng.int(V - 3);
  });
  return int32([lengths.length, 77], ids);
}

function unetFeeds(size: number, batch: number, t: number[] = [500], seed = 2) {
  const rng = new Rng(seed);
  return {
    sample: float32([batch, 4, size, size], rng.normalArray(batch * 4 * size * size)),
    timestep: int64([t.length], t),
    encoder_hidden_states: float32([batch, 77, 32], rng.normalArray(batch * 77 * 32)),
  };
}

test('text encoder: last_hidden_state [B,77,32], pooler_output at the EOS, causal attention', async () => {
  const te = buildComponent('text_encoder', cfg).model;
  const ids = promptIds([5, 9]);
  const out = await runModel(runtime, te, { input_ids: ids });
  assert.deepEqual(out.last_hidden_state!.dims, [2, 77, 32]);
  assert.deepEqual(out.pooler_output!.dims, [2, 32]);
  assertHealthy(out.last_hidden_state!, 'last_hidden_state');
  // Pooled = the hidden state at the first end-of-text token (position n + 1).
  [5, 9].forEach((n, b) => {
    const at = out.last_hidden_state!.data.subarray((b * 77 + n + 1) * 32, (b * 77 + n + 2) * 32);
    assert.deepEqual(out.pooler_output!.data.subarray(b * 32, (b + 1) * 32), at);
  });
  // Causal: changing token 7 leaves positions 0..6 as they were.
  const changed = int32([2, 77], ids.data.slice());
  changed.data[7] = ((changed.data[7]! + 17) % (V - 3)) + 1;
  const out2 = await runModel(runtime, te, { input_ids: changed });
  assert.ok(
    maxAbsDiff(out.last_hidden_state!.data.subarray(0, 7 * 32), out2.last_hidden_state!.data.subarray(0, 7 * 32)) === 0,
  );
  assert.ok(
    maxAbsDiff(
      out.last_hidden_state!.data.subarray(7 * 32, 8 * 32),
      out2.last_hidden_state!.data.subarray(7 * 32, 8 * 32),
    ) > 1e-3,
  );
});

test("UNet: out_sample has the sample's shape; timestep [1] broadcasts; the timestep matters", async () => {
  const unet = buildComponent('unet', cfg).model;
  const a = await runModel(runtime, unet, unetFeeds(16, 2, [500]));
  assert.deepEqual(a.out_sample!.dims, [2, 4, 16, 16]);
  assertHealthy(a.out_sample!, 'out_sample');
  const b = await runModel(runtime, unet, unetFeeds(16, 2, [500, 500]));
  assert.equal(maxAbsDiff(a.out_sample!.data, b.out_sample!.data), 0);
  const c = await runModel(runtime, unet, unetFeeds(16, 2, [20]));
  assert.ok(maxAbsDiff(a.out_sample!.data, c.out_sample!.data) > 1e-3);
});

test('VAE: 64×64 image → 8×8 latents (factor 8) → 64×64 image; latent_parameters holds the mean first', async () => {
  const rng = new Rng(3);
  const image = float32(
    [1, 3, 64, 64],
    Float32Array.from(rng.normalArray(3 * 64 * 64), (v) => Math.tanh(v)),
  );
  const enc = await runModel(runtime, buildComponent('vae_encoder', cfg).model, { sample: image });
  assert.deepEqual(enc.latent_sample!.dims, [1, 4, 8, 8]);
  assertHealthy(enc.latent_sample!, 'latent_sample');
  const params = await runModel(
    runtime,
    buildComponent('vae_encoder', cfg, { encoderOutput: 'latent_parameters' }).model,
    { sample: image },
  );
  assert.deepEqual(params.latent_parameters!.dims, [1, 8, 8, 8]);
  assert.deepEqual(params.latent_parameters!.data.subarray(0, 4 * 64), enc.latent_sample!.data);
  const dec = await runModel(runtime, buildComponent('vae_decoder', cfg).model, { latent_sample: enc.latent_sample! });
  assert.deepEqual(dec.sample!.dims, [1, 3, 64, 64]);
  assertHealthy(dec.sample!, 'decoded sample');
});

test('opsets 14 (LayerNorm op chain), 17 and 18 compute the same function', async () => {
  const ids = { input_ids: promptIds([4, 11]) };
  const feeds = unetFeeds(8, 1);
  const te17 = await runModel(runtime, buildComponent('text_encoder', cfg, { opset: 17 }).model, ids);
  const unet17 = await runModel(runtime, buildComponent('unet', cfg, { opset: 17 }).model, feeds);
  for (const opset of [14, 18]) {
    const teModel = buildComponent('text_encoder', cfg, { opset }).model;
    assert.equal(
      teModel.graph.nodes.some((n) => n.opType === 'LayerNormalization'),
      opset >= 17,
    );
    const te = await runModel(runtime, teModel, ids);
    assert.ok(
      maxAbsDiff(te.last_hidden_state!.data, te17.last_hidden_state!.data) < 1e-4,
      `text encoder opset ${opset}`,
    );
    const unet = await runModel(runtime, buildComponent('unet', cfg, { opset }).model, feeds);
    assert.ok(maxAbsDiff(unet.out_sample!.data, unet17.out_sample!.data) < 1e-4, `unet opset ${opset}`);
  }
});

test('float16 builds have float16 weights and IO and track the float32 build', async () => {
  const m16 = buildComponent('unet', cfg, { dtype: 'float16' }).model;
  assert.equal(m16.graph.inputs.find((i) => i.name === 'sample')!.type, 'float16');
  assert.equal(m16.graph.outputs[0]!.type, 'float16');
  assert.ok(m16.graph.initializers.filter((t) => t.name.endsWith('.weight')).every((t) => t.type === 'float16'));
  const f = unetFeeds(8, 1);
  const ref = await runModel(runtime, buildComponent('unet', cfg).model, f);
  const half = await runModel(runtime, m16, {
    ...f,
    sample: castFloat(f.sample, 'float16'),
    encoder_hidden_states: castFloat(f.encoder_hidden_states, 'float16'),
  });
  assert.ok(maxAbsDiff(half.out_sample!.data, ref.out_sample!.data) < 0.05, 'fp16 vs fp32');
});

test('the same seed gives the same bytes; another seed other weights', () => {
  const a = encodeModel(buildComponent('unet', cfg, { seed: 7 }).model);
  const b = encodeModel(buildComponent('unet', cfg, { seed: 7 }).model);
  const c = encodeModel(buildComponent('unet', cfg, { seed: 8 }).model);
  assert.deepEqual(a, b);
  assert.equal(a.length, c.length);
  assert.notDeepEqual(a, c);
});

test('nodes and weights are named as TorchScript exports name them', () => {
  const unet = buildComponent('unet', cfg).model.graph;
  const q = unet.nodes.find((n) => n.name === '/down_blocks.1/attentions.0/transformer_blocks.0/attn1/to_q/MatMul');
  assert.ok(q, 'to_q MatMul node');
  assert.deepEqual(q.inputs[1], 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight');
  assert.deepEqual(unet.initializers.find((t) => t.name === q.inputs[1])!.dims, [64, 64]);
  const k2 = unet.initializers.find(
    (t) => t.name === 'down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight',
  );
  assert.deepEqual(k2!.dims, [32, 64], 'cross-attention key: [cross_attention_dim, channels] (transposed)');
  assert.ok(unet.nodes.some((n) => n.name === '/up_blocks.0/attentions.0/transformer_blocks.0/attn2/to_out.0/MatMul'));
  assert.ok(unet.nodes.some((n) => n.name === '/down_blocks.0/resnets.0/norm1/InstanceNormalization'));
  assert.deepEqual(unet.initializers.find((t) => t.name === 'down_blocks.0.resnets.0.norm1.weight')!.dims, [32, 1, 1]);
});
