// Style LoRAs in daemon jobs (params.loras): by path from a local client inside the allowed folders, by name from
// the data dir's adapters/ folder; refused at submit when the path is outside, the name unknown or both given; a
// LoRA that fits no layer fails the job with E_ADAPTER; a finetune job records the LoRAs it trained on top of.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { JobStream } from '../../protocol/client.js';
import type { Frame } from '../../protocol/messages.js';
import { readSafetensors, writeSafetensors } from '../../src/training/safetensors.js';
import { kohyaTensors, randomLora } from '../models/lora/helpers.js';
import { startTestDaemon, tempDir, testPng, type TestDaemon } from './helpers.js';

let d: TestDaemon;
let dir: string;
before(async () => {
  dir = tempDir('lora-jobs');
  d = await startTestDaemon({ allowDirs: [dir] });
  const lora = kohyaTensors(
    randomLora(
      [
        {
          component: 'unet',
          module: 'mid_block.attentions.0.transformer_blocks.0.attn1.to_v',
          downDims: [4, 64],
          upDims: [64, 4],
          alpha: 4,
        },
        {
          component: 'text_encoder',
          module: 'text_model.encoder.layers.1.self_attn.q_proj',
          downDims: [4, 32],
          upDims: [32, 4],
          alpha: 4,
        },
      ],
      8,
    ),
  );
  await writeSafetensors(join(dir, 'style.safetensors'), lora);
  mkdirSync(join(d.dataDir, 'adapters'), { recursive: true });
  await writeSafetensors(join(d.dataDir, 'adapters', 'house-style.safetensors'), lora);
  const stray = new Map(lora);
  const t = { type: 'float32' as const, dims: [4, 64], data: new Float32Array(256) };
  stray.set('lora_unet_mid_block_attentions_7_proj_in.lora_down.weight', t);
  stray.set('lora_unet_mid_block_attentions_7_proj_in.lora_up.weight', { ...t, dims: [64, 4] });
  await writeSafetensors(join(dir, 'stray.safetensors'), stray);
});
after(async () => {
  await d.close();
  rmSync(dir, { recursive: true, force: true });
});

const params = { prompt: 'an ink drawing', steps: 4, strength: 0.5, seed: 3 };
const frames = async () => [{ name: 'f0.png', png: await testPng(2, 64, 64) }];
async function pixels(job: JobStream): Promise<Uint8Array> {
  const got: Frame[] = [];
  job.onFrame = (f) => got.push(f);
  await job.done;
  return got[0]!.png;
}

test('a stylize job with LoRAs by path and by name: each changes the frame', async () => {
  const c = await d.connect();
  const plain = await pixels(await c.submit({ kind: 'stylize', params, frames: await frames() }));
  const byPath = await pixels(
    await c.submit({
      kind: 'stylize',
      params: { ...params, loras: [{ path: join(dir, 'style.safetensors'), weight: 0.8 }] },
      frames: await frames(),
    }),
  );
  const byName = await pixels(
    await c.submit({
      kind: 'stylize',
      params: { ...params, loras: [{ name: 'house-style', weight: 0.8 }] },
      frames: await frames(),
    }),
  );
  assert.notDeepEqual(Buffer.from(byPath), Buffer.from(plain));
  assert.deepEqual(Buffer.from(byName), Buffer.from(byPath), 'the same file and weight give the same frame');
});

test('LoRAs outside the allowed folders, unknown names and ambiguous entries are refused at submit', async () => {
  const c = await d.connect();
  const refused = async (loras: unknown[], code: string, text: RegExp) => {
    await assert.rejects(
      c.submit({ kind: 'stylize', params: { ...params, loras } as typeof params, frames: await frames() }),
      (e: Error & { code?: string }) => e.code === code && text.test(e.message),
    );
  };
  await refused([{ path: '/etc/hostname' }], 'E_FORBIDDEN_PATH', /params\.loras\[0\]\.path .* outside the folders/);
  await refused([{ name: 'nope' }], 'E_NOT_FOUND', /no adapter "nope"/);
  await refused(
    [{ name: 'house-style', path: join(dir, 'style.safetensors') }],
    'E_BAD_REQUEST',
    /params\.loras\[0\] must have exactly one of "name" and "path"/,
  );
  await refused(
    [{ path: join(dir, 'missing.safetensors') }],
    'E_NOT_FOUND',
    /params\.loras\[0\]\.path .* is not a file/,
  );
});

test('a LoRA that fits no layer fails the job with E_ADAPTER naming the key', async () => {
  const c = await d.connect();
  const job = await c.submit({
    kind: 'stylize',
    params: { ...params, loras: [{ path: join(dir, 'stray.safetensors') }] },
    frames: await frames(),
  });
  await assert.rejects(
    job.done,
    (e: Error & { code?: string }) =>
      e.code === 'E_ADAPTER' && /lora_unet_mid_block_attentions_7_proj_in matches no layer/.test(e.message),
  );
});

test('a finetune job trains on top of the LoRAs and records them with the adapter', async () => {
  const c = await d.connect();
  const job = await c.submit({
    kind: 'finetune',
    params: {
      prompt: 'ink',
      iters: 2,
      train_frames: 1,
      checkpoint_every: 2,
      adapter_name: 'on-style',
      loras: [{ name: 'house-style' }],
    },
    frames: await frames(),
    edits: [{ frame: 0, png: await testPng(7, 64, 64) }],
  });
  await job.done;
  const record = JSON.parse(
    (await readSafetensors(join(d.dataDir, 'adapters', 'on-style.safetensors'))).metadata.vidprior!,
  );
  assert.equal(record.styleLoras.length, 1);
  assert.match(record.styleLoras[0].file, /house-style\.safetensors$/);
});
