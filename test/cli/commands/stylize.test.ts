/**
 * `vidprior stylize` end to end on the CPU provider with a built tiny model: the result line carries where the
 * time went (load, first frame, the pipeline's parts) and the UNet graph that ran; a bad VIDPRIOR_UNET_VARIANT
 * is refused before anything loads, naming the known variants.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { createModelFolder } from '../../../src/models/builder/folder.js';
import { writeFramePng } from '../../../src/io/frames.js';
import { float32 } from '../../../src/tensor.js';

const CLI = 'dist/cli/main.js';
let root: string;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'vidprior-stylize-cli-'));
  await createModelFolder(join(root, 'model'), 'tiny', { seed: 0, opset: 17 });
  mkdirSync(join(root, 'in'));
  for (let i = 0; i < 2; i++)
    await writeFramePng(
      join(root, 'in', `f${i}.png`),
      float32([3, 64, 64], new Float32Array(3 * 64 * 64).fill(i / 2 - 0.2)),
    );
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

function vidprior(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, VIDPRIOR_CACHE_DIR: join(root, 'cache'), ...env },
  });
}

const ARGS = [
  'stylize',
  '--input',
  'in',
  '--output',
  'out',
  '--prompt',
  'a watercolour',
  '--steps',
  '4',
  '--ep',
  'cpu',
];

test('the --json result says how long loading, the first frame and each part took, and which UNet ran', () => {
  const args = ARGS.map((a) => (a === 'in' || a === 'out' ? join(root, a) : a));
  const r = vidprior([...args, '--model', join(root, 'model'), '--json']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const result = lines.find((l) => l.event === 'result')!;
  assert.equal(result.unetVariant, 'original');
  assert.ok((result.loadSeconds as number) > 0);
  assert.ok((result.firstFrameSeconds as number) > (result.loadSeconds as number));
  const t = result.timings as Record<string, number>;
  for (const part of ['prompt', 'read', 'encode', 'denoise', 'decode', 'sink']) assert.ok(t[part]! >= 0, part);
  assert.ok(t.denoise! > 0);
  assert.ok(lines.some((l) => l.event === 'loaded'));
  const frames = lines.filter((l) => l.event === 'progress' && l.phase === 'frame');
  assert.equal(frames.length, 2);
  assert.ok(frames.every((l) => typeof l.seconds === 'number'));
  assert.deepEqual(readdirSync(join(root, 'out')).sort(), ['f0.png', 'f1.png']);
});

test('a VIDPRIOR_UNET_VARIANT that names no variant is refused before anything loads', () => {
  const r = vidprior([...ARGS, '--model', join(root, 'nowhere')], { VIDPRIOR_UNET_VARIANT: 'fastest' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /VIDPRIOR_UNET_VARIANT is "fastest"; known UNet variants: original, fused, fused-geglu/);
});

test('--frame-range stylizes part of the clip as the whole clip would; --skip-existing leaves written frames', () => {
  const base = ARGS.map((a) => (a === 'in' ? join(root, 'in') : a === 'out' ? join(root, 'range') : a));
  const whole = ARGS.map((a) => (a === 'in' ? join(root, 'in') : a === 'out' ? join(root, 'whole') : a));
  const model = ['--model', join(root, 'model')];
  assert.equal(vidprior([...whole, ...model]).status, 0);
  const part = vidprior([...base, ...model, '--frame-range', '1-1']);
  assert.equal(part.status, 0, part.stderr);
  assert.deepEqual(readdirSync(join(root, 'range')), ['f1.png']);
  assert.ok(readFileSync(join(root, 'range', 'f1.png')).equals(readFileSync(join(root, 'whole', 'f1.png'))));
  const rest = vidprior([...base, ...model, '--skip-existing', '--json']);
  assert.equal(rest.status, 0, rest.stderr);
  assert.match(rest.stdout, /"frames":1\b/, 'only the missing frame');
  assert.ok(readFileSync(join(root, 'range', 'f0.png')).equals(readFileSync(join(root, 'whole', 'f0.png'))));
  for (const [args, message] of [
    [['--frame-range', '2-1'], /--frame-range must be START-END/],
    [['--frame-range', '0-5'], /outside the clip's frames 0\.\.1/],
  ] as const) {
    const r = vidprior([...base, ...model, ...args]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, message);
  }
  const video = vidprior([
    ...base.map((a) => (a === join(root, 'range') ? join(root, 'v.mp4') : a)),
    ...model,
    '--frame-range',
    '0-0',
  ]);
  assert.equal(video.status, 2);
  assert.match(video.stderr, /give a folder as --output, not a video/);
});

test('an output inside a file is refused before anything loads, naming the path, without a stack trace', () => {
  const file = join(root, 'wolf.mp4');
  writeFileSync(file, 'not a folder');
  const started = Date.now();
  const args = ARGS.map((a) => (a === 'in' ? join(root, a) : a === 'out' ? join(file, 'x.mp4') : a));
  // The model does not exist either: the output is checked first, so its error is the one reported.
  const r = vidprior([...args, '--model', join(root, 'nowhere')]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(
    r.stderr,
    /^vidprior: error \[E_BAD_REQUEST\]: --output .*wolf\.mp4\/x\.mp4 cannot be created: .*wolf\.mp4 is a file/m,
  );
  assert.ok(!/^\s+at /m.test(r.stderr), r.stderr);
  assert.ok(Date.now() - started < 20_000);
  const folder = ARGS.map((a) => (a === 'in' ? join(root, a) : a === 'out' ? join(file, 'frames') : a));
  const r2 = vidprior([...folder, '--model', join(root, 'nowhere')]);
  assert.equal(r2.status, 2, r2.stderr);
  assert.match(r2.stderr, /E_BAD_REQUEST\]: --output .*wolf\.mp4 is a file/);
});

test('--seed outside the protocol range (0 to 2^32 - 1) is refused naming the value', () => {
  for (const seed of ['-1', '4294967296', '1.5']) {
    const r = vidprior([...ARGS, '--model', join(root, 'nowhere'), '--seed', seed]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`--seed must be a whole number from 0 to 4294967295, got ${seed.replace('.', '\\.')}`),
    );
  }
});

test('--fps sets the frame rate of a video made from frames', { skip: !hasFfmpeg() && 'needs ffmpeg' }, () => {
  const args = ARGS.map((a) => (a === 'in' ? join(root, a) : a === 'out' ? join(root, 'fps.mp4') : a));
  const r = vidprior([...args, '--model', join(root, 'model'), '--fps', '12']);
  assert.equal(r.status, 0, r.stderr);
  const probe = spawnSync(
    'ffprobe',
    [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=r_frame_rate',
      '-of',
      'csv=p=0',
      join(root, 'fps.mp4'),
    ],
    { encoding: 'utf8' },
  );
  assert.equal(probe.stdout.trim(), '12/1');
  const bad = vidprior([...args, '--model', join(root, 'model'), '--fps', '0']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--fps must be a number of frames per second/);
});

function hasFfmpeg(): boolean {
  return spawnSync('sh', ['-c', 'command -v ffmpeg && command -v ffprobe']).status === 0;
}
