/** The embedded default model: built once into the cache folder, reused, named by builder version and config. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { overrideConfig } from '../../src/config.js';
import { BUILDER_VERSION } from '../../src/models/builder/index.js';
import { DEFAULT_MODEL_NOTE, defaultModelName, ensureDefaultModel } from '../../src/models/builder/default-model.js';
import { readModelFolder } from '../../src/models/folder.js';

const cache = mkdtempSync(join(tmpdir(), 'vidprior-cache-'));
after(() => rmSync(cache, { recursive: true, force: true }));

test('ensureDefaultModel builds the tiny model once and then reuses it', async () => {
  overrideConfig({ cacheDir: cache });
  let builds = 0;
  const dir = await ensureDefaultModel(() => {
    builds++;
  });
  assert.equal(dir, join(cache, 'models', defaultModelName()));
  assert.match(defaultModelName(), new RegExp(`^tiny-b${BUILDER_VERSION}-[0-9a-f]{10}$`));
  const folder = await readModelFolder(dir);
  assert.equal(folder.scalingFactor, 0.18215);
  const mtime = statSync(folder.onnx.unet).mtimeMs;
  assert.equal(
    await ensureDefaultModel(() => {
      builds++;
    }),
    dir,
  );
  assert.equal(builds, 1);
  assert.equal(statSync(folder.onnx.unet).mtimeMs, mtime);
  // Two at once (a daemon and a CLI run, say) both get a complete folder.
  rmSync(dir, { recursive: true });
  const [a, b] = await Promise.all([ensureDefaultModel(), ensureDefaultModel()]);
  assert.equal(a, b);
  await readModelFolder(a);
});

test('the note says the weights are random and how to use a real model', () => {
  assert.match(DEFAULT_MODEL_NOTE, /random/);
  assert.match(DEFAULT_MODEL_NOTE, /--model/);
  assert.ok(!DEFAULT_MODEL_NOTE.includes('\n'));
});
