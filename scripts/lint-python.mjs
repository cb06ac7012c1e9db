#!/usr/bin/env node
// Lints the Python in the repository (the Blender add-on, the benchmarks' Blender scripts) with Ruff (Astral's WebAssembly build from npm, so CI needs no PyPI):
// pyflakes + pycodestyle errors and warnings, 120 columns. Prints one line per finding; exits 1 on any.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PositionEncoding, Workspace } from '@astral-sh/ruff-wasm-nodejs';

const ROOTS = ['blender_addon', 'bench'];
const SETTINGS = { 'line-length': 120, lint: { select: ['E', 'F', 'W'] } };

function pythonFiles(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === '__pycache__') continue;
    if (statSync(path).isDirectory()) found.push(...pythonFiles(path));
    else if (name.endsWith('.py')) found.push(path);
  }
  return found;
}

const workspace = new Workspace(SETTINGS, PositionEncoding.Utf16);
let findings = 0;
for (const file of ROOTS.flatMap(pythonFiles).sort()) {
  for (const d of workspace.check(readFileSync(file, 'utf8'))) {
    findings++;
    const where = `${relative('.', file)}:${d.start_location.row}:${d.start_location.column}`;
    console.log(`${where} ${d.code ?? 'syntax'} ${d.message}`);
  }
}
if (findings) {
  console.error(`lint-python: ${findings} finding(s)`);
  process.exit(1);
}
console.log(`lint-python: clean (Ruff ${Workspace.version()})`);
