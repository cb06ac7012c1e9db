/**
 * The deflicker pass end to end on tiny real frames (the sample clip, cropped): trained at a reduced working
 * size, applied at full size, frames written in order; the pair must line up.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  DEFLICKER_DEFAULTS,
  type DeflickerOptions,
  deflicker,
  psnr,
  trainingSize,
} from '../../src/deflicker/deflicker.js';
import { flickerFrame } from '../../src/deflicker/flicker-cases.js';
import { readFrame, writeFramePng } from '../../src/io/frames.js';
import { cropFrame, planFit } from '../../src/io/size.js';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import type { Tensor } from '../../src/tensor.js';

const N = 4;
const [W, H] = [40, 28];

/** Std over the frames of each frame's mean brightness: global flicker, cheap to measure. */
function brightnessFlicker(frames: Tensor<'float32'>[]): number {
  const means = frames.map((f) => f.data.reduce((a, v) => a + v, 0) / f.data.length);
  const m = means.reduce((a, v) => a + v, 0) / means.length;
  return Math.sqrt(means.reduce((a, v) => a + (v - m) ** 2, 0) / means.length);
}

describe('deflicker: the whole pass', () => {
  let rt: Runtime;
  let work: string;
  const originals: string[] = [];
  const processed: string[] = [];
  before(async () => {
    rt = await openRuntime({ ep: 'cpu' });
    work = mkdtempSync(join(tmpdir(), 'vidprior-deflicker-'));
    mkdirSync(join(work, 'o'));
    mkdirSync(join(work, 'p'));
    // A 40×28 window of the sample clip (160×120, real frames), processed with per-frame jitter.
    const plan = {
      ...planFit(W, H, 1, 'pad'),
      working: { width: 160, height: 120 },
      pad: { left: 60, top: 46, right: 60, bottom: 46 },
    };
    for (let i = 0; i < N; i++) {
      const frame = cropFrame(await readFrame(join('examples', 'clip', `frame_00${i + 1}.png`)), plan);
      originals.push(join(work, 'o', `f${i}.png`));
      processed.push(join(work, 'p', `f${i}.png`));
      await writeFramePng(originals[i]!, frame);
      await writeFramePng(processed[i]!, flickerFrame('jitter', frame, i, 3));
    }
  });
  after(async () => {
    await rt.close();
    rmSync(work, { recursive: true, force: true });
  });

  const options: DeflickerOptions = {
    ...DEFLICKER_DEFAULTS,
    width: 8,
    scales: 3,
    epochs: 12,
    lr: 2e-3,
    earlyStop: null,
    workingSize: 20,
    applyBatch: 3,
  };

  it('trains at the working size, writes every frame at full size, and steadies the brightness', async () => {
    const written = new Map<number, Tensor<'float32'>>();
    const progress: string[] = [];
    const r = await deflicker(
      rt,
      { originals, processed, width: W, height: H },
      { ...options, onProgress: (p) => progress.push(p.stage) },
      async (i, f) => {
        written.set(i, f);
      },
    );
    assert.deepEqual(r.trainSize, trainingSize(W, H, 20));
    assert.deepEqual(r.trainSize, { width: 29, height: 20 });
    assert.deepEqual([...written.keys()].sort(), [0, 1, 2, 3]);
    for (const f of written.values()) assert.deepEqual(f.dims, [3, H, W]);
    assert.ok(r.psnrToProcessed > 14, `PSNR to processed ${r.psnrToProcessed}`);
    const procFrames = await Promise.all(processed.map((p) => readFrame(p)));
    const outFrames = [0, 1, 2, 3].map((i) => written.get(i)!);
    const origFrames = await Promise.all(originals.map((p) => readFrame(p)));
    const [orig, before, after] = [origFrames, procFrames, outFrames].map(brightnessFlicker) as [
      number,
      number,
      number,
    ];
    // The clip's own brightness changes (the ball) stay; the jitter on top of them goes.
    assert.ok(
      Math.abs(after - orig) < 0.5 * Math.abs(before - orig),
      `brightness flicker: original ${orig}, processed ${before}, result ${after}`,
    );
    for (const s of ['reading', 'building', 'training', 'applying']) assert.ok(progress.includes(s), s);
  });

  it('skips outputs that exist (a resumed job), and refuses pairs that do not line up', async () => {
    const written: number[] = [];
    const r = await deflicker(
      rt,
      { originals, processed, width: W, height: H },
      { ...options, epochs: 1, isDone: (i) => i !== 2 },
      async (i) => {
        written.push(i);
      },
    );
    assert.deepEqual(written, [2]);
    assert.equal(r.framesWritten, 1);
    await assert.rejects(
      deflicker(rt, { originals, processed: processed.slice(1), width: W, height: H }, options, async () => {}),
      /original has 4 frames but the processed video has 3/,
    );
  });

  it('PSNR and the training size', () => {
    const a: Tensor<'float32'> = { type: 'float32', dims: [3, 1, 1], data: Float32Array.of(0, 0, 0) };
    const b: Tensor<'float32'> = { type: 'float32', dims: [3, 1, 1], data: Float32Array.of(0.2, 0.2, 0.2) };
    assert.ok(Math.abs(psnr(a, b) - 20) < 1e-5, 'a 0.1 difference in [0, 1] is 20 dB');
    assert.deepEqual(trainingSize(854, 480, 240), { width: 427, height: 240 });
    assert.deepEqual(trainingSize(854, 480, 0), { width: 854, height: 480 });
    assert.deepEqual(trainingSize(854, 480, 1000), { width: 854, height: 480 });
  });
});
