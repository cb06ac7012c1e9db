#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's own test runner.
// Node 20's `--test` takes no globs, so the files are listed here. Extra arguments are passed through
// (for example `npm test -- --test-name-pattern=ddim`); path filters follow `--only` (repeatable).
// The tests get a temporary folder of their own as TMPDIR; whatever they leave in it is listed and fails the
// run (tests clean up after themselves), then the folder is removed.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) found.push(...walk(p));
    else if (name.endsWith('.test.js')) found.push(p);
  }
  return found;
}

const args = process.argv.slice(2);
// `--only SUBSTRING`, repeatable: the test files whose path contains any of them.
const filters = [];
for (let at = args.indexOf('--only'); at >= 0; at = args.indexOf('--only'))
  filters.push(...args.splice(at, 2).slice(1));
const files = walk('dist/test')
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('run-tests: no test files found under dist/test');
  process.exit(1);
}
const temp = mkdtempSync(join(tmpdir(), 'vidprior-tests-'));
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...args, ...files], {
  stdio: 'inherit',
  env: { ...process.env, TMPDIR: temp },
});
// onnxruntime-node keeps one `.ses` file (a session id it rewrites) in the temporary folder: not the tests'.
// `vidprior-test-cache` is the model cache the tests share on purpose (test/daemon/helpers.ts); it goes with
// the folder.
// A `mat-debug-<pid>.log` is onnxruntime-node's too: a process that closes its runtime removes its own
// (src/runtime), one that a test kills on purpose (SIGKILL resume tests) cannot.
const SHARED = new Set(['.ses', 'vidprior-test-cache']);
const ortLog = (name) => /^mat-debug-\d+\.log$/.test(name);
const left = readdirSync(temp).filter((name) => !SHARED.has(name) && !ortLog(name));
rmSync(temp, { recursive: true, force: true });
if (left.length > 0) {
  console.error(`run-tests: the tests left ${left.length} temporary file(s) or folder(s) behind:`);
  for (const name of left.slice(0, 50)) console.error(`  ${name}`);
  process.exit(r.status || 1);
}
console.log('run-tests: no temporary files left behind');
process.exit(r.status ?? 1);
