/**
 * `vidprior finetune` beside the checkpoint of an interrupted run: refused with the choice spelled out
 * (--resume continues, --force starts over) instead of silently starting over and replacing the checkpoint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const CLI = resolve('dist/cli/main.js');

test('an interrupted run’s checkpoint is neither resumed nor replaced silently', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-finetune-cli-'));
  try {
    mkdirSync(join(dir, 'clip'));
    const checkpoint = join(dir, 'clip.checkpoint.safetensors');
    writeFileSync(checkpoint, 'the checkpoint of an interrupted run');
    const run = (extra: string[]) =>
      spawnSync(
        process.execPath,
        [
          CLI,
          'finetune',
          '-i',
          join(dir, 'clip'),
          '-p',
          'ink',
          '-o',
          join(dir, 'clip.safetensors'),
          '--model',
          join(dir, 'nowhere'),
          ...extra,
        ],
        { encoding: 'utf8', env: { ...process.env, VIDPRIOR_CACHE_DIR: join(dir, 'cache') } },
      );
    const refused = run([]);
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /E_BAD_REQUEST\].*clip\.checkpoint\.safetensors.*--resume.*--force/);
    assert.ok(!/^\s+at /m.test(refused.stderr), refused.stderr);
    assert.equal(readFileSync(checkpoint, 'utf8'), 'the checkpoint of an interrupted run');
    // With either choice the run goes on (here to the missing model).
    for (const choice of ['--resume', '--force']) {
      const r = run([choice]);
      assert.equal(r.status, 2, r.stderr);
      assert.doesNotMatch(r.stderr, /checkpoint of an interrupted run/);
      assert.match(r.stderr, /nowhere/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
