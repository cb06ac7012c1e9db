/**
 * The daemon's model host keeps ONE UNet session resident (plain or with an adapter merged in) and none while
 * training, so an SD 1.5 UNet is never held twice on the device.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { identifyModel } from '../../../src/models/resolve/resolve.js';
import { ModelHost } from '../../../daemon/jobs/model-host.js';
import { loadModel } from '../../../src/onnx/external-data.js';
import { createModelFolder } from '../../../src/models/builder/folder.js';
import { saveAdapter } from '../../../src/training/adapter.js';
import { findLoraTargets, loraShapes } from '../../../src/training/lora.js';

test('one resident UNet: switching adapters releases the previous session; releaseUnet frees it for training', {
  timeout: 120_000,
}, async (ctx) => {
  const work = mkdtempSync(join(tmpdir(), 'host-'));
  ctx.after(() => rmSync(work, { recursive: true, force: true }));
  const modelDir = join(work, 'model');
  await createModelFolder(modelDir, 'tiny', { seed: 0 });
  const adaptersDir = join(work, 'adapters');
  mkdirSync(adaptersDir);
  const unetModel = await loadModel(join(modelDir, 'unet', 'model.onnx'));
  const t = findLoraTargets(unetModel)[0]!;
  const { aDims, bDims } = loraShapes(t, 2);
  await saveAdapter(join(adaptersDir, 'shot.safetensors'), {
    rank: 2,
    alpha: 2,
    record: {},
    weights: new Map([
      [
        t.module,
        {
          kind: 'linear',
          a: new Float32Array(aDims[0]! * aDims[1]!).fill(0.1),
          b: new Float32Array(bDims[0]! * bDims[1]!).fill(0.1),
          aDims,
          bDims,
        },
      ],
    ]),
  });
  const host = new ModelHost({
    model: identifyModel(modelDir),
    embeddedDefault: async () => modelDir,
    ep: 'cpu',
    adaptersDir,
  });
  try {
    // Before the model loads, submit knows neither its UNet nor the provider; once loaded on the CPU, the
    // UNet's attention (tiny: 4 heads over latents halved per side) counts in the memory estimate.
    assert.equal(host.workModel.memory.hostUnetAttention, null);
    const plain = await host.unet();
    assert.deepEqual(host.workModel.memory, { vaeFactor: 8, hostUnetAttention: { heads: 4, downsample: 2 } });
    assert.equal(await host.unet(), plain, 'the same plain session while nothing else was asked for');
    const adapted = await host.unet('shot');
    assert.notEqual(adapted, plain);
    await assert.rejects(plain.run({}), /the session was released/);
    assert.equal(await host.unet('shot'), adapted);
    await host.releaseUnet();
    await assert.rejects(adapted.run({}), /the session was released/);
    const again = await host.unet();
    assert.notEqual(again, plain, 'the plain UNet is loaded again after training');
    await assert.rejects(host.unet('missing'), /no adapter "missing"/);
  } finally {
    await host.close();
  }
});
