// A job that cannot fit the daemon's memory at its working size is refused at submit (E_TOO_LARGE naming the
// frame size, the working size and the limit), before anything is stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { VidpriorError } from '../../src/errors.js';
import { intake, type IntakeOptions } from '../../daemon/intake.js';
import { SD1_WORK_MODEL, type WorkModel } from '../../daemon/jobs/frames.js';
import { SD1_UNET_ATTENTION } from '../../src/pipelines/memory.js';
import { stylizeExecutor } from '../../daemon/jobs/img2img-jobs.js';
import type { ErrorMessage } from '../../protocol/messages.js';
import { rawClient, startTestDaemon, testPng } from './helpers.js';
import { scriptedExecutor } from './scripted-executor.js';

const MiB = 2 ** 20;

async function flatPng(width: number, height: number): Promise<Uint8Array> {
  return sharp({ create: { width, height, channels: 3, background: { r: 90, g: 120, b: 200 } } })
    .png()
    .toBuffer();
}

const options = (limit: number, work: WorkModel = SD1_WORK_MODEL): IntakeOptions => ({
  maxFrameBytes: 64 * MiB,
  maxFrames: 100,
  paths: null,
  origin: { via: 'socket' },
  pixels: { maxInputPixels: 100e6, maxWorkingPixels: 100e6 },
  memory: { work, limit },
});

test('a 1080p job over the limit is E_TOO_LARGE naming 1920×1080, its working size 896×512 and the limit', async () => {
  const png = await flatPng(1920, 1080);
  const req = { kind: 'stylize' as const, params: { prompt: 'x' }, frames: [{ png }] };
  await assert.rejects(intake(stylizeExecutor, req, options(256 * MiB)), (err: VidpriorError) => {
    assert.equal(err.code, 'E_TOO_LARGE');
    assert.match(err.message, /1920×1080/);
    assert.match(err.message, /896×512/);
    assert.match(err.message, /0\.25 GiB/);
    assert.equal(err.details?.limit, 256 * MiB);
    assert.equal(err.details?.field, 'params.work_size');
    return true;
  });
  // Under a limit it fits: accepted (at the default working size), with 4 GiB.
  const ok = await intake(stylizeExecutor, req, options(4096 * MiB));
  assert.equal(ok.width, 1920);
  // Asked to work at the frames' own size it does not fit 4 GiB (and says so, with the size and batch).
  await assert.rejects(
    intake(stylizeExecutor, { ...req, params: { prompt: 'x', work_size: 0, batch: 2 } }, options(4096 * MiB)),
    (err: VidpriorError) =>
      err.code === 'E_TOO_LARGE' && /1920×1088/.test(err.message) && /2 at a time/.test(err.message),
  );
});

test('with an SD 1.5 UNet loaded on the CPU its attention counts: 1080p needs about 17 GiB with guidance, half without', async () => {
  const sd15OnCpu: WorkModel = { ...SD1_WORK_MODEL, memory: { vaeFactor: 8, hostUnetAttention: SD1_UNET_ATTENTION } };
  const req = { kind: 'stylize' as const, params: { prompt: 'x' }, frames: [{ png: await flatPng(1920, 1080) }] };
  // 4 GiB is plenty for the VAE (the figure without a UNet in host memory), not for the UNet's attention.
  await intake(stylizeExecutor, req, options(4096 * MiB));
  await assert.rejects(intake(stylizeExecutor, req, options(12 * 1024 * MiB, sd15OnCpu)), (err: VidpriorError) => {
    assert.equal(err.code, 'E_TOO_LARGE');
    assert.match(err.message, /need about 16\.\d\d GiB/);
    return true;
  });
  assert.equal((await intake(stylizeExecutor, req, options(18 * 1024 * MiB, sd15OnCpu))).width, 1920);
  const unguided = { ...req, params: { prompt: 'x', guidance: 1 } };
  assert.equal((await intake(stylizeExecutor, unguided, options(12 * 1024 * MiB, sd15OnCpu))).width, 1920);
});

test('through the daemon: the refused job leaves no job folder; a small one is accepted', {
  timeout: 60_000,
}, async () => {
  const t = await startTestDaemon({
    executors: [scriptedExecutor(() => testPng(0, 8, 8))],
    limits: { maxJobBytes: 128 * MiB },
  });
  try {
    const c = await rawClient(t.url);
    c.send({ type: 'hello', id: 0, protocol: 1 });
    assert.equal((await c.next()).type, 'welcome');
    c.send({
      type: 'submit',
      id: 1,
      kind: 'stylize',
      params: { prompt: 'x' },
      frames: [{ png: await flatPng(1280, 720) }],
    });
    const e = (await c.next()) as ErrorMessage;
    assert.equal(e.code, 'E_TOO_LARGE', e.message);
    assert.match(e.message, /1280×720 worked on at 896×512/);
    assert.equal(readdirSync(join(t.dataDir, 'jobs')).length, 0);
    c.send({ type: 'submit', id: 2, kind: 'stylize', params: { prompt: 'x' }, frames: [{ png: await testPng(0) }] });
    assert.equal((await c.next()).type, 'accepted');
    c.ws.close();
  } finally {
    await t.close();
  }
});
