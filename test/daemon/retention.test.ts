// Nothing outlives its use: a finished job keeps only its record and outputs (input copies, training checkpoints
// and scratch files go at once), and finished jobs are deleted after the retention time, at start and by the
// periodic sweep; queued and running jobs stay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutorContext, JobExecutor } from '../../daemon/jobs/executor.js';
import { RetentionSweeper, sweepInterval } from '../../daemon/retention.js';
import { outputFrameName } from '../../src/io/inputs.js';
import { startTestDaemon, tempDir, testPng } from './helpers.js';
import { scriptedExecutor } from './scripted-executor.js';

const HOUR = 3600_000;

/** A training-like executor: writes a checkpoint into the job's adapters/ folder, then one output per frame. */
const checkpointing: JobExecutor = {
  kind: 'stylize',
  unavailable: () => null,
  plan: ({ inputNames }) => inputNames.map(outputFrameName),
  async run(ctx: ExecutorContext) {
    writeFileSync(join(ctx.adapterDir, 'checkpoint.safetensors'), new Uint8Array(1024));
    for (let i = 0; i < ctx.spec.outputs.length; i++) await ctx.emitFrame(i, await testPng(i, 8, 8));
    return {};
  },
};

test('a finished job keeps its outputs and record only: no inputs, checkpoints or scratch files', {
  timeout: 30_000,
}, async () => {
  const t = await startTestDaemon({ executors: [checkpointing] });
  try {
    const c = await t.connect();
    const job = await c.submit({
      kind: 'stylize',
      params: { prompt: 'x' },
      frames: [
        { name: 'a.png', png: await testPng(0) },
        { name: 'b.png', png: await testPng(1) },
      ],
    });
    await job.done;
    const dir = join(t.dataDir, 'jobs', job.id);
    assert.deepEqual(readdirSync(dir).sort(), ['outcome.json', 'outputs', 'spec.json', 'state.json']);
    assert.deepEqual(readdirSync(join(dir, 'outputs')).sort(), ['a.png', 'b.png']);
    // The outputs can still be replayed.
    const again = await c.attach(job.id, { replay: true });
    let frames = 0;
    again.onFrame = () => frames++;
    await again.done;
    assert.equal(frames, 2);
  } finally {
    await t.close();
  }
});

test('the sweep deletes finished jobs past the retention time, and only them; a restart sweeps at once', {
  timeout: 60_000,
}, async () => {
  const dataDir = tempDir('retention');
  const ex = scriptedExecutor(() => testPng(0, 8, 8));
  try {
    const first = await startTestDaemon({ dataDir, executors: [ex] });
    const c = await first.connect();
    for (let i = 0; i < 3; i++)
      await (await c.submit({ kind: 'stylize', params: { prompt: `${i}` }, frames: [{ png: await testPng(i) }] })).done;
    ex.gate(0);
    const running = await c.submit({ kind: 'stylize', params: { prompt: 'r' }, frames: [{ png: await testPng(5) }] });
    await ex.waiting();
    const queued = await c.submit({ kind: 'stylize', params: { prompt: 'q' }, frames: [{ png: await testPng(6) }] });
    const jobs = () => readdirSync(join(dataDir, 'jobs')).sort();
    assert.equal(jobs().length, 5);
    const sweeper = new RetentionSweeper(first.daemon.queue, 24 * HOUR);
    assert.deepEqual(await sweeper.sweep(), [], 'nothing is past a day yet');
    assert.equal((await sweeper.sweep(Date.now() + 25 * HOUR)).length, 3);
    assert.deepEqual(jobs(), [running.id, queued.id].sort(), 'the running and the queued job stay');
    ex.open();
    await running.done;
    await queued.done;
    await first.close();
    // Folders of submits the daemon died storing (no spec.json): an old one goes, a fresh one may be in progress.
    const stale = 'j-20200101-000000-0123456789abcdef';
    const fresh = 'j-20200101-000000-fedcba9876543210';
    for (const name of [stale, fresh]) mkdirSync(join(dataDir, 'jobs', name, 'inputs'), { recursive: true });
    utimesSync(join(dataDir, 'jobs', stale), new Date(Date.now() - 2 * HOUR), new Date(Date.now() - 2 * HOUR));
    // At the next start, a retention of 1 ms deletes both finished jobs before anything else.
    const second = await startTestDaemon({ dataDir, executors: [ex], retentionMs: 1 });
    try {
      assert.deepEqual(jobs(), [fresh]);
      assert.equal(second.daemon.queue.list().length, 0);
    } finally {
      await second.close();
    }
    assert.ok(existsSync(join(dataDir, 'adapters')), 'published adapters are not the sweep’s');
  } finally {
    ex.open();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('the sweep runs every tenth of the retention, between a minute and an hour', () => {
  assert.equal(sweepInterval(168 * HOUR), HOUR);
  assert.equal(sweepInterval(HOUR), 6 * 60_000);
  assert.equal(sweepInterval(1000), 60_000);
});
