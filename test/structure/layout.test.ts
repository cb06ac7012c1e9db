// The house rules that keep the tree navigable, checked on the sources themselves: no import cycles between
// folders, one way into each outside thing (onnxruntime-node only in src/runtime, the environment only in
// src/config.ts), seeded randomness only, and no bare Error throws in the library (every error a user can meet
// carries a code from src/errors.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const CODE_ROOTS = ['src', 'daemon', 'cli', 'protocol', 'bench'];

function sources(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...sources(path));
    else if (name.endsWith('.ts')) found.push(path);
  }
  return found;
}

const files = CODE_ROOTS.flatMap(sources);
const text = new Map(files.map((f) => [f, readFileSync(f, 'utf8')]));
/** Import specifiers of a file, static and dynamic, type-only ones included (they shape the layout too). */
const specifiers = (source: string) => [...source.matchAll(/(?:from|import\()\s*'([^']+)'/g)].map((m) => m[1]!);

test('folders import each other without cycles (a parent and its sub-folder count as two folders)', () => {
  const edges = new Map<string, Set<string>>();
  for (const [file, source] of text) {
    for (const spec of specifiers(source)) {
      if (!spec.startsWith('.')) continue;
      const from = dirname(file);
      const to = dirname(relative('.', resolve(from, spec)));
      if (from === to) continue;
      if (!edges.has(from)) edges.set(from, new Set());
      edges.get(from)!.add(to);
    }
  }
  // Tarjan-free check: a depth-first search that reports the first cycle it closes, as a path.
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (folder: string, path: string[]) => {
    state.set(folder, 'open');
    for (const next of edges.get(folder) ?? []) {
      if (state.get(next) === 'open') cycles.push([...path.slice(path.indexOf(next)), folder, next].join(' → '));
      else if (!state.has(next)) visit(next, [...path, folder]);
    }
    state.set(folder, 'done');
  };
  for (const folder of [...edges.keys()].sort()) if (!state.has(folder)) visit(folder, []);
  assert.deepEqual(cycles, [], `folder import cycles:\n${cycles.join('\n')}`);
});

test('only src/runtime imports onnxruntime-node; only src/config.ts reads the environment', () => {
  const ort = files.filter((f) => specifiers(text.get(f)!).some((s) => s.startsWith('onnxruntime-')));
  assert.deepEqual(
    ort.filter((f) => !f.startsWith(join('src', 'runtime'))),
    [],
    'onnxruntime-node outside src/runtime',
  );
  const env = files.filter((f) => /\bprocess\.env\b/.test(text.get(f)!) && !f.startsWith('bench'));
  assert.deepEqual(env, [join('src', 'config.ts')], 'process.env outside src/config.ts');
});

test('src/ never calls Math.random and throws only VidpriorError', () => {
  const code = (f: string) => text.get(f)!.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
  const lib = files.filter((f) => f.startsWith(`src${'/'}`));
  assert.deepEqual(
    lib.filter((f) => /\bMath\.random\b/.test(code(f))),
    [],
    'Math.random in src/: draw from a seeded generator (src/random.ts)',
  );
  const bare = lib.flatMap((f) =>
    [...code(f).matchAll(/throw new (\w*Error)\(/g)]
      .filter((m) => m[1] !== 'VidpriorError')
      .map((m) => `${f}: throw new ${m[1]}`),
  );
  assert.deepEqual(bare, [], 'bare throws in src/: use VidpriorError with a code from src/errors.ts');
});
