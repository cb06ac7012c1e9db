import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { openSequence } from '../../src/metrics/frames.js';
import { VidpriorError } from '../../src/errors.js';

/** A 16×8 PNG whose pixels all have red = value (so frames are told apart after reading). */
async function png(value: number): Promise<Buffer> {
  const raw = Buffer.alloc(16 * 8 * 3);
  for (let i = 0; i < 16 * 8; i++) raw.set([value, 128, 255 - value], 3 * i);
  return sharp(raw, { raw: { width: 16, height: 8, channels: 3 } })
    .png()
    .toBuffer();
}

test('a folder of images is read (through src/io) in natural order as planar RGB in [0, 1]', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-frames-'));
  try {
    writeFileSync(join(dir, 'f10.png'), await png(200));
    writeFileSync(join(dir, 'f2.png'), await png(100));
    writeFileSync(join(dir, 'f1.png'), await png(0));
    writeFileSync(join(dir, 'notes.txt'), 'not a frame');
    const seq = await openSequence(dir);
    assert.deepEqual([seq.count, seq.width, seq.height], [3, 16, 8]);
    const reds = [];
    for (let i = 0; i < 3; i++) reds.push(Math.round((await seq.read(i)).data[0] * 255));
    assert.deepEqual(reds, [0, 100, 200]);
    const f = await seq.read(1);
    assert.ok(Math.abs(f.data[16 * 8] - 128 / 255) < 1e-6); // green plane follows the red one
    await seq.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('missing paths, empty folders and unreadable files are E_BAD_INPUT naming the path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-frames-'));
  try {
    mkdirSync(join(dir, 'empty'));
    writeFileSync(join(dir, 'junk.mp4'), 'not a video');
    for (const p of [join(dir, 'nope'), join(dir, 'empty'), join(dir, 'junk.mp4')]) {
      await assert.rejects(
        openSequence(p),
        (e: unknown) =>
          e instanceof VidpriorError && (e.code === 'E_BAD_INPUT' || e.code === 'E_FFMPEG') && e.message.includes(p),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a video file is decoded through ffmpeg (src/io)', async (t) => {
  if (spawnSync('ffmpeg', ['-version']).status !== 0) {
    t.skip('ffmpeg is not installed');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-frames-'));
  try {
    for (let i = 0; i < 4; i++) writeFileSync(join(dir, `${i}.png`), await png(40 + 50 * i));
    const video = join(dir, 'clip.mkv');
    const r = spawnSync('ffmpeg', [
      '-v',
      'error',
      '-y',
      '-framerate',
      '10',
      '-i',
      join(dir, '%d.png'),
      '-c:v',
      'ffv1',
      '-pix_fmt',
      'bgr0',
      video,
    ]);
    assert.equal(r.status, 0, r.stderr?.toString());
    const seq = await openSequence(video);
    assert.deepEqual([seq.count, seq.width, seq.height], [4, 16, 8]);
    for (let i = 0; i < 4; i++) assert.equal(Math.round((await seq.read(i)).data[0] * 255), 40 + 50 * i);
    await seq.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
