/**
 * `vidprior stylize` end to end: spawns the built CLI (node dist/cli/main.js) on small frames with few steps,
 * with the embedded default model built into a temporary cache folder. Checks the acceptance run (16 PNGs in,
 * 16 PNGs of the input size out, named like the inputs), --json output, a video round trip, and that bad input
 * gives one error line with its code, a non-zero exit and no stack trace.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { encodeNpy } from '../../src/io/npy.js';
import { assertUserError, runCliSync } from '../cli/run-cli.js';

let tmp: string;
let env: NodeJS.ProcessEnv;

const cli = (args: string[]) => runCliSync(['stylize', '--ep', 'cpu', ...args], { env, timeoutMs: 120_000 });

async function writeFrames(dir: string, count: number, width: number, height: number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    const data = Buffer.alloc(width * height * 3);
    for (let p = 0; p < width * height; p++) {
      data[p * 3] = (p * 7 + i * 16) % 256;
      data[p * 3 + 1] = ((p % width) * 5) % 256;
      data[p * 3 + 2] = (Math.floor(p / width) * 9 + i) % 256;
    }
    await sharp(data, { raw: { width, height, channels: 3 } })
      .png()
      .toFile(join(dir, `frame_${i + 1}.png`));
  }
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'vidprior-stylize-cli-'));
  env = { ...process.env, VIDPRIOR_CACHE_DIR: join(tmp, 'cache'), CI: 'true' };
  await writeFrames(join(tmp, 'in'), 16, 72, 40);
});
after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const FAST = ['--prompt', 'a watercolor painting', '--steps', '4', '--strength', '0.5'];

test('16 PNGs in → 16 PNGs of the input size out, named like the inputs (embedded default model)', async () => {
  const out = join(tmp, 'out');
  const r = cli(['--input', join(tmp, 'in'), '--output', out, ...FAST, '--batch', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /embedded default model: its weights are random/);
  assert.match(r.stderr, /execution provider: cpu \(/);
  assert.match(r.stdout, /wrote 16 frames to /);
  const names = readdirSync(out).sort();
  assert.deepEqual(names, readdirSync(join(tmp, 'in')).sort());
  for (const n of names) {
    const m = await sharp(join(out, n)).metadata();
    assert.deepEqual([m.width, m.height, m.format], [72, 40, 'png'], n);
  }
});

test('--json prints progress and the result as JSON lines', () => {
  const r = cli([
    '--input',
    join(tmp, 'in', 'frame_1.png'),
    '--output',
    join(tmp, 'single.png'),
    ...FAST,
    '--json',
    '--fit',
    'pad',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const events = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(events.some((e) => e.event === 'provider' && e.ep === 'cpu'));
  assert.ok(events.some((e) => e.event === 'progress' && e.phase === 'denoise' && e.step === 2));
  const result = events.find((e) => e.event === 'result')!;
  assert.equal(result.frames, 1);
  assert.deepEqual([result.width, result.height, result.workWidth, result.workHeight], [72, 40, 128, 64]);
  assert.deepEqual(result.noiseShape, [1, 4, 8, 16]);
});

test('a video in gives a video out with the same number of frames; --noise-file of the right shape is used', () => {
  const video = join(tmp, 'clip.mp4');
  const made = spawnSync('ffmpeg', [
    '-v',
    'error',
    '-f',
    'lavfi',
    '-i',
    'testsrc=size=64x64:rate=8',
    '-frames:v',
    '5',
    '-pix_fmt',
    'yuv420p',
    video,
  ]);
  assert.equal(made.status, 0, String(made.stderr));
  const noise = join(tmp, 'noise.npy');
  writeFileSync(
    noise,
    encodeNpy({
      dtype: 'float32',
      shape: [1, 4, 8, 8],
      data: Float32Array.from({ length: 256 }, (_, i) => Math.sin(i * 1.3)),
    }),
  );
  const out = join(tmp, 'styled.mp4');
  const r = cli(['--input', video, '--output', out, ...FAST, '--noise-file', noise]);
  assert.equal(r.code, 0, r.stderr);
  const probe = spawnSync(
    'ffprobe',
    [
      '-v',
      'error',
      '-count_frames',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=nb_read_frames,width,height',
      '-of',
      'csv=p=0',
      out,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(probe.stdout.trim(), '64,64,5');
});

test('bad input: one error line with its code, exit 2, no stack trace', async () => {
  const input = join(tmp, 'in');
  const o = join(tmp, 'never');
  assertUserError(
    cli(['--input', input, '--output', o, '--prompt', 'x', '--strength', '1.5']),
    'E_BAD_REQUEST',
    /--strength must be a number in \(0, 1\], got 1\.5/,
  );
  assertUserError(
    cli(['--input', input, '--output', o, ...FAST, '--strength', '0']) /* the last one wins */,
    'E_BAD_REQUEST',
    /--strength .* got 0/,
  );
  // A model folder that lacks the UNet: a copy of the default model without unet/model.onnx.
  const cache = join(tmp, 'cache', 'models');
  const built = join(cache, readdirSync(cache).find((n) => !n.startsWith('.'))!);
  const broken = join(tmp, 'broken-model');
  mkdirSync(broken);
  for (const part of ['text_encoder', 'vae_encoder', 'vae_decoder', 'tokenizer', 'scheduler'])
    symlinkSync(join(built, part), join(broken, part), 'dir');
  assertUserError(
    cli(['--input', input, '--output', o, ...FAST, '--model', broken]),
    'E_MODEL_MISSING',
    /unet\/model\.onnx/,
  );
  const badImages = join(tmp, 'bad-images');
  mkdirSync(badImages);
  writeFileSync(join(badImages, 'frame_1.png'), 'not a png');
  assertUserError(
    cli(['--input', badImages, '--output', o, ...FAST]),
    'E_BAD_INPUT',
    /cannot read image .*frame_1\.png/,
  );
  writeFileSync(join(tmp, 'broken.mp4'), 'not a video');
  assertUserError(
    cli(['--input', join(tmp, 'broken.mp4'), '--output', o, ...FAST]),
    'E_BAD_INPUT',
    /cannot read video .*broken\.mp4/,
  );
  const noise = join(tmp, 'wrong-noise.npy');
  writeFileSync(noise, encodeNpy({ dtype: 'float32', shape: [1, 4, 4, 4], data: new Float32Array(64) }));
  assertUserError(
    cli(['--input', input, '--output', o, ...FAST, '--noise-file', noise]),
    'E_BAD_INPUT',
    /wrong-noise\.npy has shape \[1, 4, 4, 4\] but \[1, 4, 8, 8\] is needed/,
  );
});
