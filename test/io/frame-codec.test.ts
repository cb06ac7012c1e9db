// The one frame codec (src/io/frame-codec.ts) and the working-size plan (size.ts planWork): odd sizes and aspect
// ratios reach a multiple of the model's size at the working size and come back at their own size, from a path
// or from bytes alike.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeFrame, encodeFrame } from '../../src/io/frame-codec.js';
import { defaultWorkSize, planWork } from '../../src/io/size.js';

const SIZES: [number, number][] = [
  [1920, 1080],
  [1080, 1920],
  [1079, 1921],
  [333, 777],
  [4000, 100],
  [101, 99],
  [513, 512],
];

test('planWork resize: multiples of the model, short side near the working size, aspect kept', () => {
  for (const [w, h] of SIZES) {
    const plan = planWork(w, h, { multiple: 64, workSize: 512 });
    const { width: W, height: H } = plan.working;
    assert.equal(W % 64, 0, `${w}×${h}`);
    assert.equal(H % 64, 0, `${w}×${h}`);
    assert.deepEqual(plan.scaled, plan.working);
    assert.deepEqual(plan.original, { width: w, height: h });
    assert.ok(Math.abs(Math.min(W, H) - 512) <= 32, `${w}×${h} → ${W}×${H}`);
    // Each side within half a multiple of the exact scaled side (a side never below one multiple).
    const s = 512 / Math.min(w, h);
    assert.ok(Math.abs(W - Math.max(64, w * s)) <= 32 || W === 64, `${w}×${h} → ${W}×${H}`);
    assert.ok(Math.abs(H - Math.max(64, h * s)) <= 32 || H === 64, `${w}×${h} → ${W}×${H}`);
  }
  assert.deepEqual(planWork(1920, 1080, { multiple: 64, workSize: 512 }).working, { width: 896, height: 512 });
  assert.deepEqual(planWork(1280, 720, { multiple: 64, workSize: 512 }).working, { width: 896, height: 512 });
});

test('planWork pad: the short side is exactly the working size, padded up to the multiple, pads add up', () => {
  for (const [w, h] of SIZES) {
    const plan = planWork(w, h, { multiple: 64, workSize: 500, fit: 'pad' });
    assert.equal(Math.min(plan.scaled.width, plan.scaled.height), 500, `${w}×${h}`);
    assert.equal(plan.working.width % 64, 0);
    assert.equal(plan.working.height % 64, 0);
    assert.equal(plan.scaled.width + plan.pad.left + plan.pad.right, plan.working.width);
    assert.equal(plan.scaled.height + plan.pad.top + plan.pad.bottom, plan.working.height);
    assert.ok(plan.working.width - plan.scaled.width < 64 && plan.working.height - plan.scaled.height < 64);
  }
});

test('the default working size: the native size for larger frames, their own size (0) for smaller ones', () => {
  assert.equal(defaultWorkSize(1920, 1080, 512), 512);
  assert.equal(defaultWorkSize(512, 4000, 512), 0);
  assert.equal(defaultWorkSize(320, 240, 512), 0);
  // Without a working size the plan is planFit's: nothing scaled.
  assert.deepEqual(planWork(320, 240, { multiple: 64 }).working, { width: 320, height: 256 });
  assert.deepEqual(planWork(320, 240, { multiple: 64, workSize: 0 }).scaled, { width: 320, height: 256 });
  assert.throws(() => planWork(320, 240, { multiple: 64, workSize: -1 }), /work size/);
});

/** A smooth w×h image (low frequencies survive a down- and up-scale). */
async function smoothPng(w: number, h: number): Promise<Buffer> {
  const rgb = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      rgb[i] = Math.round((255 * x) / (w - 1));
      rgb[i + 1] = Math.round((255 * y) / (h - 1));
      rgb[i + 2] = Math.round(128 + 100 * Math.sin((x + y) / 40));
    }
  return sharp(rgb, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
}

test('decode → encode round trip on odd sizes, resize and pad: working size in, own size out, path = bytes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-codec-'));
  try {
    for (const [w, h, fit] of [
      [203, 117, 'resize'],
      [117, 203, 'pad'],
      [301, 99, 'pad'],
      [99, 301, 'resize'],
    ] as const) {
      const png = await smoothPng(w, h);
      const path = join(dir, `${w}x${h}.png`);
      writeFileSync(path, png);
      const plan = planWork(w, h, { multiple: 16, workSize: 64, fit });
      const fromPath = await decodeFrame(path, plan);
      const fromBytes = await decodeFrame(png, plan);
      assert.deepEqual(fromPath.dims, [3, plan.working.height, plan.working.width]);
      assert.deepEqual(fromBytes.data, fromPath.data, 'bytes and path decode alike');
      const out = await encodeFrame(fromPath, plan);
      const meta = await sharp(out).metadata();
      assert.deepEqual([meta.width, meta.height, meta.format], [w, h, 'png'], `${w}×${h} ${fit}`);
      // The content comes back (a smooth image through a 64-pixel working size, within a few levels on average).
      const a = await sharp(png).raw().toBuffer();
      const b = await sharp(out).raw().toBuffer();
      let sum = 0;
      for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
      assert.ok(sum / a.length < 6, `${w}×${h} ${fit}: mean difference ${(sum / a.length).toFixed(2)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without a plan change the codec is exact: a frame of a multiple decodes and encodes back to the same pixels', async () => {
  const png = await smoothPng(64, 48);
  const plan = planWork(64, 48, { multiple: 16 });
  const back = await encodeFrame(await decodeFrame(png, plan), plan);
  assert.deepEqual(await sharp(back).raw().toBuffer(), await sharp(png).raw().toBuffer());
});
