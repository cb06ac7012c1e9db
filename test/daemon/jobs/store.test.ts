// The job store's ids and order: ids that do not collide, a create that never writes into an existing folder,
// and a restart that runs the queue in the order jobs were submitted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { JOB_ID } from '../../../protocol/messages.js';
import { JobStore, newJobId, type NewJob } from '../../../daemon/jobs/store.js';
import { startTestDaemon, tempDir, testPng } from '../helpers.js';
import { scriptedExecutor } from '../scripted-executor.js';

const job = (name: string): NewJob => ({
  kind: 'stylize',
  params: { prompt: name },
  name,
  inputs: [{ name: 'f.png', data: { bytes: new Uint8Array([1, 2, 3]) }, ext: 'png' }],
  edits: [],
  width: 8,
  height: 8,
  outputs: ['f.png'],
  origin: { via: 'socket' },
});

test('job ids made in the same second do not collide: 20,000 are all different and all valid', () => {
  const now = new Date('2026-12-04T10:00:00Z');
  const ids = Array.from({ length: 20_000 }, () => newJobId(now));
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids.slice(0, 100)) assert.match(id, JOB_ID);
  assert.match('j-20261125-142301-3fa9c2', JOB_ID, 'ids of older daemons stay valid');
});

test('create never writes into an existing job folder: a colliding id is drawn again', async () => {
  const dataDir = tempDir('store-ids');
  try {
    const same = 'j-20261204-100000-0123456789abcdef';
    const draws = [same, same, 'j-20261204-100000-fedcba9876543210'];
    const store = new JobStore(dataDir, { newId: () => draws.shift()! });
    await store.init();
    const a = await store.create(job('first'));
    const b = await store.create(job('second'));
    assert.equal(a.spec.id, same);
    assert.equal(b.spec.id, 'j-20261204-100000-fedcba9876543210');
    const spec = JSON.parse(readFileSync(join(dataDir, 'jobs', same, 'spec.json'), 'utf8'));
    assert.equal(spec.name, 'first', 'the first job is untouched');
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('after a restart the queue runs in submission order (FIFO), not in id order', { timeout: 60_000 }, async () => {
  const dataDir = tempDir('store-fifo');
  try {
    const gate = scriptedExecutor(() => testPng(0, 8, 8));
    gate.gate(0);
    const first = await startTestDaemon({ dataDir, executors: [gate] });
    const c = await first.connect();
    const names = ['running', ...Array.from({ length: 8 }, (_, i) => `queued-${i}`)];
    for (const name of names)
      await c.submit({ kind: 'stylize', params: { prompt: name }, name, frames: [{ png: await testPng(0, 8, 8) }] });
    await gate.waiting();
    await first.close();

    const ran: string[] = [];
    const recorder = scriptedExecutor(() => testPng(0, 8, 8));
    const run = recorder.run.bind(recorder);
    recorder.run = (ctx) => {
      ran.push(ctx.spec.name ?? '');
      return run(ctx);
    };
    const second = await startTestDaemon({ dataDir, executors: [recorder] });
    try {
      for (let i = 0; i < 200 && ran.length < names.length; i++) await new Promise((r) => setTimeout(r, 25));
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(ran, names);
    } finally {
      await second.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
