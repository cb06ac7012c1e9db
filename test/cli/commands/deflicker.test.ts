/**
 * `vidprior deflicker` from the command line: folders in, a folder or a video out, the side-by-side report,
 * and the mistakes a person makes (a leftover checkpoint, videos that do not pair up) as one error line each.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { deflickerCheckpointPath } from '../../../cli/commands/deflicker.js';
import { runCliSync } from '../run-cli.js';

let tmp: string;
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const small = [
  '--width',
  '4',
  '--scales',
  '3',
  '--epochs',
  '2',
  '--lr',
  '0.002',
  '--working-size',
  '16',
  '--ep',
  'cpu',
];

const cli = (args: string[]) => runCliSync(['deflicker', ...args], { env: { ...process.env, NO_COLOR: '1' } });

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'cli-deflicker-'));
  for (const d of ['orig', 'proc']) mkdirSync(join(tmp, d));
  for (let i = 0; i < 4; i++) {
    const o = Buffer.alloc(40 * 24 * 3);
    const p = Buffer.alloc(40 * 24 * 3);
    for (let q = 0; q < 40 * 24; q++) {
      const [x, y] = [q % 40, Math.floor(q / 40)];
      const v = [(x * 6 + 3 * i) % 256, (y * 9) % 256, ((x + y) * 3) % 256];
      for (let c = 0; c < 3; c++) {
        o[q * 3 + c] = v[c]!;
        p[q * 3 + c] = Math.min(255, Math.round(v[c]! * 0.7 + 30 + 25 * (i % 2)));
      }
    }
    const raw = { raw: { width: 40, height: 24, channels: 3 as const } };
    await sharp(o, raw)
      .png()
      .toFile(join(tmp, 'orig', `s_${i}.png`));
    await sharp(p, raw)
      .png()
      .toFile(join(tmp, 'proc', `s_${i}.png`));
  }
});

after(() => rmSync(tmp, { recursive: true, force: true }));

test('folders in, a folder out, with the E_warp report of original, processed and deflickered', {
  timeout: 300_000,
}, () => {
  const out = join(tmp, 'out');
  const report = join(tmp, 'report.html');
  const r = cli([
    '--original',
    join(tmp, 'orig'),
    '--processed',
    join(tmp, 'proc'),
    '-o',
    out,
    '--report',
    report,
    '--json',
    ...small,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(out).sort(), ['s_0.png', 's_1.png', 's_2.png', 's_3.png']);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const result = lines.at(-1)!;
  assert.equal(result.event, 'result');
  assert.equal(result.frames, 4);
  assert.equal(result.trainSize, '27x16');
  assert.equal(result.outputSize, '40x24');
  const m = result.measurement as { original: number; processed: number; deflickered: number };
  for (const k of ['original', 'processed', 'deflickered'] as const) assert.ok(Number.isFinite(m[k]), `${k}: ${m[k]}`);
  assert.ok(lines.some((l) => l.event === 'progress' && l.stage === 'training' && typeof l.etaSeconds === 'number'));
  const html = readFileSync(report, 'utf8');
  assert.match(html, /deflickered E_warp/);
  assert.match(html, /PSNR to processed/);
  assert.ok(!existsSync(deflickerCheckpointPath(out)), 'the checkpoint is removed after a finished run');
});

test('to a video file', { skip: has('ffmpeg') ? false : 'ffmpeg is not installed', timeout: 300_000 }, () => {
  const out = join(tmp, 'steady.mp4');
  const r = cli(['--original', join(tmp, 'orig'), '--processed', join(tmp, 'proc'), '-o', out, ...small]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(out));
  assert.match(r.stdout, /wrote .*steady\.mp4: 4 frames at 40x24 \(trained at 27x16, 2 epochs\), PSNR to processed/);
});

test('a leftover checkpoint needs --resume; videos that do not pair up are refused', { timeout: 120_000 }, () => {
  const out = join(tmp, 'again');
  writeFileSync(deflickerCheckpointPath(out), 'x');
  let r = cli(['--original', join(tmp, 'orig'), '--processed', join(tmp, 'proc'), '-o', out, ...small]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr.trim(),
    /^vidprior: error \[E_BAD_REQUEST\]: an interrupted run left a checkpoint at .*: add --resume/,
  );
  r = cli(['--original', join(tmp, 'orig'), '--processed', join(tmp, 'proc'), '-o', out, '--resume', ...small]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr.trim(), /E_BAD_INPUT\].*is not a vidprior deflicker checkpoint/);
  rmSync(deflickerCheckpointPath(out));
  mkdirSync(join(tmp, 'short'));
  for (const f of ['s_0.png', 's_1.png']) writeFileSync(join(tmp, 'short', f), readFileSync(join(tmp, 'proc', f)));
  r = cli(['--original', join(tmp, 'orig'), '--processed', join(tmp, 'short'), '-o', out, ...small]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr.trim(), /has 4 frames but .*short has 2: they must pair up frame by frame/);
  r = cli([
    '--original',
    join(tmp, 'orig'),
    '--processed',
    join(tmp, 'proc'),
    '-o',
    out,
    '--report',
    'r.pdf',
    ...small,
  ]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /report file r\.pdf must end in \.html, \.png or \.svg/);
});

test('an output inside a file is refused before anything is decoded, naming the path', () => {
  const file = join(tmp, 'steady.mp4');
  writeFileSync(file, 'a file, not a folder');
  const r = cli([
    '--original',
    join(tmp, 'orig'),
    '--processed',
    join(tmp, 'proc'),
    '-o',
    join(file, 'x.mp4'),
    ...small,
  ]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr.trim(),
    /^vidprior: error \[E_BAD_REQUEST\]: --output .*steady\.mp4\/x\.mp4 cannot be created: .*steady\.mp4 is a file/,
  );
  assert.ok(!/^\s+at /m.test(r.stderr), r.stderr);
});
