// A real daemon on a free port, real websocket clients, the real img2img pipeline on the embedded default model.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { VidpriorClient, type JobStream } from '../../protocol/client.js';
import type { Frame } from '../../protocol/messages.js';
import { startTestDaemon, testPng, type TestDaemon } from './helpers.js';

let d: TestDaemon;
before(async () => {
  d = await startTestDaemon();
});
after(async () => {
  await d.close();
});

const params = { prompt: 'an ink drawing', steps: 4, strength: 0.5, seed: 3 };
const frames = (n: number) =>
  Promise.all(Array.from({ length: n }, async (_, i) => ({ name: `f${i}.png`, png: await testPng(i, 64, 64) })));

function collect(job: JobStream): Frame[] {
  const got: Frame[] = [];
  job.onFrame = (f) => got.push(f);
  return got;
}

test('a stylize job streams every frame back, then done; the job is listed with its outputs', async () => {
  const c = await d.connect();
  assert.ok(c.welcome.capabilities.includes('kind:stylize'));
  assert.equal(c.welcome.model, 'embedded-default');
  const job = await c.submit({ kind: 'stylize', params, frames: await frames(3), name: 'three' });
  const got = collect(job);
  const stages = new Set<string>();
  job.onProgress = (p) => stages.add(p.stage);
  const done = await job.done;
  assert.deepEqual(
    got.map((f) => [f.index, f.name, f.replay]),
    [
      [0, 'f0.png', false],
      [1, 'f1.png', false],
      [2, 'f2.png', false],
    ],
  );
  for (const f of got) {
    const meta = await sharp(f.png).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 64, 64]);
  }
  assert.deepEqual(done.outputs.names, ['f0.png', 'f1.png', 'f2.png']);
  assert.ok(stages.has('denoising'), `stages seen: ${[...stages]}`);
  const detail = await c.getJob(job.id);
  assert.equal(detail.state, 'done');
  assert.equal(detail.name, 'three');
  assert.deepEqual(detail.outputs, ['f0.png', 'f1.png', 'f2.png']);
  assert.equal(detail.params.strength, 0.5);
  assert.equal(detail.params.guidance, 7.5, 'defaults are filled in');
  assert.ok((await c.listJobs()).some((j) => j.id === job.id && j.state === 'done'));
  assert.ok((await c.listJobs({ state: 'failed' })).every((j) => j.id !== job.id));

  // The same job again gives the same frames (fixed noise from the seed).
  const again = await c.submit({ kind: 'stylize', params, frames: await frames(3) });
  const got2 = collect(again);
  await again.done;
  assert.deepEqual(
    got2.map((f) => Buffer.from(f.png).toString('hex')),
    got.map((f) => Buffer.from(f.png).toString('hex')),
  );
});

test('edit-keyframe streams one candidate per seed', async () => {
  const c = await d.connect();
  const job = await c.submit({
    kind: 'edit-keyframe',
    params: { prompt: 'ink', steps: 4, candidates: 2, seed: 5, frame: 1 },
    frames: await frames(2),
  });
  const got = collect(job);
  await job.done;
  assert.deepEqual(
    got.map((f) => [f.index, f.name, f.seed]),
    [
      [0, 'candidate-0-seed5.png', 5],
      [1, 'candidate-1-seed6.png', 6],
    ],
  );
  assert.notEqual(Buffer.from(got[0]!.png).toString('hex'), Buffer.from(got[1]!.png).toString('hex'));
});

test('cancel stops a running job at the next step; finished frames stay; the daemon takes the next job', async () => {
  const c = await d.connect();
  const job = await c.submit({
    kind: 'stylize',
    params: { ...params, steps: 40, strength: 1 },
    frames: await frames(6),
  });
  const got = collect(job);
  await new Promise<void>((resolve) => {
    job.onFrame = (f) => {
      got.push(f);
      resolve();
    };
  });
  await c.cancel(job.id);
  await assert.rejects(job.done, (e: Error & { code?: string }) => e.code === 'E_CANCELLED');
  const detail = await c.getJob(job.id);
  assert.equal(detail.state, 'cancelled');
  assert.equal(detail.error?.code, 'E_CANCELLED');
  assert.ok(got.length >= 1 && got.length < 6, `frames before the cancel: ${got.length}`);
  assert.equal(detail.outputs.filter(Boolean).length, detail.frames_done);
  await c.cancel(job.id); // cancelling a finished job is fine and changes nothing
  const next = await c.submit({ kind: 'stylize', params, frames: await frames(1) });
  await next.done;
});

