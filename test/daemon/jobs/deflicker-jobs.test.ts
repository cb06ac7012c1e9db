/**
 * The daemon's deflicker job: original frames plus the processed version of every frame in, deflickered
 * frames out (named like the inputs); a job without every processed frame is refused at submit.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import type { JobStream } from '../../../protocol/client.js';
import type { Frame } from '../../../protocol/messages.js';
import { parseParams } from '../../../protocol/params.js';
import { DEFLICKER_DEFAULTS } from '../../../src/deflicker/deflicker.js';
import { startTestDaemon, testPng, type TestDaemon } from '../helpers.js';

let d: TestDaemon;
before(async () => {
  d = await startTestDaemon();
});
after(async () => {
  await d.close();
});

const params = { width: 4, scales: 3, epochs: 2, lr: 0.002, working_size: 16 };
const originals = (n: number) =>
  Promise.all(Array.from({ length: n }, async (_, i) => ({ name: `o${i}.png`, png: await testPng(i, 40, 24) })));
const processed = (n: number) =>
  Promise.all(
    Array.from({ length: n }, async (_, i) => ({ frame: n - 1 - i, png: await testPng(n - 1 - i + 7, 40, 24) })),
  );

function collect(job: JobStream): Frame[] {
  const got: Frame[] = [];
  job.onFrame = (f) => got.push(f);
  return got;
}

test('a deflicker job trains, then streams every deflickered frame at the input size', {
  timeout: 300_000,
}, async () => {
  const c = await d.connect();
  assert.ok(c.welcome.capabilities.includes('kind:deflicker'));
  const job = await c.submit({ kind: 'deflicker', params, frames: await originals(3), edits: await processed(3) });
  const got = collect(job);
  const stages = new Set<string>();
  let iterations = 0;
  job.onProgress = (p) => {
    stages.add(p.stage);
    if (p.iterations) iterations = p.iterations;
  };
  const done = await job.done;
  assert.deepEqual(done.outputs.names, ['o0.png', 'o1.png', 'o2.png']);
  assert.deepEqual(
    got.map((f) => f.index),
    [0, 1, 2],
  );
  for (const f of got) {
    const meta = await sharp(f.png).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 40, 24]);
  }
  assert.ok(stages.has('training') && stages.has('applying'), [...stages].join(','));
  assert.equal(iterations, 6, 'two epochs of three frames');
});

test('every frame needs its processed version; the defaults are the library’s', async () => {
  const c = await d.connect();
  await assert.rejects(
    c.submit({ kind: 'deflicker', params, frames: await originals(3), edits: (await processed(3)).slice(1) }),
    /processed version of every frame.*frame 2 has none/,
  );
  await assert.rejects(
    c.submit({ kind: 'deflicker', params: { ...params, width: 1 }, frames: await originals(1) }),
    /width/,
  );
  const p = parseParams('deflicker', {});
  assert.deepEqual(
    [
      p.working_size,
      p.width,
      p.scales,
      p.epochs,
      p.lr,
      p.batch,
      p.apply_batch,
      p.irt,
      p.irt_init_epochs,
      p.gradient_weight,
      p.early_stop,
    ],
    [
      DEFLICKER_DEFAULTS.workingSize,
      DEFLICKER_DEFAULTS.width,
      DEFLICKER_DEFAULTS.scales,
      DEFLICKER_DEFAULTS.epochs,
      DEFLICKER_DEFAULTS.lr,
      DEFLICKER_DEFAULTS.batch,
      DEFLICKER_DEFAULTS.applyBatch,
      DEFLICKER_DEFAULTS.irt,
      DEFLICKER_DEFAULTS.irtInitEpochs,
      DEFLICKER_DEFAULTS.gradientWeight,
      DEFLICKER_DEFAULTS.earlyStop !== null,
    ],
  );
});
