import { test } from 'node:test';
import assert from 'node:assert/strict';
import { disFlow } from '../../src/metrics/flow-dis.js';
import { DisWorkerPool } from '../../src/metrics/flow-worker.js';
import { rgbToGray } from '../../src/metrics/image.js';
import { renderShifted, smoothTexture } from './helpers.js';

test('the worker pool computes the same flow as the main thread, both directions at once', async () => {
  const tex = smoothTexture(5, 8, 40);
  const a = rgbToGray(renderShifted(tex, 48, 40, 0, 0));
  const b = rgbToGray(renderShifted(tex, 48, 40, 1.5, -0.5));
  const pool = new DisWorkerPool(2);
  try {
    const [fw, bw] = await Promise.all([pool.flow(a, b), pool.flow(b, a)]);
    assert.deepEqual(fw.u, disFlow(a, b).u);
    assert.deepEqual(bw.v, disFlow(b, a).v);
    assert.equal(fw.width, 48);
    assert.match(pool.name, /DIS/);
  } finally {
    await pool.close();
  }
});