test('a second client attaches to a running job: missed frames are replayed, then live events, each frame once', async () => {
  const a = await d.connect();
  const job = await a.submit({
    kind: 'stylize',
    params: { ...params, steps: 12, strength: 1 },
    frames: await frames(4),
  });
  const fromA = collect(job);
  await new Promise<void>((resolve) => {
    job.onFrame = (f) => {
      fromA.push(f);
      resolve();
    };
  });
  job.onFrame = (f) => fromA.push(f);
  const b = await d.connect();
  const attached = await b.attach(job.id);
  const fromB = collect(attached);
  assert.equal(attached.job.id, job.id);
  await Promise.all([job.done, attached.done]);
  assert.deepEqual(fromB.map((f) => f.index).sort(), [0, 1, 2, 3]);
  assert.ok(fromB[0]!.replay, 'the first frame was finished before the attach');
  for (const f of fromB) assert.deepEqual(Buffer.from(f.png), Buffer.from(fromA.find((x) => x.index === f.index)!.png));

  // Attaching to a finished job: everything replayed, then done again; from_index skips the start.
  const c = await d.connect();
  const late = await c.attach(job.id, { fromIndex: 2 });
  const fromC = collect(late);
  const done = await late.done;
  assert.deepEqual(
    fromC.map((f) => [f.index, f.replay]),
    [
      [2, true],
      [3, true],
    ],
  );
  assert.equal(done.outputs.frames, 4);
});

test('a client disconnect does not cancel its job', async () => {
  const a = await d.connect();
  const job = await a.submit({ kind: 'stylize', params, frames: await frames(2) });
  await a.close();
  const b = await d.connect();
  const attached = await b.attach(job.id);
  const done = await attached.done;
  assert.equal(done.outputs.frames, 2);
});

test('the whole method (run): fine-tune on the clip and its edit, publish the adapter, stylize with it', async () => {
  const c = await d.connect();
  const before = await c.listModels();
  assert.equal(before.models[0]!.name, 'embedded-default');
  assert.equal(before.models[0]!.default, true);
  const job = await c.submit({
    kind: 'run',
    params: { ...params, iters: 4, train_frames: 2, checkpoint_every: 2, adapter_name: 'ink-test' },
    frames: await frames(3),
    edits: [{ frame: 1, png: await testPng(9, 64, 64) }],
  });
  const got = collect(job);
  const training: number[] = [];
  const jobDir = join(d.dataDir, 'jobs', job.id);
  const checkpointsWhileStylizing: string[][] = [];
  job.onProgress = (p) => {
    if (p.stage === 'training' && p.iteration) training.push(p.iteration);
    if (p.stage === 'denoising' && existsSync(join(jobDir, 'adapters')))
      checkpointsWhileStylizing.push(readdirSync(join(jobDir, 'adapters')));
  };
  const done = await job.done;
  assert.equal(done.outputs.adapter, 'ink-test');
  // Training checkpoints are gone once the adapter is published; the job folder keeps only its outputs and record.
  assert.ok(checkpointsWhileStylizing.length > 0 && checkpointsWhileStylizing.every((f) => f.length === 0));
  assert.deepEqual(readdirSync(jobDir).sort(), ['outcome.json', 'outputs', 'spec.json', 'state.json']);
  assert.deepEqual(
    got.map((f) => f.index),
    [0, 1, 2],
  );
  assert.ok(training.length > 0 && training.at(-1)! <= 4, `training iterations reported: ${training}`);
  const { adapters } = await c.listModels();
  assert.ok(
    adapters.some((a) => a.name === 'ink-test' && a.bytes > 0 && a.job === job.id && a.prompt === params.prompt),
    JSON.stringify(adapters),
  );
  // The published adapter is usable by name in a later stylize job.
  const styled = await c.submit({
    kind: 'stylize',
    params: { ...params, adapter: 'ink-test' },
    frames: await frames(1),
  });
  const withAdapter = collect(styled);
  await styled.done;
  assert.equal(withAdapter.length, 1);
});

test('two clients submitting at once are served in order (FIFO, one worker)', async () => {
  const [a, b] = await Promise.all([d.connect(), d.connect()]);
  const ja = await a.submit({ kind: 'stylize', params, frames: await frames(2) });
  const jb = await b.submit({ kind: 'stylize', params, frames: await frames(1) });
  const [da, db] = await Promise.all([ja.done, jb.done]);
  assert.ok(da && db);
  const [sa, sb] = await Promise.all([a.getJob(ja.id), a.getJob(jb.id)]);
  assert.ok(sa.finished_at! <= sb.started_at!, 'the second job starts after the first finished');
});

test('delete_job removes a finished job and its folder; a running one must be cancelled first', async () => {
  const c = await d.connect();
  const job = await c.submit({
    kind: 'stylize',
    params: { ...params, steps: 40, strength: 1 },
    frames: await frames(3),
  });
  await assert.rejects(c.deleteJob(job.id), (e: Error & { code?: string }) => e.code === 'E_BUSY');
  await c.cancel(job.id);
  await job.done.catch(() => {});
  const dir = d.daemon.queue.get(job.id).dir;
  await c.deleteJob(job.id);
  assert.ok(!existsSync(dir));
  await assert.rejects(c.getJob(job.id), (e: Error & { code?: string }) => e.code === 'E_NOT_FOUND');
  assert.ok((await c.listJobs()).every((j) => j.id !== job.id));
});

test('a client that cannot reach the daemon gets E_CONNECTION', async () => {
  await assert.rejects(
    VidpriorClient.connect('ws://127.0.0.1:1/'),
    (e: Error & { code?: string }) => e.code === 'E_CONNECTION',
  );
});
