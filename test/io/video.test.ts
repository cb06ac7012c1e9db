import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { probeVideo, decodeVideo, encodeVideo, DECODED_FRAME_PATTERN } from '../../src/io/video.js';
import { config, overrideConfig } from '../../src/config.js';
import { VidpriorError } from '../../src/errors.js';

const hasFfmpeg = spawnSync(config().ffmpeg, ['-version'], { stdio: 'ignore' }).status === 0;
const skip = hasFfmpeg ? false : 'ffmpeg is not installed';

/** A 5-frame 32×24 test video at 10 fps. */
function makeVideo(path: string, extra: string[] = []): void {
  const r = spawnSync(
    config().ffmpeg,
    [
      '-v',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=32x24:rate=10:duration=0.5',
      '-pix_fmt',
      'yuv420p',
      ...extra,
      path,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
}

test('probe, decode and encode a small video', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-video-'));
  try {
    const src = join(dir, 'in.mp4');
    makeVideo(src, ['-c:v', 'libx264']);
    const info = await probeVideo(src);
    assert.deepEqual([info.width, info.height, info.fps, info.frameCount, info.codec], [32, 24, 10, 5, 'h264']);
    assert.equal(info.fpsRational, '10/1');
    assert.ok(Math.abs(info.duration - 0.5) < 0.05);
    const frames = join(dir, 'frames');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(frames);
    let progress = 0;
    const list = await decodeVideo(src, frames, (n) => {
      progress = n;
    });
    assert.deepEqual(
      list.map((f) => f.name),
      ['frame_000001.png', 'frame_000002.png', 'frame_000003.png', 'frame_000004.png', 'frame_000005.png'],
    );
    assert.equal(progress, 5);
    for (const ext of ['.mov', '.webm']) {
      const out = join(dir, `out${ext}`);
      await encodeVideo(frames, DECODED_FRAME_PATTERN, out, { fps: info.fpsRational, crf: 30 });
      const back = await probeVideo(out);
      assert.deepEqual([back.width, back.height, back.frameCount, back.fps], [32, 24, 5, 10], ext);
    }
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.includes('partial')),
      [],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a WebM without a stored frame count is counted; odd frame sizes are padded to even', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-video-'));
  try {
    const src = join(dir, 'in.webm');
    makeVideo(src, ['-c:v', 'libvpx-vp9', '-b:v', '0', '-crf', '40']);
    assert.equal((await probeVideo(src)).frameCount, 5);
    const r = spawnSync(config().ffmpeg, [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=31x21:rate=5:duration=0.4',
      join(dir, 'odd_%06d.png'),
    ]);
    assert.equal(r.status, 0);
    await encodeVideo(dir, 'odd_%06d.png', join(dir, 'odd.mp4'), { fps: 5 });
    const info = await probeVideo(join(dir, 'odd.mp4'));
    assert.deepEqual([info.width, info.height, info.frameCount], [32, 22, 2]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('unreadable videos are E_BAD_INPUT naming the file; a missing ffmpeg is E_FFMPEG', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-video-'));
  try {
    const junk = join(dir, 'junk.mp4');
    writeFileSync(junk, 'not a video at all');
    await assert.rejects(
      probeVideo(junk),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_BAD_INPUT' && e.message.includes(junk),
    );
    await assert.rejects(
      decodeVideo(junk, dir),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_BAD_INPUT' && e.message.includes(junk),
    );
    await assert.rejects(
      encodeVideo(dir, 'none_%06d.png', join(dir, 'x.avi'), { fps: 5 }),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_FFMPEG',
    );
    assert.ok(!existsSync(join(dir, 'x.avi')));
    await assert.rejects(
      encodeVideo(dir, 'none_%06d.png', join(dir, 'x.gif'), { fps: 5 }),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_BAD_REQUEST' && /\.gif/.test(e.message),
    );
    const saved = config();
    overrideConfig({ ffmpeg: join(dir, 'no-ffmpeg'), ffprobe: join(dir, 'no-ffprobe') });
    try {
      await assert.rejects(
        probeVideo(junk),
        (e: unknown) =>
          e instanceof VidpriorError &&
          e.code === 'E_FFMPEG' &&
          /ffprobe not found/.test(e.message) &&
          /VIDPRIOR_FFPROBE/.test(e.message),
      );
      await assert.rejects(
        decodeVideo(junk, dir),
        (e: unknown) => e instanceof VidpriorError && e.code === 'E_FFMPEG' && /ffmpeg not found/.test(e.message),
      );
    } finally {
      overrideConfig({ ffmpeg: saved.ffmpeg, ffprobe: saved.ffprobe });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
