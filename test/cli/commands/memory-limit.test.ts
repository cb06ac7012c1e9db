/**
 * `vidprior stylize --memory-limit`: frames that would not fit with the model's weights are refused once the model
 * is loaded, before any frame runs or the output is made, naming the sizes, the limit and a `--work-size` that
 * fits; that size then runs under the same limit.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import sharp from 'sharp';
import { createModelFolder } from '../../../src/models/builder/folder.js';
import { assertUserError, runCliSync } from '../run-cli.js';

let root: string;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'vidprior-memory-limit-cli-'));
  await createModelFolder(join(root, 'model'), 'tiny', { seed: 0, opset: 17 });
  mkdirSync(join(root, 'in'));
  await sharp({ create: { width: 1280, height: 720, channels: 3, background: { r: 40, g: 90, b: 160 } } })
    .png()
    .toFile(join(root, 'in', 'f0.png'));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const stylize = (out: string, extra: string[]) =>
  runCliSync(
    [
      'stylize',
      ...['-i', join(root, 'in'), '-o', join(root, out), '-p', 'ink', '--steps', '4', '--ep', 'cpu'],
      ...['--model', join(root, 'model'), ...extra],
    ],
    { env: { ...process.env, VIDPRIOR_CACHE_DIR: join(root, 'cache') } },
  );

test('a 720p frame at 896×512 over 0.2 GiB is refused with a working size that fits, which then runs', () => {
  const refused = stylize('over', ['--memory-limit', '0.2']);
  assertUserError(refused, 'E_TOO_LARGE', /frames of 1280×720 worked on at 896×512, 1 at a time, need about/);
  assert.match(refused.stderr, /more than 0\.20 GiB \(--memory-limit/);
  assert.ok(!existsSync(join(root, 'over')), 'nothing written');
  const side = /--work-size (\d+) fits/.exec(refused.stderr)?.[1];
  assert.ok(side && Number(side) < 512 && Number(side) % 64 === 0, refused.stderr);

  const fits = stylize('fits', ['--memory-limit', '0.2', '--work-size', side]);
  assert.equal(fits.code, 0, fits.stderr);
  assert.deepEqual(readdirSync(join(root, 'fits')), ['f0.png']);
});

test('a limit below the weights leaves no working size; a bad limit names the value', () => {
  const tiny = stylize('none', ['--memory-limit', '0.0001']);
  assertUserError(tiny, 'E_TOO_LARGE', /no working size fits/);
  const bad = stylize('bad', ['--memory-limit', '-1']);
  assertUserError(bad, 'E_BAD_REQUEST', /--memory-limit must be a number of GiB > 0, got -1/);
});
