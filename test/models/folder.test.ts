// The UNet's largest self-attention as read from a diffusers unet/config.json (src/models/folder.ts), which the
// memory estimate uses: the block with the most scores per head × heads, the mid block included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelWeightBytes, unetAttentionOf } from '../../src/models/folder.js';
import { preset } from '../../src/models/builder/index.js';

const asConfig = (o: object) => o as unknown as Record<string, unknown>;

test("the builder's presets: SD 1.5 attends with 8 heads over the full latent, tiny with 4 over half", () => {
  assert.deepEqual(unetAttentionOf(asConfig(preset('sd15').unet)), { heads: 8, downsample: 1 });
  assert.deepEqual(unetAttentionOf(asConfig(preset('tiny').unet)), { heads: 4, downsample: 2 });
});

test('per-block heads (SD 2.x), num_attention_heads over attention_head_dim, a deeper level winning', () => {
  const sd2 = {
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    attention_head_dim: [5, 10, 20, 20],
  };
  assert.deepEqual(unetAttentionOf(sd2), { heads: 5, downsample: 1 });
  assert.deepEqual(unetAttentionOf({ ...sd2, num_attention_heads: 2 }), { heads: 2, downsample: 1 });
  // 1 head at full size (1 score unit) against 32 heads at half size (32 / 16 = 2 units): the second wins.
  assert.deepEqual(unetAttentionOf({ ...sd2, attention_head_dim: [1, 32, 32, 32] }), { heads: 32, downsample: 2 });
  // No attention block but the mid block: it works at the last level.
  const plain = { down_block_types: ['DownBlock2D', 'DownBlock2D', 'DownBlock2D'], attention_head_dim: 8 };
  assert.deepEqual(unetAttentionOf(plain), { heads: 8, downsample: 4 });
  assert.equal(unetAttentionOf({ ...plain, mid_block_type: null }), null);
});

test('a config that does not say gives null (the estimate then assumes SD 1.x)', () => {
  assert.equal(unetAttentionOf({}), null);
  assert.equal(unetAttentionOf({ down_block_types: 'CrossAttnDownBlock2D', attention_head_dim: 8 }), null);
  assert.equal(unetAttentionOf({ down_block_types: ['CrossAttnDownBlock2D'] }), null);
  assert.equal(unetAttentionOf({ down_block_types: ['CrossAttnDownBlock2D'], attention_head_dim: [0] }), null);
  assert.equal(unetAttentionOf({ down_block_types: ['CrossAttnDownBlock2D'], attention_head_dim: 'eight' }), null);
});

test("the model's weight bytes are its component folders' files; a label that is no folder has none", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-weight-bytes-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'unet'));
  writeFileSync(join(dir, 'unet', 'model.onnx'), Buffer.alloc(1000));
  writeFileSync(join(dir, 'unet', 'weights.pb'), Buffer.alloc(24));
  mkdirSync(join(dir, 'vae_decoder'));
  writeFileSync(join(dir, 'vae_decoder', 'model.onnx'), Buffer.alloc(100));
  mkdirSync(join(dir, 'tokenizer'));
  writeFileSync(join(dir, 'tokenizer', 'vocab.json'), Buffer.alloc(5000));
  assert.equal(await modelWeightBytes(dir), 1124);
  assert.equal(await modelWeightBytes('in-memory model'), 0);
});
