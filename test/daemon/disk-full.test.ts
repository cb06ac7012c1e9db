// A full disk, for real: the daemon runs in a private mount namespace on a 2 MB tmpfs (disk-full-scenario.ts).
// Skips where unprivileged namespaces or tmpfs mounts are not allowed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { TEST_CACHE, tempDir } from './helpers.js';

const canMount =
  process.platform === 'linux' &&
  spawnSync('unshare', ['-rm', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs "$1"', 'sh', '/tmp'], {
    stdio: 'ignore',
  }).status === 0;

test('a full disk: submit is E_IO saying so; a job whose failure could not be saved does not run again after a restart', {
  timeout: 60_000,
  skip: !canMount && 'needs `unshare -rm` and a tmpfs mount (a private mount namespace)',
}, () => {
  const mountPoint = tempDir('disk-full');
  try {
    const r = spawnSync(
      'unshare',
      [
        '-rm',
        'sh',
        '-c',
        'mount -t tmpfs -o size=2m tmpfs "$1" && exec "$2" dist/test/daemon/disk-full-scenario.js "$1"',
        'sh',
        mountPoint,
        process.execPath,
      ],
      { env: { ...process.env, VIDPRIOR_CACHE_DIR: TEST_CACHE }, encoding: 'utf8', timeout: 50_000 },
    );
    assert.equal(r.status, 0, `scenario failed: ${r.stderr}`);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    assert.equal(result.submit.code, 'E_IO', result.submit.message);
    assert.match(result.submit.message, /disk is full/);
    assert.equal(result.listedAfterSubmit, 0, 'the refused job left nothing behind');
    assert.equal(result.job.code, 'E_IO', result.job.message);
    assert.deepEqual(result.afterRestart, { state: 'failed', runs: 0 });
  } finally {
    rmSync(mountPoint, { recursive: true, force: true });
  }
});
