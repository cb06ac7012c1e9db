// Watched-folder mode: a job folder produces outputs and status; malformed ones get an error file and the
// watcher goes on; paths cannot escape the job folder.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { startTestDaemon, tempDir, testPng, waitJson, type TestDaemon } from './helpers.js';

let d: TestDaemon;
let inbox: string;
before(async () => {
  inbox = tempDir('inbox');
  d = await startTestDaemon({ watch: [inbox], watchStableMs: 100, listen: undefined });
});
after(async () => {
  await d.close();
  rmSync(inbox, { recursive: true, force: true });
});

async function jobFolder(name: string, frames: number, job: unknown): Promise<string> {
  const dir = join(inbox, name);
  mkdirSync(join(dir, 'frames'), { recursive: true });
  for (let i = 0; i < frames; i++) writeFileSync(join(dir, 'frames', `f${i + 1}.png`), await testPng(i, 64, 64));
  // job.json last, as the mode asks.
  writeFileSync(join(dir, 'job.json'), typeof job === 'string' ? job : JSON.stringify(job));
  return dir;
}

test('a job folder gets its outputs in out/ and a status.json that ends in done', async () => {
  const dir = await jobFolder('shot1', 3, {
    kind: 'stylize',
    input: 'frames',
    params: { prompt: 'ink', steps: 4, strength: 0.5 },
  });
  const status = await waitJson(join(dir, 'status.json'), (s) => s.state === 'done');
  assert.equal(status.frames_done, 3);
  assert.equal(status.frames_total, 3);
  assert.deepEqual(readdirSync(join(dir, 'out')).sort(), ['f1.png', 'f2.png', 'f3.png']);
  assert.ok(!existsSync(join(dir, 'error.json')));
  const job = d.daemon.queue.get(status.job as string);
  assert.equal(job.spec.name, 'shot1');
});

test('malformed job folders get error.json naming the problem; the watcher keeps going', async () => {
  const bad = [
    ['not-json', '{"kind": "stylize", '],
    ['bad-kind', { kind: 'paint', input: 'frames', params: { prompt: 'x' } }],
    ['bad-param', { kind: 'stylize', input: 'frames', params: { prompt: 'x', strength: 3 } }],
    ['escape', { kind: 'stylize', input: '../shot1/frames', params: { prompt: 'x' } }],
    ['no-frames', { kind: 'stylize', input: 'frames', params: { prompt: 'x' } }],
  ] as const;
  for (const [name, job] of bad) await jobFolder(name, name === 'no-frames' ? 0 : 1, job);
  const expect: Record<string, [string, RegExp]> = {
    'not-json': ['E_BAD_INPUT', /job\.json is not valid JSON/],
    'bad-kind': ['E_BAD_REQUEST', /job\.json\.kind must be one of/],
    'bad-param': ['E_BAD_REQUEST', /params\.strength/],
    escape: ['E_FORBIDDEN_PATH', /job\.json\.input/],
    'no-frames': ['E_BAD_INPUT', /no frames/],
  };
  for (const [name, [code, message]] of Object.entries(expect)) {
    const err = await waitJson(join(inbox, name, 'error.json'), () => true);
    assert.equal(err.code, code, `${name}: ${err.message}`);
    assert.match(String(err.message), message);
    assert.ok(!existsSync(join(inbox, name, 'status.json')));
  }
  // Still watching: a good folder after the bad ones runs.
  const dir = await jobFolder('shot2', 1, {
    kind: 'stylize',
    input: 'frames',
    params: { prompt: 'ink', steps: 4, strength: 0.5 },
  });
  await waitJson(join(dir, 'status.json'), (s) => s.state === 'done');
  // A fixed job.json (newer than its error) is picked up again.
  writeFileSync(
    join(inbox, 'bad-param', 'job.json'),
    JSON.stringify({ kind: 'stylize', input: 'frames', params: { prompt: 'x', steps: 4, strength: 0.5 } }),
  );
  await waitJson(join(inbox, 'bad-param', 'status.json'), (s) => s.state === 'done');
  assert.ok(!existsSync(join(inbox, 'bad-param', 'error.json')));
});

