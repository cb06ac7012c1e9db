// The memory estimate a job is admitted by (src/pipelines/memory.ts): it depends on the working size and the
// batch, never on how many frames the job has.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultJobMemoryLimit, estimateJobMemory } from '../../src/pipelines/memory.js';

const hd = { width: 1920, height: 1080 };

test('the estimate grows with the batch and the working size; a 1080p frame at 896×512 is far below one at its own size', () => {
  const one = estimateJobMemory(hd, { width: 896, height: 512 }, 1).bytes;
  assert.equal(estimateJobMemory(hd, { width: 896, height: 512 }, 4).bytes, 4 * one);
  const own = estimateJobMemory(hd, { width: 1920, height: 1088 }, 1).bytes;
  assert.ok(own > 10 * one, `${own} vs ${one}`);
  // About 1.5 GiB at the default working size of a 1080p frame, under the 4 GiB a daemon must stay below.
  assert.ok(one > 0.5 * 2 ** 30 && one < 3 * 2 ** 30, `${one}`);
  assert.equal(defaultJobMemoryLimit(24 * 2 ** 30), 12 * 2 ** 30);
});
