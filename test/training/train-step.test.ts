/**
 * The training step graph on a real export (the shared tiny-sd-torch UNet): its LoRA gradients agree with
 * finite differences of the loss, and one AdamW step moves the parameters as PyTorch's AdamW would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { buildGradients } from '../../src/autodiff/gradients.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, encodeModel } from '../../src/onnx/codec.js';
import { inferShapes } from '../../src/onnx/shape-inference.js';
import { Rng } from '../../src/random.js';
import { openRuntime } from '../../src/runtime/index.js';
import { float32, int64, type Tensor } from '../../src/tensor.js';
import { findLoraTargets, injectLora } from '../../src/training/lora.js';
import { adamScalars, buildTrainStep, DEFAULT_ADAMW } from '../../src/training/train-step.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch/unet/model.onnx';
const skip = existsSync(FIXTURE) ? false : `${FIXTURE} not found (needs ../shared)`;
const LATENT = [1, 4, 8, 8];
const TEXT = [1, 77, 32];

function baseFeeds(rng: Rng): Record<string, Tensor> {
  return {
    sample: float32(LATENT, rng.normalArray(256)),
    timestep: int64([1], [321]),
    encoder_hidden_states: float32(TEXT, rng.normalArray(77 * 32)),
    target: float32(LATENT, rng.normalArray(256)),
  };
}

test('LoRA gradients of the UNet loss agree with finite differences (float32, directional)', {
  skip,
  timeout: 120_000,
}, async () => {
  // Loss graph with gradients as outputs (the same pieces the training step uses, without the optimizer).
  const model = decodeModel(readFileSync(FIXTURE));
  const g = model.graph;
  g.inputs.find((i) => i.name === 'sample')!.shape = [...LATENT];
  g.inputs.find((i) => i.name === 'encoder_hidden_states')!.shape = [...TEXT];
  g.inputs.find((i) => i.name === 'timestep')!.shape = [1];
  const params = injectLora(model, findLoraTargets(model), { rank: 2, alpha: 2, as: 'inputs' });
  const b = new GraphBuilder(model);
  const target = b.input('target', 'float32', LATENT);
  const pred = g.outputs[0]!.name;
  const d = b.op('Sub', [pred, target]);
  const loss = b.op('ReduceMean', [b.op('Mul', [d, d])], { keepdims: 0 });
  g.outputs = [];
  b.output(loss, 'loss', 'float32', []);
  const lossOnly = encodeModel(model);
  inferShapes(model);
  const wrt = params.flatMap((p) => [p.a, p.b]);
  const { gradients } = buildGradients(model, { loss, wrt, builder: b });
  for (const w of wrt) b.output(gradients[w]!, `grad.${w}`, 'float32', null);

  const rt = await openRuntime({ ep: 'cpu' });
  try {
    const withGrads = await rt.createSession(encodeModel(model), {
      label: 'loss+grads',
      disabledOptimizers: ['CommonSubexpressionElimination'],
    });
    const plain = await rt.createSession(lossOnly, { label: 'loss' });
    const rng = new Rng(11);
    const feeds = baseFeeds(rng);
    const values = new Map<string, Float32Array>();
    for (const p of params) {
      values.set(
        p.a,
        rng.normalArray(
          p.aDims.reduce((x, y) => x * y),
          0.2,
        ),
      );
      values.set(
        p.b,
        rng.normalArray(
          p.bDims.reduce((x, y) => x * y),
          0.2,
        ),
      );
    }
    const dimsOf = new Map(
      params.flatMap(
        (p) =>
          [
            [p.a, p.aDims],
            [p.b, p.bDims],
          ] as [string, number[]][],
      ),
    );
    const feedWith = (shift: Map<string, Float32Array> | null, eps: number): Record<string, Tensor> => {
      const f: Record<string, Tensor> = { ...feeds };
      for (const [name, v] of values) {
        const s = shift?.get(name);
        f[name] = float32(dimsOf.get(name)!, s ? v.map((x, i) => x + eps * s[i]!) : v);
      }
      return f;
    };
    const out = await withGrads.run(feedWith(null, 0));
    // Two directions: one over all A tensors, one over all B tensors.
    for (const which of ['A', 'B']) {
      const dir = new Map<string, Float32Array>();
      let analytic = 0;
      for (const [name, v] of values) {
        if (!name.endsWith(`.${which}`)) continue;
        const u = rng.normalArray(v.length);
        dir.set(name, u);
        const grad = out[`grad.${name}`] as Tensor<'float32'>;
        for (let i = 0; i < u.length; i++) analytic += grad.data[i]! * u[i]!;
      }
      const eps = 1e-2;
      const lp = ((await plain.run(feedWith(dir, eps))).loss as Tensor<'float32'>).data[0]!;
      const lm = ((await plain.run(feedWith(dir, -eps))).loss as Tensor<'float32'>).data[0]!;
      const numeric = (lp - lm) / (2 * eps);
      const rel = Math.abs(analytic - numeric) / Math.max(1e-6, Math.abs(numeric));
      assert.ok(rel < 2e-2, `${which}: analytic ${analytic} vs finite differences ${numeric} (relative error ${rel})`);
    }
  } finally {
    await rt.close();
  }
});

test('one training step applies AdamW exactly (first step: p − lr·(sign-like update) − lr·wd·p)', {
  skip,
  timeout: 120_000,
}, async () => {
  const model = decodeModel(readFileSync(FIXTURE));
  const targets = findLoraTargets(model).slice(0, 2);
  const step = buildTrainStep(model, {
    trainable: { kind: 'lora', targets, rank: 2, alpha: 2 },
    latentShape: LATENT,
    textShape: TEXT,
  });
  const rt = await openRuntime({ ep: 'cpu' });
  try {
    const session = await rt.createSession(encodeModel(step.model), {
      label: 'train-step',
      disabledOptimizers: ['CommonSubexpressionElimination'],
    });
    const rng = new Rng(5);
    const feeds: Record<string, Tensor> = baseFeeds(rng);
    const lr = 1e-3;
    const sc = adamScalars(step.adam, lr, 1);
    feeds['adam.lr'] = float32([], [sc.lr]);
    feeds['adam.decay'] = float32([], [sc.decay]);
    feeds['adam.bc1'] = float32([], [sc.bc1]);
    feeds['adam.bc2'] = float32([], [sc.bc2]);
    const start = new Map<string, Float32Array>();
    for (const s of step.state) {
      const v = rng.normalArray(
        s.dims.reduce((x, y) => x * y),
        0.1,
      );
      start.set(s.param, v);
      feeds[s.param] = float32(s.dims, v);
      feeds[s.m] = float32(s.dims);
      feeds[s.v] = float32(s.dims);
    }
    const out = await session.run(feeds);
    assert.ok(Number.isFinite((out.loss as Tensor<'float32'>).data[0]));
    const { beta1, beta2, eps, weightDecay } = DEFAULT_ADAMW;
    for (const s of step.state) {
      const m = (out[s.newM] as Tensor<'float32'>).data;
      const v = (out[s.newV] as Tensor<'float32'>).data;
      const p = (out[s.newParam] as Tensor<'float32'>).data;
      const p0 = start.get(s.param)!;
      for (let i = 0; i < p.length; i++) {
        const g = m[i]! / (1 - beta1); // m1 = (1−β1)·g on the first step
        assert.ok(Math.abs(v[i]! - (1 - beta2) * g * g) <= 1e-6 * Math.max(1, Math.abs(v[i]!)) + 1e-12);
        const mHat = m[i]! / (1 - beta1),
          vHat = v[i]! / (1 - beta2);
        const expected = p0[i]! * (1 - lr * weightDecay) - (lr * mHat) / (Math.sqrt(vHat) + eps);
        assert.ok(Math.abs(p[i]! - expected) < 1e-6, `${s.param}[${i}]: ${p[i]} vs ${expected}`);
      }
    }
  } finally {
    await rt.close();
  }
});
