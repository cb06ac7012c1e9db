/**
 * Training the deflicker network: the U-Net's size, the loss going down, the early-stopping rule, cancel and
 * a resume that gives the uninterrupted run's weights bit for bit. Tiny sizes: seconds on a CPU.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildDvpNet, countParams } from '../../src/deflicker/network.js';
import {
  type DeflickerTrainOptions,
  TRAIN_DEFAULTS,
  type TrainingFrames,
  frameToBytes,
  isEightBit,
  shouldStopEarly,
  trainDeflicker,
} from '../../src/deflicker/train.js';
import { readFrame } from '../../src/io/frames.js';
import { Rng } from '../../src/random.js';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';

/** Frames of a moving gradient; processed = a colour grade with per-frame brightness jitter. */
function clip(n: number, w = 32, h = 16): TrainingFrames {
  const original: Float32Array[] = [];
  const processed: Float32Array[] = [];
  const rng = new Rng(5);
  for (let t = 0; t < n; t++) {
    const o = new Float32Array(3 * w * h);
    const p = new Float32Array(3 * w * h);
    const jitter = 0.3 * (rng.uniform() - 0.5);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const i = c * w * h + y * w + x;
          o[i] = Math.sin((x + t) / 5 + c) * Math.cos(y / 4);
          p[i] = Math.max(-1, Math.min(1, 0.8 * o[i]! + 0.1 * (c - 1) + jitter));
        }
    original.push(o);
    processed.push(p);
  }
  return { original, processed, width: w, height: h };
}

const tiny: DeflickerTrainOptions = {
  ...TRAIN_DEFAULTS,
  width: 4,
  scales: 3,
  epochs: 4,
  lr: 2e-3,
  earlyStop: null,
  checkpointEvery: 0,
};

describe('deflicker: network and training', () => {
  let rt: Runtime;
  let work: string;
  before(async () => {
    rt = await openRuntime({ ep: 'cpu' });
    work = mkdtempSync(join(tmpdir(), 'vidprior-deflicker-train-'));
  });
  after(async () => {
    await rt.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('the DVP-sized U-Net has 1–10 M parameters at widths 16 and 32; IRT adds three output channels', () => {
    const size = { batch: 1, height: 32, width: 32 };
    const w32 = countParams(buildDvpNet({ width: 32, scales: 5, outputs: 1, seed: 0 }, size).params);
    const w16 = countParams(buildDvpNet({ width: 16, scales: 5, outputs: 1, seed: 0 }, size).params);
    assert.ok(w32 > 7e6 && w32 < 10e6, `width 32: ${w32}`);
    assert.ok(w16 > 1e6 && w16 < 3e6, `width 16: ${w16}`);
    const irt = buildDvpNet({ width: 16, scales: 5, outputs: 2, seed: 0 }, size);
    assert.deepEqual(irt.model.graph.outputs[0]!.shape, [1, 6, 32, 32]);
    assert.throws(
      () => buildDvpNet({ width: 16, scales: 5, outputs: 1, seed: 0 }, { batch: 1, height: 24, width: 32 }),
      /multiples of 16/,
    );
    assert.throws(() => buildDvpNet({ width: 2, scales: 5, outputs: 1, seed: 0 }, size), /width must be/);
  });

  it('the loss goes down, with and without IRT, batch 1 and 2', async () => {
    for (const o of [tiny, { ...tiny, batch: 2 }, { ...tiny, irt: true, irtInitEpochs: 1, epochs: 5 }]) {
      const r = await trainDeflicker(rt, clip(4), o);
      assert.equal(r.epochsRun, o.epochs);
      assert.equal(r.epochLosses.length, o.epochs - (o.irt ? o.irtInitEpochs : 0));
      assert.ok(r.epochLosses.at(-1)! < r.epochLosses[0]!, `losses ${r.epochLosses}`);
      assert.ok(r.weights.get('out.weight')!.data.length > 0);
    }
  });

  it('early stopping: a plateau over `patience` epochs ends training, never before `minEpochs`', () => {
    const rule = { patience: 3, minImprovement: 0.02, minEpochs: 5 };
    assert.equal(shouldStopEarly([1, 0.5, 0.4, 0.35], rule), false, 'too few epochs');
    assert.equal(shouldStopEarly([1, 0.5, 0.4, 0.3, 0.2, 0.1], rule), false, 'still improving');
    assert.equal(shouldStopEarly([1, 0.5, 0.4, 0.399, 0.398, 0.397], rule), true, 'plateau');
    assert.equal(shouldStopEarly([1, 0.5, 0.4, 0.45, 0.5, 0.41], rule), true, 'worse');
  });

  it('cancel keeps a checkpoint; resuming from it gives the uninterrupted weights bit for bit', async () => {
    const frames = clip(3);
    const o = { ...tiny, epochs: 3, checkpointEvery: 2 };
    const whole = await trainDeflicker(rt, frames, { ...o, checkpointPath: join(work, 'whole.safetensors') });
    const path = join(work, 'cut.safetensors');
    const abort = new AbortController();
    await assert.rejects(
      trainDeflicker(rt, frames, {
        ...o,
        checkpointPath: path,
        signal: abort.signal,
        onProgress: (p) => {
          if (p.stage === 'training' && p.step === 5) abort.abort();
        },
      }),
      (e: Error & { code?: string }) => e.code === 'E_CANCELLED',
    );
    assert.ok(existsSync(path), 'a cancelled run leaves its checkpoint');
    const resumed = await trainDeflicker(rt, frames, { ...o, checkpointPath: path, resume: true });
    assert.equal(resumed.startStep, 5);
    assert.deepEqual(resumed.epochLosses, whole.epochLosses);
    for (const [name, w] of whole.weights) assert.deepEqual(resumed.weights.get(name)!.data, w.data, name);
    // Another setting (or other frames) is not this run's checkpoint.
    await assert.rejects(
      trainDeflicker(rt, frames, { ...o, lr: 1e-3, checkpointPath: path, resume: true }),
      /made with other frames or settings/,
    );
  });

  it('frames read from 8-bit images are kept as bytes and train to the same weights as their floats', async () => {
    const read = async (i: number) =>
      (await readFrame(join('examples', 'clip', `frame_00${i}.png`), { resize: { width: 32, height: 16 } })).data;
    const floats = {
      original: [await read(1), await read(2)],
      processed: [await read(3), await read(4)],
      width: 32,
      height: 16,
    };
    for (const f of [...floats.original, ...floats.processed]) assert.ok(isEightBit(f));
    assert.equal(isEightBit(Float32Array.of(0.1234)), false);
    const bytes = {
      ...floats,
      original: floats.original.map(frameToBytes),
      processed: floats.processed.map(frameToBytes),
    };
    const [a, b] = [
      await trainDeflicker(rt, floats, { ...tiny, epochs: 1 }),
      await trainDeflicker(rt, bytes, { ...tiny, epochs: 1 }),
    ];
    for (const [name, w] of a.weights) assert.deepEqual(b.weights.get(name)!.data, w.data, name);
  });

  it('bad options name the value', async () => {
    await assert.rejects(
      trainDeflicker(rt, clip(2), { ...tiny, epochs: 0 }),
      /epochs must be a whole number ≥ 1, got 0/,
    );
    await assert.rejects(trainDeflicker(rt, clip(2), { ...tiny, batch: 100 }), /batch must be/);
    await assert.rejects(trainDeflicker(rt, { ...clip(2), processed: [] }, tiny), /as many processed frames/);
  });
});
