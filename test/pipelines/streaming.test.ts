// Frames stream through the pipeline: a run over N frames decodes a frame only when its batch needs it and has
// handed over every earlier batch by then, so at most `batch` frames are held at once whatever N is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stylizeFrames } from '../../src/pipelines/img2img.js';
import { float32 } from '../../src/tensor.js';
import { tinySetup } from './tiny-model.js';

test('a run of 7 frames with batch 2 reads lazily and never holds more than 2 frames', {
  timeout: 120_000,
}, async () => {
  const setup = await tinySetup();
  try {
    const model = await setup.model('stream');
    for (const batch of [1, 2]) {
      let live = 0;
      let maxLive = 0;
      let handed = 0;
      const readOrder: number[] = [];
      await stylizeFrames(
        model,
        setup.runtime,
        {
          count: 7,
          width: 64,
          height: 64,
          read: (i) => {
            // Every batch before this frame's was handed over before it is read.
            assert.ok(handed >= Math.floor(i / batch) * batch, `frame ${i} read with only ${handed} handed over`);
            readOrder.push(i);
            live++;
            maxLive = Math.max(maxLive, live);
            return float32([3, 64, 64], new Float32Array(3 * 64 * 64).fill((i % 3) / 3));
          },
        },
        () => {
          live--;
          handed++;
        },
        { prompt: 'x', steps: 2, strength: 0.5, guidance: 1, batch },
      );
      assert.deepEqual(readOrder, [0, 1, 2, 3, 4, 5, 6]);
      assert.equal(handed, 7);
      assert.equal(maxLive, batch, `batch ${batch}`);
    }
  } finally {
    await setup.close();
  }
});
