/**
 * `vidprior stylize --work-size`: the model works at the asked short side (aspect kept, a multiple of 64 for
 * SD 1.x), and the output frames come back at the input's own size; by default a frame no larger than the
 * model's native size works at its own size (brought to a multiple).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { createModelFolder } from '../../../src/models/builder/folder.js';

const CLI = 'dist/cli/main.js';
let root: string;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'vidprior-work-size-cli-'));
  await createModelFolder(join(root, 'model'), 'tiny', { seed: 0, opset: 17 });
  mkdirSync(join(root, 'in'));
  for (let i = 0; i < 2; i++)
    await sharp({ create: { width: 200, height: 120, channels: 3, background: { r: 40 * i, g: 90, b: 160 } } })
      .png()
      .toFile(join(root, 'in', `f${i}.png`));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

function stylize(out: string, extra: string[]) {
  const r = spawnSync(
    process.execPath,
    [
      CLI,
      'stylize',
      '-i',
      join(root, 'in'),
      '-o',
      join(root, out),
      '-p',
      'ink',
      '--steps',
      '4',
      '--ep',
      'cpu',
      '--model',
      join(root, 'model'),
      '--json',
      ...extra,
    ],
    { encoding: 'utf8', env: { ...process.env, VIDPRIOR_CACHE_DIR: join(root, 'cache') } },
  );
  assert.equal(r.status, 0, r.stderr);
  const result = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((m) => m.event === 'result')!;
  return result;
}

test('--work-size 64: the model works at 128×64, the frames come back at 200×120', async () => {
  const r = stylize('small', ['--work-size', '64']);
  assert.deepEqual([r.workWidth, r.workHeight, r.width, r.height], [128, 64, 200, 120]);
  assert.deepEqual(r.noiseShape, [1, 4, 8, 16]);
  for (const name of readdirSync(join(root, 'small'))) {
    const meta = await sharp(join(root, 'small', name)).metadata();
    assert.deepEqual([meta.width, meta.height], [200, 120], name);
  }
});

test('by default a frame below the native size works at its own size (nearest multiple); a bad value is refused', () => {
  const r = stylize('default', []);
  assert.deepEqual([r.workWidth, r.workHeight], [192, 128]);
  const bad = spawnSync(process.execPath, [CLI, 'stylize', '-i', 'x', '-o', 'y', '-p', 'z', '--work-size', '-3'], {
    encoding: 'utf8',
  });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--work-size must be a whole number from 0 to 16384/);
});
