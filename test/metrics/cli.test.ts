import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { consistentStyle, renderShifted, scaleBrightness, smoothTexture } from './helpers.js';
import type { RgbImage } from '../../src/metrics/image.js';

const CLI = join('dist', 'cli', 'main.js');

async function savePng(img: RgbImage, file: string): Promise<void> {
  const n = img.width * img.height;
  const raw = Buffer.alloc(3 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) raw[3 * i + c] = Math.round(255 * img.data[c * n + i]);
  await sharp(raw, { raw: { width: img.width, height: img.height, channels: 3 } })
    .png()
    .toFile(file);
}

test('vidprior metrics and compare: JSON numbers, a report, and a clear error on a frame-count mismatch', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-cli-'));
  try {
    const tex = smoothTexture(31, 8, 40);
    for (const sub of ['orig', 'steady', 'flicker', 'short']) mkdirSync(join(dir, sub));
    for (let t = 0; t < 4; t++) {
      const f = renderShifted(tex, 48, 40, t, 0.5 * t);
      await savePng(f, join(dir, 'orig', `${t}.png`));
      await savePng(consistentStyle(f), join(dir, 'steady', `${t}.png`));
      await savePng(scaleBrightness(consistentStyle(f), t % 2 ? 1.3 : 0.8), join(dir, 'flicker', `${t}.png`));
      if (t < 3) await savePng(f, join(dir, 'short', `${t}.png`));
    }
    const m = spawnSync(
      process.execPath,
      [CLI, 'metrics', '--original', join(dir, 'orig'), '--stylized', join(dir, 'steady'), '--json', '--threads', '0'],
      { encoding: 'utf8' },
    );
    assert.equal(m.status, 0, m.stderr);
    const result = JSON.parse(m.stdout.trim().split('\n').pop() as string);
    assert.equal(result.event, 'result');
    assert.equal(result.stylized[0].pairWarpError.length, 3);
    assert.ok(result.stylized[0].warpError < 1e-3, `steady E_warp ${result.stylized[0].warpError}`);
    assert.match(result.flowMethod, /DIS/);

    const report = join(dir, 'cmp.html');
    const c = spawnSync(
      process.execPath,
      [
        CLI,
        'compare',
        '--original',
        join(dir, 'orig'),
        '--stylized',
        join(dir, 'steady'),
        '--stylized',
        join(dir, 'flicker'),
        '--labels',
        'steady',
        'flicker',
        '--report',
        report,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(c.status, 0, c.stderr);
    assert.match(c.stdout, /steady\s+\S+\s+\S+\s+\S+\nflicker/);
    assert.ok(existsSync(report));

    const bad = spawnSync(
      process.execPath,
      [CLI, 'metrics', '--original', join(dir, 'orig'), '--stylized', join(dir, 'short'), '--threads', '0'],
      { encoding: 'utf8' },
    );
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /E_BAD_INPUT.*orig has 4 frames.*short has 3/);
    assert.doesNotMatch(bad.stderr, /at .*\.js:\d+/); // no stack trace for a user mistake

    const labels = spawnSync(
      process.execPath,
      [
        CLI,
        'compare',
        '--original',
        join(dir, 'orig'),
        '--stylized',
        join(dir, 'steady'),
        '--labels',
        'a',
        'b',
        '--threads',
        '0',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(labels.status, 2);
    assert.match(labels.stderr, /labels must be 1 labels/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
