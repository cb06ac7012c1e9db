// A job the daemon died running twice is not resumed a third time: the next start marks it failed (E_CRASHED).
// Starts are counted in the job's durable record; a clean stop does not count as a crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { JobQueue } from '../../daemon/queue.js';
import { JobStore, type NewJob } from '../../daemon/jobs/store.js';
import { ModelHost } from '../../daemon/jobs/model-host.js';
import { tempDir, testPng } from './helpers.js';
import { scriptedExecutor, type ScriptedExecutor } from './scripted-executor.js';

async function newJob(): Promise<NewJob> {
  return {
    kind: 'stylize',
    params: { prompt: 'x' },
    inputs: [{ name: 'a.png', data: { bytes: await testPng(0, 8, 8) }, ext: 'png' }],
    edits: [],
    width: 8,
    height: 8,
    outputs: ['a.png'],
    origin: { via: 'socket' },
  };
}

/** The daemon's queue over `dataDir` without the server (a second one may start while the first is "dead"). */
function queueOn(dataDir: string, ex: ScriptedExecutor): JobQueue {
  const store = new JobStore(dataDir);
  const model = new ModelHost({ embeddedDefault: async () => dataDir, ep: 'cpu', adaptersDir: store.adaptersDir });
  return new JobQueue(store, new Map([['stylize', ex]]), model);
}

const stateOf = (dataDir: string, id: string) =>
  JSON.parse(readFileSync(join(dataDir, 'jobs', id, 'state.json'), 'utf8')) as {
    state: string;
    unfinished_starts?: number;
    error?: { code: string; message: string };
  };

test('two starts without an end, then a third start: the job is failed with E_CRASHED, not run again', {
  timeout: 30_000,
}, async () => {
  const dataDir = tempDir('crash');
  const ex = scriptedExecutor(() => testPng(1, 8, 8));
  const dead: JobQueue[] = [];
  try {
    // 1st start: the job runs, and the daemon "dies" (its queue is abandoned, never stopped).
    ex.gate(0);
    const first = queueOn(dataDir, ex);
    await first.start();
    const record = await first.submit(await newJob());
    const id = record.spec.id;
    await ex.waiting();
    dead.push(first);
    assert.equal(stateOf(dataDir, id).unfinished_starts, 1);
    // 2nd start: resumed, and the daemon dies again.
    ex.gate(0);
    const second = queueOn(dataDir, ex);
    await second.start();
    await ex.waiting();
    dead.push(second);
    assert.equal(stateOf(dataDir, id).unfinished_starts, 2);
    assert.equal(ex.runs, 2);
    // 3rd start: failed at once, never run.
    const third = queueOn(dataDir, ex);
    await third.start();
    const s = stateOf(dataDir, id);
    assert.equal(s.state, 'failed');
    assert.equal(s.error?.code, 'E_CRASHED');
    assert.match(s.error!.message, /2 times the daemon died/);
    assert.equal(third.get(id).status.state, 'failed');
    assert.equal(ex.runs, 2);
    await third.stop();
  } finally {
    ex.open();
    for (const q of dead) await q.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a clean stop is not a crash: stopped and restarted three times, the job still resumes and finishes', {
  timeout: 30_000,
}, async () => {
  const dataDir = tempDir('crash-clean');
  const ex = scriptedExecutor(() => testPng(1, 8, 8));
  try {
    let id = '';
    for (let round = 0; round < 3; round++) {
      ex.gate(0);
      const q = queueOn(dataDir, ex);
      await q.start();
      if (!id) id = (await q.submit(await newJob())).spec.id;
      await ex.waiting();
      await q.stop();
      assert.equal(stateOf(dataDir, id).unfinished_starts, 0, `round ${round}`);
      assert.equal(stateOf(dataDir, id).state, 'running');
    }
    ex.open();
    const q = queueOn(dataDir, ex);
    const done = new Promise<void>((r) => q.onAnyEvent((_j, e) => e.type === 'done' && r()));
    await q.start();
    await done;
    assert.equal(stateOf(dataDir, id).state, 'done');
    await q.stop();
  } finally {
    ex.open();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
