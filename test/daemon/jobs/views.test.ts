/** The wire views of a job record: what list_jobs, get_job, attach and the job's stream say about it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseServerMessage } from '../../../protocol/messages.js';
import { frameEvent, jobDetail, jobSummary, progressEvent, terminalEvent } from '../../../daemon/jobs/views.js';
import type { JobRecord } from '../../../daemon/jobs/store.js';

function record(over: Partial<JobRecord['status']> = {}, kind: 'stylize' | 'finetune' = 'stylize'): JobRecord {
  return {
    dir: '/data/jobs/j-1',
    spec: {
      version: 1,
      id: 'j-1',
      kind,
      params: kind === 'finetune' ? { iters: 40 } : { strength: 0.45 },
      name: 'shot',
      created_at: '2026-12-05T08:00:00.000Z',
      inputs: [
        { name: 'a.png', file: 'in-0.png' },
        { name: 'b.png', file: 'in-1.png' },
      ],
      edits: [],
      width: 64,
      height: 48,
      outputs: kind === 'finetune' ? [] : ['a.png', 'b.png'],
      origin: { via: 'socket' },
    } as JobRecord['spec'],
    status: { state: 'running', stage: 'denoising', fraction: 0.5, elapsed_s: 1.23456, ...over },
    outputDone: kind === 'finetune' ? [] : [true, false],
  };
}

test('a running job: summary, detail and progress count the frames on disk and give its place', () => {
  const job = record();
  const summary = jobSummary(job);
  assert.equal(summary.frames_done, 1);
  assert.equal(summary.frames_total, 2);
  assert.equal(summary.fraction, 0.5);
  assert.equal(summary.name, 'shot');
  const detail = jobDetail(job, { position: 3 });
  assert.deepEqual(detail.outputs, ['a.png', '']);
  assert.equal(detail.position, 3);
  const progress = progressEvent(job, {}, { stage: 'decoding', fraction: 0.6 });
  assert.equal(progress.stage, 'decoding');
  assert.equal(progress.frames_done, 1);
  assert.equal(parseServerMessage({ ...progress }).type, 'progress');
});

test('a training job reports iterations; all of them once done', () => {
  assert.deepEqual(
    [
      jobSummary(record({}, 'finetune'), { iterationsDone: 12 }).iterations_done,
      jobSummary(record({}, 'finetune')).iterations_total,
    ],
    [12, 40],
  );
  assert.equal(jobSummary(record({ state: 'done' }, 'finetune')).iterations_done, 40);
});

test('terminal events: done names the outputs; a failure carries its code; a frame event its name', () => {
  const done = terminalEvent(record({ state: 'done' }));
  assert.equal(done.type, 'done');
  assert.deepEqual(done.type === 'done' && done.outputs.names, ['a.png', 'b.png']);
  assert.equal(done.type === 'done' && done.elapsed_s, 1.235);
  const failed = terminalEvent(record({ state: 'failed', error: { code: 'E_CRASHED', message: 'died twice' } }));
  assert.deepEqual([failed.type, failed.type === 'error' && failed.code], ['error', 'E_CRASHED']);
  const frame = frameEvent(record(), 1, new Uint8Array([1, 2]), true, 7);
  assert.deepEqual([frame.name, frame.replay, frame.seed], ['b.png', true, 7]);
});
