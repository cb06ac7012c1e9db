import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import sharp from 'sharp';
import { VidpriorError } from '../../src/errors.js';
import { checkPixels, defaultPixelLimits, readImageHeader } from '../../src/io/image-header.js';
import { readFrame } from '../../src/io/frames.js';
import { bombPng } from './bomb-png.js';

const GiB = 1024 ** 3;

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof VidpriorError) return e.code;
    throw e;
  }
  return 'none';
}

test('PNG and JPEG sizes are read from the header as sharp reads them', async () => {
  const rgb = Buffer.alloc(37 * 21 * 3, 90);
  const raw = { raw: { width: 37, height: 21, channels: 3 as const } };
  const cases: [Buffer, string, number, number][] = [
    [await sharp(rgb, raw).png().toBuffer(), 'png', 3, 8],
    [await sharp(rgb, raw).png({ palette: true }).toBuffer(), 'png', 1, 8],
    [await sharp(rgb, raw).toColourspace('b-w').png().toBuffer(), 'png', 1, 8],
    [await sharp(rgb, raw).ensureAlpha().png().toBuffer(), 'png', 4, 8],
    [await sharp(rgb, raw).toColourspace('rgb16').png().toBuffer(), 'png', 3, 16],
    [await sharp(rgb, raw).jpeg().toBuffer(), 'jpeg', 3, 8],
    [await sharp(rgb, raw).jpeg({ progressive: true }).toBuffer(), 'jpeg', 3, 8],
    [await sharp(rgb, raw).toColourspace('b-w').jpeg().toBuffer(), 'jpeg', 1, 8],
  ];
  for (const [bytes, format, channels, bitDepth] of cases) {
    const h = readImageHeader(bytes, 'f');
    const meta = await sharp(bytes).metadata();
    assert.deepEqual(
      [h.format, h.width, h.height, h.channels, h.bitDepth],
      [format, meta.width, meta.height, channels, bitDepth],
    );
  }
});

test('headers that are not images, truncated or inconsistent are E_BAD_INPUT naming the field', async () => {
  const png = await sharp(Buffer.alloc(12), { raw: { width: 2, height: 2, channels: 3 } })
    .png()
    .toBuffer();
  const jpeg = await sharp(Buffer.alloc(12), { raw: { width: 2, height: 2, channels: 3 } })
    .jpeg()
    .toBuffer();
  for (const bytes of [
    Buffer.from('GIF89a'),
    Buffer.alloc(0),
    png.subarray(0, 20),
    jpeg.subarray(0, 4),
    Buffer.concat([jpeg.subarray(0, 2), Buffer.from([0xff, 0xda, 0x00, 0x02])]),
  ]) {
    let err: VidpriorError | undefined;
    try {
      readImageHeader(bytes, 'frames[3]');
    } catch (e) {
      err = e as VidpriorError;
    }
    assert.equal(err?.code, 'E_BAD_INPUT', bytes.toString('hex'));
    assert.match(err!.message, /^frames\[3\] is not/);
  }
  const zeroHeight = Buffer.from(png);
  zeroHeight.writeUInt32BE(0, 20);
  assert.equal(
    codeOf(() => readImageHeader(zeroHeight, 'f')),
    'E_BAD_INPUT',
  );
});

test('the bombs: a 207-byte 1024² PNG and a few-KB 16000² PNG are refused from their header with the default caps of 24 GiB', () => {
  const limits = defaultPixelLimits(24 * GiB);
  const tiny = bombPng(1024, 1024);
  const huge = bombPng(16000, 16000);
  assert.ok(tiny.length <= 210, `${tiny.length} bytes`);
  assert.ok(huge.length < 40_000, `${huge.length} bytes`);
  assert.deepEqual(readImageHeader(tiny, 'f'), { format: 'png', width: 1024, height: 1024, channels: 1, bitDepth: 1 });
  assert.throws(
    () => checkPixels(readImageHeader(tiny, 'frames[0]'), 'frames[0]', limits),
    (e: VidpriorError) => e.code === 'E_TOO_LARGE' && /model can work on/.test(e.message),
  );
  assert.throws(
    () => checkPixels(readImageHeader(huge, 'frames[0]'), 'frames[0]', limits),
    (e: VidpriorError) => e.code === 'E_TOO_LARGE' && /more than this daemon decodes/.test(e.message),
  );
  // A frame downscaled to a working size the model can hold is fine (the working-resolution setting).
  checkPixels({ width: 1024, height: 1024 }, 'f', limits, { width: 512, height: 512 });
  // A JPEG header claiming 65535² is refused the same way.
  const sof = Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0x00, 0x11, 0x08, 0xff, 0xff, 0xff, 0xff, 0x03]);
  assert.equal(
    codeOf(() => checkPixels(readImageHeader(sof, 'f'), 'f', limits)),
    'E_TOO_LARGE',
  );
});

test('default caps follow the memory: SD-sized frames pass on small machines, 1024² only on large ones', () => {
  for (const [gib, ok, refused] of [
    [4, [512, 512], [768, 768]],
    [8, [640, 640], [1024, 576]],
    [24, [896, 896], [1024, 1024]],
    [128, [1280, 1280], [2048, 2048]],
  ] as const) {
    const limits = defaultPixelLimits(gib * GiB);
    const size = (s: readonly [number, number]) => ({ width: s[0], height: s[1] });
    checkPixels(size(ok), 'f', limits);
    assert.equal(
      codeOf(() => checkPixels(size(refused), 'f', limits)),
      'E_TOO_LARGE',
      `${gib} GiB, ${refused}`,
    );
  }
  assert.ok(defaultPixelLimits(1024 * GiB).maxInputPixels <= 16383 * 16383, "never above sharp's own limit");
});

test('readFrame with maxPixels refuses a bomb on disk before decoding it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-header-'));
  try {
    const path = join(dir, 'bomb.png');
    writeFileSync(path, bombPng(16000, 16000));
    const before = process.memoryUsage.rss();
    await assert.rejects(
      readFrame(path, { maxPixels: 64 * 64 }),
      (e: VidpriorError) => e.code === 'E_BAD_INPUT' && /pixel limit/i.test(e.message),
    );
    assert.ok(process.memoryUsage.rss() - before < 100 * 1024 * 1024, 'nothing was decoded');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
