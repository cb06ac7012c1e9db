/**
 * `npx vidprior --help` in the project prints help and nothing from npm: the project's npm configuration holds
 * only keys npm knows (an unknown `.npmrc` key makes npm warn on every call).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

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
