// `vidprior submit` against a daemon in this process: every option described in --help; --seed outside the
// protocol's range refused before connecting; a video in gives a video out (the input's rate, or --fps);
// a strip larger than the daemon's message limit goes as chunked uploads.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { startTestDaemon, tempDir, type TestDaemon } from '../../daemon/helpers.js';
import { jsonLines, runCli } from '../run-cli.js';

const LIMIT = 64 * 1024;
let d: TestDaemon;
let work: string;
const hasFfmpeg = spawnSync('sh', ['-c', 'command -v ffmpeg && command -v ffprobe']).status === 0;

before(async () => {
  d = await startTestDaemon({ limits: { maxMessageBytes: LIMIT } });
  work = tempDir('submit-cli');
});
after(async () => {
  await d.close();
  rmSync(work, { recursive: true, force: true });
});

const cli = (args: string[]) => runCli(args);

test('submit --help describes every option', async () => {
  const r = await cli(['submit', '--help']);
  assert.equal(r.code, 0, r.stderr);
  const options = r.stdout.split('\n').filter((l) => /^\s+(-\w, )?--[\w-]+/.test(l));
  assert.ok(options.length >= 20, r.stdout);
  for (const line of options) {
    const text = line
      .replace(/^\s+(-\w, )?--[\w-]+/, '')
      .replace(/\[[^\]]*\]/g, '')
      .trim();
    assert.ok(text.length > 0, `no description: ${line.trim()}`);
  }
});

test('--seed outside 0..2^32-1 is refused naming the value, before connecting', async () => {
  const r = await cli(['submit', '--url', 'ws://127.0.0.1:9/', '--input', work, '--prompt', 'ink', '--seed', '-1']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /^vidprior: error \[E_BAD_REQUEST\]: --seed must be a whole number from 0 to 4294967295, got -1$/m,
  );
});

test('a video in gives a video out, at the input’s frame rate or --fps', {
  skip: !hasFfmpeg && 'needs ffmpeg',
}, async () => {
  const clip = join(work, 'clip.mp4');
  const made = spawnSync('ffmpeg', [
    '-loglevel',
    'error',
    '-f',
    'lavfi',
    '-i',
    'testsrc=size=64x64:rate=5',
    '-frames:v',
    '3',
    '-pix_fmt',
    'yuv420p',
    clip,
  ]);
  assert.equal(made.status, 0, made.stderr.toString());
  const probe = (file: string) => {
    const p = spawnSync(
      'ffprobe',
      [
        '-v',
        'error',
        '-count_frames',
        '-select_streams',
        'v:0',
        '-show_entries',
        'stream=r_frame_rate,nb_read_frames,width,height',
        '-of',
        'json',
        file,
      ],
      { encoding: 'utf8' },
    );
    const s = (JSON.parse(p.stdout) as { streams: Record<string, unknown>[] }).streams[0]!;
    return [s.r_frame_rate, s.nb_read_frames, s.width, s.height];
  };
  const out = join(work, 'styled.mp4');
  const common = ['submit', '--url', d.url, '--input', clip, '--prompt', 'ink', '--steps', '4', '--strength', '0.5'];
  const r = await cli([...common, '--output', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(probe(out), ['5/1', '3', 64, 64]);
  const faster = join(work, 'faster.mp4');
  const f = await cli([...common, '--output', faster, '--fps', '10']);
  assert.equal(f.code, 0, f.stderr);
  assert.deepEqual(probe(faster), ['10/1', '3', 64, 64]);
});

test('a strip larger than the message limit goes as chunked uploads; frames come back one by one', async () => {
  const strip = join(work, 'strip');
  mkdirSync(strip);
  let total = 0;
  for (let i = 0; i < 4; i++) {
    const data = Buffer.alloc(96 * 96 * 3);
    let x = (i + 1) * 0x9e3779b9;
    for (let k = 0; k < data.length; k++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      data[k] = x & 255;
    }
    const png = await sharp(data, { raw: { width: 96, height: 96, channels: 3 } })
      .png()
      .toBuffer();
    total += png.length;
    writeFileSync(join(strip, `f${i + 1}.png`), png);
  }
  assert.ok(total > LIMIT);
  const out = join(work, 'strip-out');
  const r = await cli([
    'submit',
    '--url',
    d.url,
    '--json',
    '--input',
    strip,
    '--output',
    out,
    '--prompt',
    'ink',
    '--steps',
    '4',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const events = jsonLines(r.stdout);
  assert.equal(events.filter((e) => e.event === 'upload').length, 4);
  assert.deepEqual(
    events.filter((e) => e.event === 'frame').map((e) => e.name),
    ['f1.png', 'f2.png', 'f3.png', 'f4.png'],
  );
  // The counter reaches the total: the last progress event has every frame done.
  const progress = events.filter((e) => e.event === 'progress');
  assert.equal(progress.at(-1)!.frames_done, 4);
  assert.deepEqual(readdirSync(out).sort(), ['f1.png', 'f2.png', 'f3.png', 'f4.png']);
  assert.deepEqual(readdirSync(join(d.dataDir, 'uploads')), []);
});
