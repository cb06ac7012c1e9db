import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import sharp from 'sharp';
import {
  listFrameFiles,
  naturalCompare,
  readFrame,
  writeFramePng,
  tensorToRgb8,
  imageSize,
} from '../../src/io/frames.js';
import { float32 } from '../../src/tensor.js';
import { VidpriorError } from '../../src/errors.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'vidprior-frames-'));
}
const unit = (v: number, max = 255) => Math.fround(Math.fround(Math.fround(v / max) * 2) - 1);
const isBadInput = (path: string) => (e: unknown) =>
  e instanceof VidpriorError && e.code === 'E_BAD_INPUT' && e.message.includes(path);

/** A w×h RGB image whose bytes are (x·7 + y·13 + c·50) mod 256, written with sharp. */
async function pattern(path: string, w: number, h: number, channels: 1 | 2 | 3 | 4 = 3): Promise<Uint8Array> {
  const data = new Uint8Array(w * h * channels);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < channels; c++) data[(y * w + x) * channels + c] = (x * 7 + y * 13 + c * 50) % 256;
  await sharp(data, { raw: { width: w, height: h, channels } })
    .png()
    .toFile(path);
  return data;
}

test('natural order: numbers compare as numbers, case does not matter', () => {
  const names = ['frame10.png', 'frame2.png', 'Frame1.PNG', 'frame02.png', 'frame1a.png', 'a.jpg', 'frame100.jpeg'];
  assert.deepEqual([...names].sort(naturalCompare), [
    'a.jpg',
    'Frame1.PNG',
    'frame1a.png',
    'frame2.png',
    'frame02.png',
    'frame10.png',
    'frame100.jpeg',
  ]);
});

test('a folder lists its PNG/JPEG frames in natural order; missing and empty folders are E_BAD_INPUT', async () => {
  const dir = tmp();
  try {
    for (const n of ['f10.png', 'f2.PNG', 'f1.jpg', 'notes.txt', 'f3.JPEG', '.hidden.png'])
      writeFileSync(join(dir, n), '');
    assert.deepEqual(
      (await listFrameFiles(dir)).map((f) => f.name),
      ['f1.jpg', 'f2.PNG', 'f3.JPEG', 'f10.png'],
    );
    mkdirSync(join(dir, 'empty'));
    await assert.rejects(listFrameFiles(join(dir, 'empty')), isBadInput(join(dir, 'empty')));
    await assert.rejects(listFrameFiles(join(dir, 'missing')), isBadInput(join(dir, 'missing')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an RGB PNG reads as [3, H, W] in [-1, 1] exactly as u8/255·2−1 in float32, and writes back losslessly', async () => {
  const dir = tmp();
  try {
    const src = join(dir, 'a.png');
    const bytes = await pattern(src, 5, 3);
    const t = await readFrame(src);
    assert.deepEqual(t.dims, [3, 3, 5]);
    for (const [p, c] of [
      [0, 0],
      [7, 1],
      [14, 2],
    ] as const) {
      assert.equal(t.data[c * 15 + p], unit(bytes[p * 3 + c]!));
    }
    const out = join(dir, 'b.png');
    await writeFramePng(out, t);
    const back = await sharp(out).raw().toBuffer();
    assert.deepEqual(new Uint8Array(back), bytes);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('grey, grey+alpha and RGBA frames become RGB (alpha dropped, or flattened when asked)', async () => {
  const dir = tmp();
  try {
    const grey = await pattern(join(dir, 'g.png'), 4, 2, 1);
    const g = await readFrame(join(dir, 'g.png'));
    assert.deepEqual(g.dims, [3, 2, 4]);
    assert.equal(g.data[0 * 8 + 5], g.data[2 * 8 + 5]);
    assert.equal(g.data[8 + 5], unit(grey[5]!));
    const rgba = await pattern(join(dir, 'rgba.png'), 4, 2, 4);
    const dropped = await readFrame(join(dir, 'rgba.png'));
    assert.equal(dropped.data[1 * 8 + 3], unit(rgba[3 * 4 + 1]!));
    const flat = await readFrame(join(dir, 'rgba.png'), { alpha: 'flatten', background: [0, 0, 0] });
    const a = rgba[3 * 4 + 3]! / 255;
    const expected = Math.round(rgba[3 * 4 + 1]! * a);
    assert.ok(Math.abs(((flat.data[1 * 8 + 3]! + 1) / 2) * 255 - expected) <= 1.01); // libvips rounds the blend its own way
    await pattern(join(dir, 'ga.png'), 4, 2, 2);
    assert.deepEqual((await readFrame(join(dir, 'ga.png'))).dims, [3, 2, 4]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('16-bit PNGs keep 16-bit precision', async () => {
  const dir = tmp();
  try {
    const data = Uint16Array.from({ length: 2 * 2 * 3 }, (_, i) => i * 5000 + 1);
    await sharp(data, { raw: { width: 2, height: 2, channels: 3 } })
      .toColourspace('rgb16')
      .png()
      .toFile(join(dir, 'h.png'));
    const t = await readFrame(join(dir, 'h.png'));
    assert.equal(t.data[4 + 1], unit(data[1 * 3 + 1]!, 65535));
    assert.equal(t.data[0], unit(1, 65535));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('JPEGs read (with EXIF orientation applied) and bad files are E_BAD_INPUT naming the file', async () => {
  const dir = tmp();
  try {
    const raw = new Uint8Array(6 * 4 * 3).fill(128);
    await sharp(raw, { raw: { width: 6, height: 4, channels: 3 } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toFile(join(dir, 'r.jpg'));
    assert.deepEqual(await imageSize(join(dir, 'r.jpg')), { width: 4, height: 6 });
    assert.deepEqual((await readFrame(join(dir, 'r.jpg'))).dims, [3, 6, 4]);
    const fake = join(dir, 'fake.png');
    writeFileSync(fake, 'this is not an image');
    await assert.rejects(readFrame(fake), isBadInput(fake));
    await pattern(join(dir, 'full.png'), 64, 64);
    const whole = readFileSync(join(dir, 'full.png'));
    const cut = join(dir, 'truncated.png');
    writeFileSync(cut, whole.subarray(0, Math.floor(whole.length / 2)));
    await assert.rejects(readFrame(cut), isBadInput(cut));
    await assert.rejects(readFrame(join(dir, 'none.png')), isBadInput(join(dir, 'none.png')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('float → bytes follows diffusers: clamp, ×255, round half to even', () => {
  const t = float32([3, 1, 2], [0, -1, 1, 2, -3, Number.NaN]);
  // 0 → 127.5 → 128 (even); −1 → 0; 1 → 255; 2 → clamp → 255; −3 → 0; NaN → 0
  assert.deepEqual([...tensorToRgb8(t).data], [128, 255, 0, 0, 255, 0]);
  assert.throws(
    () => tensorToRgb8(float32([4, 1, 1])),
    (e: unknown) => e instanceof VidpriorError && e.code === 'E_SHAPE',
  );
});
