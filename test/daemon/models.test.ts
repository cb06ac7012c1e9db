/**
 * The daemon serving a diffusers folder (converted on first use) and offering other models in `list_models`:
 * a job may name one by that name (the daemon switches to it), a name it does not offer is E_NOT_FOUND at
 * submit.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { overrideConfig } from '../../src/config.js';
import { resolveConfig } from '../../src/models/builder/folder.js';
import { writeDiffusersFolder } from '../../src/models/builder/write-checkpoint.js';
import { type TestDaemon, TEST_CACHE, startTestDaemon, tempDir, testPng } from './helpers.js';

let work: string;
let d: TestDaemon;
let folder: string;

before(async () => {
  work = tempDir('daemon-models');
  folder = join(work, 'tiny-diffusers');
  await writeDiffusersFolder(folder, resolveConfig('tiny'), { seed: 2 });
  d = await startTestDaemon({ model: folder });
  // Converted models go to this test's own cache (the embedded default stays in the shared test cache).
  overrideConfig({ cacheDir: join(work, 'cache') });
});

after(async () => {
  await d?.close();
  overrideConfig({ cacheDir: TEST_CACHE });
  rmSync(work, { recursive: true, force: true });
});

test('a diffusers folder is served (converted on first use); jobs can switch to a model list_models offers', {
  timeout: 120_000,
}, async () => {
  const c = await d.connect();
  const before = await c.listModels();
  assert.equal(before.models[0]!.name, folder);
  assert.equal(before.models[0]!.default, true);
  assert.match(before.models[0]!.description, /diffusers folder/);
  assert.ok(before.models.some((m) => m.name === 'embedded-default' && !m.default));

  const params = { prompt: 'ink', steps: 4, strength: 0.5 };
  const first = await c.submit({ kind: 'stylize', params, frames: [{ png: await testPng(1) }] });
  assert.equal((await first.done).outputs.frames, 1);
  const loaded = await c.listModels();
  assert.equal(loaded.models[0]!.loaded, true);

  const other = await c.submit({
    kind: 'stylize',
    params: { ...params, model: 'embedded-default' },
    frames: [{ png: await testPng(2) }],
  });
  assert.equal((await other.done).outputs.frames, 1);
  const after = await c.listModels();
  assert.equal(after.models[0]!.loaded, false, 'the default was let go');
  assert.ok(after.models.some((m) => m.name === 'embedded-default' && m.loaded));

  await assert.rejects(
    c.submit({ kind: 'stylize', params: { ...params, model: 'someone/unknown' }, frames: [{ png: await testPng(3) }] }),
    (e: Error & { code?: string }) => e.code === 'E_NOT_FOUND' && /someone\/unknown/.test(e.message),
  );
  // Back to the default with the next job that names none.
  const back = await c.submit({ kind: 'stylize', params, frames: [{ png: await testPng(4) }] });
  await back.done;
  assert.equal((await c.listModels()).models[0]!.loaded, true);
});
