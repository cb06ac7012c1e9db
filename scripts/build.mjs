#!/usr/bin/env node
/**
 * Compiles the project (tsc) and marks every `bin` entry of package.json executable. tsc writes files without
 * the execute bit, and `npx vidprior` in the project runs `dist/cli/main.js` directly: whether npm fixes the
 * mode on its own differs between npm versions and users, so the build sets it.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// typescript exports only its package.json and API; its bin is found through the package.json.
const tsPackage = createRequire(import.meta.url).resolve('typescript/package.json');
const tsc = join(dirname(tsPackage), JSON.parse(readFileSync(tsPackage, 'utf8')).bin.tsc);
const compiled = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
if (compiled.status !== 0) process.exit(compiled.status ?? 1);

const { bin = {} } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
for (const file of Object.values(bin)) {
  if (process.platform !== 'win32') chmodSync(join(root, file), 0o755);
}
