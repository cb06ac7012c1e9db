/**
 * `npx vidprior --help` in the project prints help and nothing from npm: the project's npm configuration holds
 * only keys npm knows (an unknown `.npmrc` key makes npm warn on every call), and the build leaves the bin
 * executable (npx runs it directly; some npm versions fix its mode, others answer "Permission denied").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Compiled to dist/test/cli/: the package's bin is dist/cli/main.js.
const bin = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

// Runs before the npx test below, which may fix the mode itself and so hide a build that left it off.
test('the build marks the vidprior bin executable', { skip: process.platform === 'win32' && 'POSIX modes' }, () => {
  assert.notEqual(statSync(bin).mode & 0o111, 0, `${bin} is not executable`);
});

const hasNpx = spawnSync('sh', ['-c', 'command -v npx']).status === 0;

test('npx vidprior --help prints no npm warning', { skip: !hasNpx && 'needs npx' }, () => {
  const r = spawnSync('npx', ['--no-install', 'vidprior', '--help'], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /vidprior <command>/);
  assert.doesNotMatch(r.stderr, /npm warn/i);
});
