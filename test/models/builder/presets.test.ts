/**
 * Builder configs and parameter counts. The counts are the architecture's fingerprint: tiny-sd-torch must give
 * exactly the shared diffusers export's numbers and sd15 SD 1.5's (UNet 859,520,964), counted from a
 * shapes-only build (no weights allocated).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VidpriorError } from '../../../src/errors.js';
import {
  buildComponent,
  countParameters,
  mergeConfig,
  preset,
  validateConfig,
  vaeScaleFactor,
} from '../../../src/models/builder/index.js';
import { resolveConfig } from '../../../src/models/builder/folder.js';

test("tiny-sd-torch has the shared export's parameter count per component", () => {
  // Counted from ../shared/fixtures/tiny-sd-torch (initializers plus the exporter's deduplicated aliases);
  // fixture.test.ts recounts them from the files when they are present.
  assert.deepEqual(countParameters(preset('tiny-sd-torch')), {
    text_encoder: 1_597_162,
    unet: 1_427_012,
    vae_encoder: 256_304,
    vae_decoder: 402_071,
  });
});

test("sd15 has Stable Diffusion 1.5's parameter counts, built without allocating weights", () => {
  const cfg = preset('sd15');
  const unet = buildComponent('unet', cfg, { weights: 'none' });
  assert.ok(
    unet.model.graph.initializers.filter((t) => unet.params.has(t.name)).every((t) => t.data === undefined),
    'shapes only',
  );
  assert.deepEqual(countParameters(cfg), {
    text_encoder: 123_060_480, // CLIP ViT-L/14 text tower
    unet: 859_520_964,
    vae_encoder: 34_163_664, // encoder + quant_conv
    vae_decoder: 49_490_199, // post_quant_conv + decoder
  });
  assert.equal(vaeScaleFactor(cfg.vae), 8);
});

test("tiny keeps SD's VAE factor 8 and 4 latent channels at toy widths", () => {
  const cfg = preset('tiny');
  assert.equal(vaeScaleFactor(cfg.vae), 8);
  assert.equal(cfg.vae.latent_channels, 4);
  const n = countParameters(cfg);
  assert.ok(n.unet < 2_000_000 && n.text_encoder < 100_000, JSON.stringify(n));
});

test('bad configs fail with E_BAD_REQUEST naming the key', () => {
  const cases: [unknown, RegExp][] = [
    [{ unet: { cross_attention_dim: 64 } }, /unet\.cross_attention_dim.*hidden_size 32/],
    [{ unet: { block_out_channels: [32, 48] } }, /unet\.block_out_channels\[1\].*multiple of norm_num_groups/],
    [{ unet: { attention_head_dim: 5 } }, /attention_head_dim\[1\].*divisor/],
    [{ text_encoder: { vocab_size: 100 } }, /vocab_size.*at least 514/],
    [{ text_encoder: { hidden_act: 'relu' } }, /hidden_act/],
    [{ vae: { latent_channels: 8 } }, /unet\.in_channels.*latent_channels 8/],
    [{ unet: { down_block_types: ['DownBlock2D'] } }, /down_block_types/],
    [{ nonsense: {} }, /nonsense/],
    [{ base: 'sd99' }, /unknown model preset "sd99"/],
  ];
  for (const [cfg, message] of cases) {
    assert.throws(
      () => resolveConfig(cfg as never),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_BAD_REQUEST' && message.test(e.message),
      JSON.stringify(cfg),
    );
  }
});

test('partial configs take the rest from their base, block types follow the channel list', () => {
  const cfg = resolveConfig({
    base: 'tiny',
    unet: { block_out_channels: [32, 64, 64] },
    vae: { block_out_channels: [8, 16] },
  });
  assert.deepEqual(cfg.unet.down_block_types, ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D']);
  assert.deepEqual(cfg.unet.up_block_types, ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D']);
  assert.equal(vaeScaleFactor(cfg.vae), 2);
  assert.equal(cfg.text_encoder.hidden_size, 32);
  // A full config is itself.
  const sd15 = preset('sd15');
  assert.deepEqual(validateConfig(mergeConfig(preset('tiny'), sd15)), sd15);
});
