/**
 * The method from the command line with the embedded default model: edit-keyframe → finetune (with the chosen
 * candidate) → stylize --adapter, and `run` in one go to a video; bad arguments are one error line each.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { readSafetensors } from '../../../src/training/safetensors.js';
import { assertUserError as userError, runCliSync } from '../run-cli.js';

let tmp: string;
let env: NodeJS.ProcessEnv;
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

const cli = (args: string[]) => runCliSync([...args, '--ep', 'cpu'], { env });

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'cli-train-'));
  env = { ...process.env, VIDPRIOR_CACHE_DIR: join(tmp, 'cache'), NO_COLOR: '1' };
  mkdirSync(join(tmp, 'clip'));
  for (let i = 0; i < 5; i++) {
    const data = Buffer.alloc(80 * 48 * 3);
    for (let p = 0; p < 80 * 48; p++) {
      data[p * 3] = (p + 9 * i) % 256;
      data[p * 3 + 1] = (p >> 4) % 256;
      data[p * 3 + 2] = 40 * i;
    }
    await sharp(data, { raw: { width: 80, height: 48, channels: 3 } })
      .png()
      .toFile(join(tmp, 'clip', `shot_${i + 1}.png`));
  }
});

after(() => rmSync(tmp, { recursive: true, force: true }));

test('edit-keyframe → finetune → stylize --adapter', { timeout: 600_000 }, async () => {
  // 1. Candidates for frame 2.
  const edits = join(tmp, 'edits');
  const e = cli([
    'edit-keyframe',
    '-i',
    join(tmp, 'clip'),
    '--frame',
    '2',
    '-p',
    'a watercolor',
    '-n',
    '2',
    '--steps',
    '4',
    '-o',
    edits,
    '--json',
  ]);
  assert.equal(e.code, 0, e.stderr);
  const manifest = JSON.parse(readFileSync(join(edits, 'candidates.json'), 'utf8'));
  assert.deepEqual(
    manifest.candidates.map((c: { seed: number }) => c.seed),
    [0, 1],
  );
  for (const c of manifest.candidates) {
    const meta = await sharp(join(edits, c.file)).metadata();
    assert.deepEqual([meta.width, meta.height], [80, 48], 'candidates have the frame size');
  }
  assert.match(e.stdout, /"event":"result"/);

  // 2. Fine-tune toward candidate 1.
  const adapter = join(tmp, 'clip.safetensors');
  const f = cli([
    'finetune',
    '-i',
    join(tmp, 'clip'),
    '--edit',
    `2=${join(edits, manifest.candidates[1].file)}`,
    '-p',
    'a watercolor',
    '--iters',
    '6',
    '--frames',
    '3',
    '--checkpoint-every',
    '3',
    '-o',
    adapter,
  ]);
  assert.equal(f.code, 0, f.stderr);
  const file = await readSafetensors(adapter);
  const keys = [...file.tensors.keys()];
  assert.ok(
    keys.some((k) => /^unet\.(down|mid|up)_block.*\.attn[12]\.to_q\.lora_A\.weight$/.test(k)),
    keys.slice(0, 3).join(),
  );
  assert.ok(keys.every((k) => k.endsWith('.lora_A.weight') || k.endsWith('.lora_B.weight')));
  const record = JSON.parse(file.metadata.vidprior!);
  assert.equal(record.prompt, 'a watercolor');
  assert.equal(record.iterations, 6);
  assert.equal(record.maxTimestep, 500);
  assert.equal(record.rank, 4);
  assert.equal(JSON.parse(file.metadata.lora_adapter_metadata!)['unet.r'], 4);
  assert.ok(
    !existsSync(adapter.replace('.safetensors', '.checkpoint.safetensors')),
    'the checkpoint is removed after success',
  );

  // 3. Stylize with it.
  const out = join(tmp, 'styled');
  const s = cli([
    'stylize',
    '-i',
    join(tmp, 'clip'),
    '-o',
    out,
    '-p',
    'a watercolor',
    '--adapter',
    adapter,
    '--steps',
    '4',
  ]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stderr, /adapter .*clip\.safetensors: \d+ layers, rank 4/);
  assert.deepEqual(readdirSync(out).sort(), ['shot_1.png', 'shot_2.png', 'shot_3.png', 'shot_4.png', 'shot_5.png']);
});

test('run: the whole method to a video', {
  timeout: 600_000,
  skip: has('ffmpeg') ? false : 'ffmpeg not installed',
}, async () => {
  const edit = join(tmp, 'edit.png');
  await sharp({ create: { width: 80, height: 48, channels: 3, background: { r: 200, g: 40, b: 90 } } })
    .png()
    .toFile(edit);
  const video = join(tmp, 'run.mp4');
  const r = cli([
    'run',
    '-i',
    join(tmp, 'clip'),
    '--edit',
    `0=${edit}`,
    '-p',
    'red',
    '--iters',
    '4',
    '--frames',
    '2',
    '--steps',
    '4',
    '-o',
    video,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(video) && existsSync(join(tmp, 'run.adapter.safetensors')));
});

test('bad arguments name the value', { timeout: 120_000 }, () => {
  const clip = join(tmp, 'clip');
  userError(
    cli(['finetune', '-i', clip, '--edit', '2', '-p', 'x', '-o', join(tmp, 'a.safetensors')]),
    'E_BAD_REQUEST',
    /--edit must be <frame-index>=<edited image>.*"2"/,
  );
  userError(
    cli(['finetune', '-i', clip, '-p', 'x', '-o', join(tmp, 'a.bin')]),
    'E_BAD_REQUEST',
    /must end in \.safetensors/,
  );
  userError(
    cli(['finetune', '-i', clip, '-p', 'x', '--rank', '0', '-o', join(tmp, 'a.safetensors')]),
    'E_BAD_REQUEST',
    /rank must be a whole number from 1 to 256, got 0/,
  );
  userError(
    cli([
      'finetune',
      '-i',
      clip,
      '--edit',
      `1=${join(tmp, 'missing.png')}`,
      '-p',
      'x',
      '-o',
      join(tmp, 'a.safetensors'),
    ]),
    'E_BAD_INPUT',
    /missing\.png .* does not exist/,
  );
  userError(
    cli([
      'finetune',
      '-i',
      clip,
      '--edit',
      `7=${join(clip, 'shot_1.png')}`,
      '-p',
      'x',
      '-o',
      join(tmp, 'a.safetensors'),
    ]),
    'E_BAD_REQUEST',
    /--edit frame 7 is outside the clip's frames 0\.\.4/,
  );
  userError(
    cli(['edit-keyframe', '-i', clip, '--frame', '9', '-p', 'x', '-o', join(tmp, 'e')]),
    'E_BAD_REQUEST',
    /--frame 9 is outside the clip's frames 0\.\.4/,
  );
  userError(
    cli(['edit-keyframe', '-i', clip, '--frame', '0', '-p', 'x', '--strength', '1.5', '-o', join(tmp, 'e')]),
    'E_BAD_REQUEST',
    /strength must be a number in \(0, 1\], got 1\.5/,
  );
  userError(
    cli(['stylize', '-i', clip, '-o', join(tmp, 'o'), '-p', 'x', '--adapter', join(clip, 'shot_1.png')]),
    'E_ADAPTER',
    /shot_1\.png is not a valid safetensors file/,
  );
});

test('finetune --full writes a weight delta that stylize --adapter loads; a step over --memory-limit is refused', {
  timeout: 600_000,
}, async () => {
  const clip = join(tmp, 'clip');
  const delta = join(tmp, 'full.safetensors');
  const f = cli(['finetune', '-i', clip, '-p', 'x', '--full', '--iters', '2', '--frames', '2', '-o', delta, '--json']);
  assert.equal(f.code, 0, f.stderr);
  const file = await readSafetensors(delta);
  assert.ok(file.metadata.vidprior_delta, 'marked as a full delta');
  assert.ok(file.tensors.has('unet.conv_in.weight') && file.tensors.has('unet.mid_block.resnets.0.conv1.weight'));
  const record = JSON.parse(file.metadata.vidprior!);
  assert.equal(record.kind, 'full');
  assert.equal(record.lr, 1e-5, 'the method’s learning rate by default');
  const s = cli(['stylize', '-i', clip, '-o', join(tmp, 'styled-full'), '-p', 'x', '--adapter', delta, '--steps', '4']);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stderr, /adapter .*full\.safetensors: full UNet delta, \d+ weights/);
  userError(
    cli(['finetune', '-i', clip, '-p', 'x', '--full', '--memory-limit', '0.01', '-o', join(tmp, 'no.safetensors')]),
    'E_TOO_LARGE',
    /full-UNet fine-tuning needs about [\d.]+ GiB \(base weights .*\), but the limit is 0\.0 GiB \(--memory-limit\): use LoRA instead \(drop --full\)/,
  );
});
