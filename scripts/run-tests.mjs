#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's own test runner.
// Node 20's `--test` takes no globs, so the files are listed here. Extra arguments are passed through
// (for example `npm test -- --test-name-pattern=ddim`); a path filter may follow `--only`.
import { readdirSync, statSync } from 'node:fs';
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
const only = args.indexOf('--only');
let filter = null;
if (only >= 0) {
  filter = args[only + 1];
  args.splice(only, 2);
}
const files = walk('dist/test')
  .filter((f) => !filter || f.includes(filter))
  .sort();
if (files.length === 0) {
  console.error('run-tests: no test files found under dist/test');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...args, ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
