import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync, readdirSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { openFrameSource, openFrameSink, outputFrameName } from '../../src/io/inputs.js';
import { probeVideo } from '../../src/io/video.js';
import { imageSize } from '../../src/io/frames.js';
import { config } from '../../src/config.js';
import { VidpriorError } from '../../src/errors.js';

const hasFfmpeg = spawnSync(config().ffmpeg, ['-version'], { stdio: 'ignore' }).status === 0;

async function png(path: string, w: number, h: number, seed: number): Promise<void> {
  const data = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 31 + seed * 17) % 256);
  await sharp(data, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(path);
}

test('a folder source reads frames in natural order; a folder sink writes PNGs named like them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-inputs-'));
  try {
    const input = join(dir, 'in');
    mkdirSync(input);
    await png(join(input, 'shot10.png'), 6, 4, 10);
    await png(join(input, 'shot2.png'), 6, 4, 2);
    await sharp(join(input, 'shot2.png')).jpeg({ quality: 100 }).toFile(join(input, 'shot3.jpg'));
    const src = await openFrameSource(input);
    assert.equal(src.kind, 'folder');
    assert.deepEqual(
      src.frames.map((f) => f.name),
      ['shot2.png', 'shot3.jpg', 'shot10.png'],
    );
    assert.deepEqual([src.width, src.height, src.fps, src.plan], [6, 4, undefined, null]);
    const sink = await openFrameSink(join(dir, 'out'), src);
    for (let i = 0; i < src.frames.length; i++) await sink.write(i, await src.read(i));
    await sink.finish();
    assert.deepEqual(readdirSync(join(dir, 'out')).sort(), ['shot10.png', 'shot2.png', 'shot3.png']);
    const a = await sharp(join(input, 'shot10.png')).raw().toBuffer();
    const b = await sharp(join(dir, 'out', 'shot10.png'))
      .raw()
      .toBuffer();
    assert.deepEqual(a, b);
    assert.equal(outputFrameName('x.final.JPEG'), 'x.final.png');
    await assert.rejects(
      openFrameSink(input, src),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_BAD_REQUEST',
    );
    await assert.rejects(
      openFrameSink(join(dir, 'one.png'), src),
      (e: unknown) => e instanceof VidpriorError && /3 frames/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sizes that are not a multiple are resized or padded for the model and restored on output', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-inputs-'));
  try {
    const input = join(dir, 'in');
    mkdirSync(input);
    await png(join(input, 'a.png'), 21, 10, 1);
    for (const fit of ['resize', 'pad'] as const) {
      const src = await openFrameSource(input, { multiple: 8, fit });
      const frame = await src.read(0);
      assert.deepEqual(frame.dims, fit === 'resize' ? [3, 8, 24] : [3, 16, 24], fit);
      const out = join(dir, `out-${fit}`);
      const sink = await openFrameSink(out, src);
      await sink.write(0, frame);
      assert.deepEqual(await imageSize(join(out, 'a.png')), { width: 21, height: 10 }, fit);
      if (fit === 'pad') {
        const a = await sharp(join(input, 'a.png')).raw().toBuffer();
        const b = await sharp(join(out, 'a.png')).raw().toBuffer();
        assert.deepEqual(a, b);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a frame of another size, a missing input and an empty folder are E_BAD_INPUT naming the path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-inputs-'));
  try {
    await png(join(dir, 'f1.png'), 8, 8, 1);
    await png(join(dir, 'f2.png'), 9, 8, 2);
    const src = await openFrameSource(dir);
    await assert.rejects(
      src.read(1),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_BAD_INPUT' && e.message.includes('f2.png'),
    );
    await assert.rejects(
      openFrameSource(join(dir, 'nope')),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_BAD_INPUT' && e.message.includes('nope'),
    );
    mkdirSync(join(dir, 'empty'));
    await assert.rejects(
      openFrameSource(join(dir, 'empty')),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_BAD_INPUT' && e.message.includes('empty'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a video source decodes to frames; a video sink encodes at the source frame rate with its sound, and cleans up', {
  skip: hasFfmpeg ? false : 'ffmpeg is not installed',
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-inputs-'));
  try {
    const video = join(dir, 'clip.mkv');
    const r = spawnSync(config().ffmpeg, [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=40x24:rate=12:duration=0.25',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440:duration=0.25',
      '-c:v',
      'libx264',
      '-pix_fmt',
      'yuv420p',
      '-c:a',
      'aac',
      video,
    ]);
    assert.equal(r.status, 0);
    const src = await openFrameSource(video, { multiple: 16, fit: 'pad' });
    assert.equal(src.kind, 'video');
    assert.deepEqual([src.width, src.height, src.fps, src.frames.length], [40, 24, 12, 3]);
    assert.equal(src.frames[0]!.name, 'frame_000001.png');
    const decodedDir = join(src.frames[0]!.path, '..');
    const out = join(dir, 'out', 'styled.mp4');
    const sink = await openFrameSink(out, src);
    await assert.rejects(sink.finish(), (e: unknown) => e instanceof VidpriorError && /never written/.test(e.message));
    for (let i = src.frames.length - 1; i >= 0; i--) await sink.write(i, await src.read(i));
    await sink.finish();
    const info = await probeVideo(out);
    assert.deepEqual([info.width, info.height, info.fps, info.frameCount], [40, 24, 12, 3]);
    const streams = spawnSync(
      config().ffprobe,
      ['-v', 'error', '-show_entries', 'stream=codec_type', '-of', 'csv=p=0', out],
      { encoding: 'utf8' },
    );
    assert.deepEqual(streams.stdout.trim().split('\n').sort(), ['audio', 'video'], 'the sound of the source is kept');
    await src.cleanup();
    assert.ok(!existsSync(decodedDir));
    // a folder output of a video source gets frame_000001.png …
    const again = await openFrameSource(video);
    const folder = await openFrameSink(join(dir, 'frames-out'), again);
    await folder.write(2, await again.read(2));
    assert.deepEqual(readdirSync(join(dir, 'frames-out')), ['frame_000003.png']);
    await again.cleanup();
    await assert.rejects(openFrameSink(join(dir, 'x.gif'), again), (e: unknown) => e instanceof VidpriorError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
