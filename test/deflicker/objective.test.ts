/**
 * The deflicker losses as graphs, checked against the same formulas computed here on the host, and their
 * gradient against finite differences (the backward pass the training step relies on).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { appendLoss, type LossConfig } from '../../src/deflicker/objective.js';
import { DVP_OPSET } from '../../src/deflicker/network.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { encodeModel } from '../../src/onnx/codec.js';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import type { Tensor } from '../../src/tensor.js';
import { checkCase, randomTensor } from '../autodiff/gradcheck.js';

const [B, H, W] = [2, 8, 12];

/** mean |v| / 2 of a [B, C, h, w] array. */
function meanAbs(v: Float32Array): number {
  let s = 0;
  for (const x of v) s += Math.abs(x);
  return (0.5 * s) / v.length;
}

function host(cfg: LossConfig, y: Float32Array, p: Float32Array, x: Float32Array, irt: number): number {
  const plane = H * W;
  if (!cfg.irt) {
    const d = y.map((v, i) => v - p[i]!);
    const loss = meanAbs(d);
    let level = d;
    let [h, w] = [H, W];
    let terms = 0;
    for (let s = 0; s < cfg.gradientScales; s++) {
      if (s > 0) {
        const [h2, w2] = [Math.floor(h / 2), Math.floor(w / 2)];
        const next = new Float32Array(B * 3 * h2 * w2);
        for (let c = 0; c < B * 3; c++)
          for (let yy = 0; yy < h2; yy++)
            for (let xx = 0; xx < w2; xx++) {
              const at = (dy: number, dx: number) => level[c * h * w + (2 * yy + dy) * w + 2 * xx + dx]!;
              next[c * h2 * w2 + yy * w2 + xx] = (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4;
            }
        [level, h, w] = [next, h2, w2];
      }
      const gx: number[] = [];
      const gy: number[] = [];
      for (let c = 0; c < B * 3; c++)
        for (let yy = 0; yy < h; yy++)
          for (let xx = 0; xx < w; xx++) {
            const v = level[c * h * w + yy * w + xx]!;
            if (xx + 1 < w) gx.push(level[c * h * w + yy * w + xx + 1]! - v);
            if (yy + 1 < h) gy.push(level[c * h * w + (yy + 1) * w + xx]! - v);
          }
      terms += meanAbs(Float32Array.from(gx)) + meanAbs(Float32Array.from(gy));
    }
    return loss + cfg.gradientWeight * terms;
  }
  // IRT: y has 6 channels per frame.
  let [mainIrt, minorIrt, mainAll, minorAll] = [0, 0, 0, 0];
  for (let b = 0; b < B; b++)
    for (let i = 0; i < plane; i++) {
      let [em, en] = [0, 0];
      for (let c = 0; c < 3; c++) {
        const bright = 0.5 * (x[(b * 3 + c) * plane + i]! + 1.2);
        const target = p[(b * 3 + c) * plane + i]!;
        em = Math.max(em, Math.abs(y[(b * 6 + c) * plane + i]! - target) / bright);
        en = Math.max(en, Math.abs(y[(b * 6 + 3 + c) * plane + i]! - target) / bright);
      }
      const conf = em < en ? 1 : 0;
      for (let c = 0; c < 3; c++) {
        const target = p[(b * 3 + c) * plane + i]!;
        const dm = Math.abs(y[(b * 6 + c) * plane + i]! - target);
        const dn = Math.abs(y[(b * 6 + 3 + c) * plane + i]! - target);
        mainIrt += dm * conf;
        minorIrt += dn * (1 - conf);
        mainAll += dm;
        minorAll += dn;
      }
    }
  const n = B * 3 * plane;
  const irtLoss = (0.5 * (mainIrt + minorIrt)) / n;
  const initLoss = (0.5 * (mainAll + 0.9 * minorAll)) / n;
  return irt * irtLoss + (1 - irt) * initLoss;
}

function lossGraph(cfg: LossConfig): { b: GraphBuilder; irt?: string } {
  const b = new GraphBuilder('loss', { opset: DVP_OPSET });
  const k = cfg.irt ? 6 : 3;
  const y = b.input('y', 'float32', [B, k, H, W]);
  const p = b.input('p', 'float32', [B, 3, H, W]);
  const x = b.input('x', 'float32', [B, 3, H, W]);
  const { loss, irtSwitch } = appendLoss(b, cfg, { prediction: y, processed: p, original: x }, { height: H, width: W });
  b.output(loss, 'loss', 'float32', []);
  return { b, irt: irtSwitch };
}

describe('deflicker: losses', () => {
  let rt: Runtime;
  before(async () => {
    rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  });
  after(async () => {
    await rt.close();
  });

  const cases: [string, LossConfig][] = [
    ['L1 only', { irt: false, gradientWeight: 0, gradientScales: 3 }],
    ['L1 + multi-scale gradient term', { irt: false, gradientWeight: 0.7, gradientScales: 3 }],
    ['IRT', { irt: true, gradientWeight: 0, gradientScales: 1 }],
  ];
  for (const [label, cfg] of cases) {
    it(`${label}: the graph computes the documented formula`, async () => {
      const { b, irt } = lossGraph(cfg);
      const session = await rt.createSession(encodeModel(b.model));
      try {
        const y = randomTensor([B, cfg.irt ? 6 : 3, H, W], 1, [-1, 1]);
        const p = randomTensor([B, 3, H, W], 2, [-1, 1]);
        const x = randomTensor([B, 3, H, W], 3, [-1, 1]);
        for (const sw of cfg.irt ? [0, 1] : [0]) {
          const feeds: Record<string, Tensor> = { y, p, x };
          if (irt) feeds[irt] = { type: 'float32', dims: [], data: Float32Array.of(sw) };
          const got = ((await session.run(feeds)).loss as Tensor<'float32'>).data[0]!;
          const want = host(cfg, y.data, p.data, x.data, sw);
          assert.ok(Math.abs(got - want) < 1e-5 * Math.max(1, Math.abs(want)), `${got} vs ${want} (irt ${sw})`);
        }
      } finally {
        await session.release();
      }
    });
  }

  it('the gradient of each loss matches finite differences', async () => {
    for (const [, cfg] of cases.slice(1)) {
      await checkCase(rt, 'deflicker-loss', {
        opset: DVP_OPSET,
        inputs: {
          pred: { dims: [B, cfg.irt ? 6 : 3, H, W], range: [-1, 1] },
          p: { dims: [B, 3, H, W], range: [-1, 1], wrt: false },
          x: { dims: [B, 3, H, W], range: [-1, 1], wrt: false },
        },
        build: (b, v) =>
          appendLoss(
            b,
            cfg,
            { prediction: v.pred!, processed: v.p!, original: v.x!, irtSwitch: b.scalar(1) },
            { height: H, width: W },
          ).loss,
        // |·| has a kink at 0 and the IRT mask switches at ties: a small step keeps random data away from both.
        eps: 1e-3,
      });
    }
  });
});