test('a job folder holding a video file is decoded (ffmpeg) and stylized frame by frame', async (t) => {
  const probe = spawnSync('ffmpeg', ['-version']);
  if (probe.status !== 0) {
    t.skip('ffmpeg is not installed');
    return;
  }
  const dir = join(inbox, 'clip');
  mkdirSync(dir, { recursive: true });
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
    join(dir, 'clip.mp4'),
  ]);
  assert.equal(made.status, 0, made.stderr.toString());
  writeFileSync(
    join(dir, 'job.json'),
    JSON.stringify({ kind: 'stylize', params: { prompt: 'ink', steps: 4, strength: 0.5 } }),
  );
  const status = await waitJson(join(dir, 'status.json'), (s) => s.state === 'done');
  assert.equal(status.frames_total, 3);
  assert.equal(readdirSync(join(dir, 'out')).filter((n) => n.endsWith('.png')).length, 3);
  // A video in, a video out: the frames encoded at the source's rate, named like the source.
  assert.equal(status.video, 'out/clip.mp4');
  const info = spawnSync(
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
      join(dir, 'out', 'clip.mp4'),
    ],
    { encoding: 'utf8' },
  );
  assert.equal(info.status, 0, info.stderr);
  const stream = (JSON.parse(info.stdout) as { streams: Record<string, unknown>[] }).streams[0]!;
  assert.deepEqual([stream.r_frame_rate, stream.nb_read_frames, stream.width, stream.height], ['5/1', '3', 64, 64]);
});

test('a frame still being copied when job.json lands is waited for, not read half-written', async () => {
  const dir = join(inbox, 'slow-copy');
  mkdirSync(join(dir, 'frames'), { recursive: true });
  for (let i = 0; i < 2; i++) writeFileSync(join(dir, 'frames', `f${i + 1}.png`), await testPng(i, 64, 64));
  const last = await testPng(7, 64, 64);
  const slow = join(dir, 'frames', 'f3.png');
  writeFileSync(slow, last.subarray(0, 100));
  writeFileSync(
    join(dir, 'job.json'),
    JSON.stringify({ kind: 'stylize', input: 'frames', params: { prompt: 'ink', steps: 4, strength: 0.5 } }),
  );
  // The rest of the copy arrives in pieces, each sooner than the stability window (100 ms).
  for (let off = 100; off < last.length; off += Math.ceil(last.length / 8)) {
    await new Promise((r) => setTimeout(r, 40));
    appendFileSync(slow, last.subarray(off, Math.min(last.length, off + Math.ceil(last.length / 8))));
  }
  const status = await waitJson(join(dir, 'status.json'), (s) => s.state === 'done');
  assert.equal(status.frames_total, 3);
  assert.ok(!existsSync(join(dir, 'error.json')));
});

test('a daemon restarted while a watched job runs finishes it: status.json and out/ complete', async () => {
  const box = tempDir('inbox-restart');
  const dataDir = tempDir('data-restart');
  try {
    let w = await startTestDaemon({ dataDir, watch: [box], watchStableMs: 100, listen: undefined });
    const dir = join(box, 'long');
    mkdirSync(join(dir, 'frames'), { recursive: true });
    for (let i = 0; i < 4; i++) writeFileSync(join(dir, 'frames', `f${i + 1}.png`), await testPng(i, 64, 64));
    writeFileSync(
      join(dir, 'job.json'),
      JSON.stringify({ kind: 'stylize', input: 'frames', params: { prompt: 'ink', steps: 30, strength: 0.5 } }),
    );
    await waitJson(join(dir, 'status.json'), (s) => s.state === 'running' && Number(s.frames_done) >= 1);
    await w.close();
    const interrupted = JSON.parse(readFileSync(join(dir, 'status.json'), 'utf8'));
    assert.equal(interrupted.state, 'running');
    w = await startTestDaemon({ dataDir, watch: [box], watchStableMs: 100, listen: undefined });
    const status = await waitJson(join(dir, 'status.json'), (s) => s.state === 'done');
    assert.equal(status.job, interrupted.job, 'the same job went on; the folder was not submitted again');
    assert.deepEqual(readdirSync(join(dir, 'out')).sort(), ['f1.png', 'f2.png', 'f3.png', 'f4.png']);
    await w.close();
  } finally {
    rmSync(box, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
});
