/**
 * The loader on builder-made folders in the variants real exports come in: opsets 14 (LayerNorm chain) to 20,
 * float16 weights and inputs, `latent_parameters` encoders, weights as external data. The facts must come out
 * of the models themselves (VAE factor 8 and text width 32 here, not SD 1.5's 768).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type TinySetup, tinySetup } from '../pipelines/tiny-model.js';

let setup: TinySetup;
before(async () => {
  setup = await tinySetup();
});
after(async () => {
  await setup?.close();
});

const variants = [
  { name: 'opset14-fp32', options: { opset: 14 }, unetType: 'float32', encoderOutput: 'latent_sample' },
  {
    name: 'opset20-fp16',
    options: { opset: 20, dtype: 'float16' as const },
    unetType: 'float16',
    encoderOutput: 'latent_sample',
  },
  {
    name: 'params-external',
    options: { encoderOutput: 'latent_parameters' as const, externalData: true },
    unetType: 'float32',
    encoderOutput: 'latent_parameters',
  },
];

for (const v of variants) {
  test(`loader derives the facts of a ${v.name} folder`, async () => {
    const m = await setup.model(v.name, v.options);
    assert.equal(m.facts.vaeScaleFactor, 8);
    assert.equal(m.facts.latentChannels, 4);
    assert.equal(m.facts.textWidth, 32);
    assert.equal(m.facts.unetType, v.unetType);
    assert.equal(m.facts.vaeDecoderType, v.unetType);
    assert.equal(m.facts.encoderOutput, v.encoderOutput);
    assert.equal(m.facts.opsets.unet, v.options.opset ?? 17);
    assert.equal(m.facts.scalingFactorSource, join(setup.folder(v.name), 'vae_decoder', 'config.json'));
    // The tiny preset attends from its second block on: 4 heads over latents halved per side (unet/config.json).
    assert.deepEqual(m.facts.unetAttention, { heads: 4, downsample: 2 });
    if ('externalData' in v.options) assert.ok(existsSync(join(setup.folder(v.name), 'unet', 'model.onnx.data')));
  });
}
