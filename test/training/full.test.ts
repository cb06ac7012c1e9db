/**
 * Full-UNet fine-tuning on the shared real export (tiny-sd-torch):
 * - every diffusers parameter is found exactly once (the reference loads them strictly by these names);
 * - two AdamW steps of the training graph reproduce PyTorch's full fine-tune (full-reference.py: same weights,
 *   same batches, torch.optim.AdamW over every parameter) to 1e-5;
 * - gradient accumulation over two samples gives the batch-2 step; recomputing attention changes nothing;
 * - the memory estimate at SD 1.5 size, and the refusal when a step would not fit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { VidpriorError } from '../../src/errors.js';
import { encodeModel } from '../../src/onnx/codec.js';
import { decodeModel } from '../../src/onnx/codec.js';
import { Rng } from '../../src/random.js';
import { openRuntime } from '../../src/runtime/index.js';
import type { Runtime } from '../../src/runtime/types.js';
import { float32, int64, type Tensor } from '../../src/tensor.js';
import { findFullParams, fromTorchLayout, toTorchLayout } from '../../src/training/full.js';
import { describeMemory, estimateTrainingMemory, checkTrainingMemory } from '../../src/training/memory.js';
import {
  adamScalars,
  buildTrainStep,
  type TrainStepGraph,
  type TrainStepOptions,
} from '../../src/training/train-step.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch/unet/model.onnx';
const skip = existsSync(FIXTURE) ? false : `${FIXTURE} not found (needs ../shared)`;
const TEXT = [1, 77, 32];

interface Reference {
  lr: number;
  weight_decay: number;
  parameters: number;
  steps: { timestep: number; sample: number[]; context: number[]; target: number[]; loss: number }[];
  params: Record<
    string,
    { dims: number[]; idx: number[]; weight: number[]; delta: number[]; m: number[]; v: number[] }
  >;
}
const REF = JSON.parse(readFileSync('test/training/full-reference.json', 'utf8')) as Reference;

function fixtureStep(
  options: Omit<TrainStepOptions, 'trainable' | 'textShape'> & { textShape?: number[] },
): TrainStepGraph {
  const model = decodeModel(readFileSync(FIXTURE));
  return buildTrainStep(model, { trainable: { kind: 'full' }, textShape: TEXT, ...options });
}

/** Runs steps of a full-mode graph from Δ = 0, feeding back its state; returns losses and the final state. */
async function runSteps(
  rt: Runtime,
  step: TrainStepGraph,
  batches: { sample: Float32Array; context: Float32Array; target: Float32Array; t: number; apply?: boolean }[],
  lr: number,
  accumulate = 1,
): Promise<{ losses: number[]; state: Map<string, Float32Array> }> {
  const session = await rt.createSession(encodeModel(step.model), {
    label: 'full-step',
    disabledOptimizers: ['CommonSubexpressionElimination'],
  });
  const latent = step.model.graph.inputs.find((i) => i.name === 'sample')!.shape as number[];
  const text = [latent[0]!, ...TEXT.slice(1)];
  const state = new Map<string, Float32Array>();
  for (const s of step.state)
    for (const n of [s.param, s.m, s.v, ...(s.acc ? [s.acc] : [])])
      state.set(n, new Float32Array(s.dims.reduce((a, b) => a * b, 1)));
  const losses: number[] = [];
  let adamStep = 1;
  try {
    for (const batch of batches) {
      const sc = adamScalars(step.adam, lr, adamStep);
      const feeds: Record<string, Tensor> = {
        sample: float32(latent, batch.sample),
        encoder_hidden_states: float32(text, batch.context),
        target: float32(latent, batch.target),
        timestep: int64([1], [batch.t]),
        'adam.lr': float32([], [sc.lr]),
        'adam.decay': float32([], [sc.decay]),
        'adam.decay_complement': float32([], [sc.decayComplement]),
        'adam.bc1': float32([], [sc.bc1]),
        'adam.bc2': float32([], [sc.bc2]),
      };
      if (step.inputs.apply) {
        feeds['adam.apply'] = float32([], [batch.apply ? 1 : 0]);
        feeds['adam.grad_scale'] = float32([], [1 / accumulate]);
      }
      for (const s of step.state)
        for (const n of [s.param, s.m, s.v, ...(s.acc ? [s.acc] : [])]) feeds[n] = float32(s.dims, state.get(n)!);
      const out = await session.run(feeds);
      losses.push((out.loss as Tensor<'float32'>).data[0]!);
      for (const s of step.state) {
        state.set(s.param, (out[s.newParam] as Tensor<'float32'>).data as Float32Array);
        state.set(s.m, (out[s.newM] as Tensor<'float32'>).data as Float32Array);
        state.set(s.v, (out[s.newV] as Tensor<'float32'>).data as Float32Array);
        if (s.acc) state.set(s.acc, (out[s.newAcc!] as Tensor<'float32'>).data as Float32Array);
      }
      if (!step.inputs.apply || batch.apply) adamStep++;
    }
  } finally {
    await session.release();
  }
  return { losses, state };
}

test('every diffusers parameter of the fixture is found once, named as diffusers names it', { skip }, () => {
  const params = findFullParams(decodeModel(readFileSync(FIXTURE)));
  assert.deepEqual(params.map((p) => p.name).sort(), Object.keys(REF.params).sort());
  for (const p of params) assert.deepEqual(p.torchDims, REF.params[p.name]!.dims, p.name);
  assert.equal(
    params.reduce((s, p) => s + p.dims.reduce((a, b) => a * b, 1), 0),
    REF.parameters,
  );
  // Layout round trip.
  const linear = params.find((p) => p.layout === 'transpose')!;
  const data = new Rng(1).normalArray(linear.dims[0]! * linear.dims[1]!);
  assert.deepEqual(fromTorchLayout(linear, toTorchLayout(linear, data)), data);
});

test('two full fine-tune steps match PyTorch AdamW over every UNet weight to 1e-5', {
  skip,
  timeout: 300_000,
}, async (t) => {
  const step = fixtureStep({ latentShape: [1, 4, 8, 8] });
  const rt = await openRuntime({ ep: 'cpu' });
  try {
    const batches = REF.steps.map((s) => ({
      sample: Float32Array.from(s.sample),
      context: Float32Array.from(s.context),
      target: Float32Array.from(s.target),
      t: s.timestep,
    }));
    const { losses, state } = await runSteps(rt, step, batches, REF.lr);
    for (const [i, s] of REF.steps.entries()) {
      assert.ok(Math.abs(losses[i]! - s.loss) <= 1e-5 * s.loss, `loss ${i}: ${losses[i]} vs PyTorch ${s.loss}`);
    }
    // Errors per tensor, relative to its largest reference value. Some weights get no gradient at all in exact
    // arithmetic (a per-channel shift right before a GroupNorm of one channel per group cancels out): their
    // "gradients" are rounding noise (|m| < 1e-6 of the largest), which Adam's normalisation turns into
    // steps of random sign: nothing to compare there.
    const globalM = Math.max(...Object.values(REF.params).flatMap((p) => p.m.map(Math.abs)));
    const globalV = Math.max(...Object.values(REF.params).flatMap((p) => p.v.map(Math.abs)));
    let perTensor = 0;
    let worst = { what: '', err: 0 };
    let noiseOnly = 0;
    let stepDiff = 0;
    const base = new Map(
      decodeModel(readFileSync(FIXTURE)).graph.initializers.map((t) => [t.name, t.data as Float32Array]),
    );
    for (const d of step.deltas) {
      const ref = REF.params[d.param.name]!;
      const noise = Math.max(...ref.m.map(Math.abs)) < 1e-6 * globalM;
      if (noise) {
        noiseOnly++;
        continue;
      }
      // The new weights W0 + Δ, to 1e-5 of the tensor's largest weight (at least 1: biases start at 0). The
      // gradients are checked through the moments below, relative to each tensor's largest. (Adam divides each
      // gradient by its own size, so an element whose gradient is small carries that gradient's relative
      // rounding into its step: the steps agree to `stepDiff` of the largest step, reported below.)
      const delta = toTorchLayout(d.param, state.get(d.delta)!);
      const w0 = toTorchLayout(d.param, base.get(d.param.initializer)!);
      const weightScale = Math.max(1, ...ref.weight.map(Math.abs));
      const deltaScale = Math.max(...ref.delta.map(Math.abs));
      ref.idx.forEach((k, i) => {
        const w = Math.fround(w0[k]! + delta[k]!);
        const err = Math.abs(w - ref.weight[i]!) / weightScale;
        if (err > worst.err) worst = { what: `${d.param.name} weight[${k}]: ${w} vs ${ref.weight[i]}`, err };
        stepDiff = Math.max(stepDiff, Math.abs(delta[k]! - ref.delta[i]!) / deltaScale);
      });
      // Moments (the gradients): to 1e-5 of the largest over the whole UNet; per tensor, reported.
      for (const [what, name] of [
        ['m', `${d.delta}.m`],
        ['v', `${d.delta}.v`],
      ] as const) {
        const mine = toTorchLayout(d.param, state.get(name)!);
        const expected = ref[what];
        const scale = Math.max(...expected.map(Math.abs));
        ref.idx.forEach((k, i) => {
          const diff = Math.abs(mine[k]! - expected[i]!);
          const err = diff / (what === 'm' ? globalM : globalV);
          if (err > worst.err) worst = { what: `${d.param.name} ${what}[${k}]: ${mine[k]} vs ${expected[i]}`, err };
          perTensor = Math.max(perTensor, diff / scale);
        });
      }
    }
    t.diagnostic(
      `losses ${losses.join(', ')}; largest relative difference ${worst.err.toExponential(2)} (${worst.what}); per tensor, moments agree to ${perTensor.toExponential(2)} of its largest and steps to ${stepDiff.toExponential(2)} of its largest; ${noiseOnly} weights without a gradient`,
    );
    assert.ok(worst.err <= 1e-5, `largest difference ${worst.err} at ${worst.what}`);
  } finally {
    await rt.close();
  }
});

test('gradient accumulation over two samples gives the batch-2 step; recomputed attention changes nothing', {
  skip,
  timeout: 300_000,
}, async () => {
  const rng = new Rng(3);
  const draw = () => ({
    sample: rng.normalArray(256),
    context: rng.normalArray(77 * 32),
    target: rng.normalArray(256),
  });
  const [a, b] = [draw(), draw()];
  const cat = (x: Float32Array, y: Float32Array) => {
    const out = new Float32Array(x.length + y.length);
    out.set(x);
    out.set(y, x.length);
    return out;
  };
  const rt = await openRuntime({ ep: 'cpu' });
  try {
    const lr = 1e-3;
    const batch2 = await runSteps(
      rt,
      fixtureStep({ latentShape: [2, 4, 8, 8], textShape: [2, 77, 32] }),
      [
        {
          sample: cat(a.sample, b.sample),
          context: cat(a.context, b.context),
          target: cat(a.target, b.target),
          t: 400,
        },
      ],
      lr,
    );
    const accumulated = await runSteps(
      rt,
      fixtureStep({ latentShape: [1, 4, 8, 8], accumulate: true }),
      [
        { ...a, t: 400, apply: false },
        { ...b, t: 400, apply: true },
      ],
      lr,
      2,
    );
    assert.ok(Math.abs((accumulated.losses[0]! + accumulated.losses[1]!) / 2 - batch2.losses[0]!) < 1e-6);
    // Relative to each tensor's largest value; weights whose gradient is rounding noise are left out (see the
    // PyTorch test): their first moment is below 1e-6 of the largest.
    const moments = [...batch2.state].filter(([name]) => name.endsWith('.m'));
    const maxAbs = (v: Float32Array) => v.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
    const largestM = Math.max(...moments.map(([, v]) => maxAbs(v)));
    const noise = new Set(moments.filter(([, v]) => maxAbs(v) < 1e-6 * largestM).map(([name]) => name.slice(0, -2)));
    let worst = 0;
    for (const [name, v] of batch2.state) {
      // Moments carry the gradients; the steps Adam makes from them amplify rounding (see the PyTorch test).
      if (!/\.(m|v)$/.test(name) || noise.has(name.replace(/\.(m|v)$/, ''))) continue;
      const w = accumulated.state.get(name)!;
      const scale = Math.max(1e-30, maxAbs(v));
      for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i]! - w[i]!) / scale);
    }
    assert.ok(worst < 1e-4, `accumulated vs batch-2 step: largest relative difference ${worst}`);
    for (const [name, v] of accumulated.state)
      if (name.endsWith('.acc'))
        assert.ok(
          v.every((x) => x === 0),
          name,
        );

    const plain = await runSteps(rt, fixtureStep({ latentShape: [1, 4, 8, 8] }), [{ ...a, t: 250 }], lr);
    const recomputed = await runSteps(
      rt,
      fixtureStep({ latentShape: [1, 4, 8, 8], recompute: true }),
      [{ ...a, t: 250 }],
      lr,
    );
    assert.equal(recomputed.losses[0], plain.losses[0]);
    for (const [name, v] of plain.state) assert.deepEqual(recomputed.state.get(name), v, name);
  } finally {
    await rt.close();
  }
});

test('the memory of a full fine-tune at SD 1.5 size, and the refusal when it does not fit', () => {
  // SD 1.5's UNet: 859.52M parameters; activations as the sd15 training graph reports them (bench/training.ts).
  const sd15 = estimateTrainingMemory({
    baseParameters: 859_520_964,
    trainedParameters: 859_520_964,
    full: true,
    precision: 'float32',
    accumulate: false,
    savedActivationBytes: 12 * 2 ** 30,
    largestValueBytes: 2 ** 29,
  });
  // 4 bytes × P for: base, W0 + Δ, Δ and Δ', m, m', v, v', gradients = 36 bytes per parameter.
  assert.equal(sd15.total - sd15.activations, 36 * 859_520_964);
  assert.match(
    describeMemory(sd15),
    /^41\.8 GiB \(base weights 3\.2, weights in use 3\.2, trained values \(old and new\) 6\.4, Adam moments \(old and new\) 12\.8, gradients 3\.2, activations 13\.0\)$/,
  );
  assert.throws(
    () => checkTrainingMemory(sd15, 24 * 2 ** 30, "this machine's memory", true),
    (e: unknown) =>
      e instanceof VidpriorError &&
      e.code === 'E_TOO_LARGE' &&
      /^full-UNet fine-tuning needs about 41\.8 GiB \(base weights 3\.2, .*\), but the limit is 24\.0 GiB \(this machine's memory\): use LoRA instead \(drop --full\)/.test(
        e.message,
      ),
  );
  checkTrainingMemory(sd15, 139 * 2 ** 30, 'H200', true); // fits
});

test('float16 compute with float32 master weights follows the float32 step', { skip, timeout: 600_000 }, async (t) => {
  const rng = new Rng(9);
  const batch = {
    sample: rng.normalArray(256),
    context: rng.normalArray(77 * 32),
    target: rng.normalArray(256),
    t: 300,
  };
  for (const ep of ['cpu', ...(process.env.VIDPRIOR_TEST_WEBGPU === '1' ? ['webgpu' as const] : [])] as const) {
    const rt = await openRuntime({ ep });
    try {
      const lr = 1e-3;
      const f32 = await runSteps(rt, fixtureStep({ latentShape: [1, 4, 8, 8] }), [batch, batch], lr);
      let f16: Awaited<ReturnType<typeof runSteps>>;
      try {
        f16 = await runSteps(rt, fixtureStep({ latentShape: [1, 4, 8, 8], precision: 'float16' }), [batch, batch], lr);
      } catch (err) {
        t.diagnostic(`${ep}: float16 training does not run: ${(err as Error).message.slice(0, 200)}`);
        continue;
      }
      const lossDiff = Math.max(...f16.losses.map((l, i) => Math.abs(l - f32.losses[i]!) / f32.losses[i]!));
      // Gradients through the first moments, relative to the largest over the UNet.
      let largest = 0;
      let worst = 0;
      for (const [name, v] of f32.state)
        if (name.endsWith('.m')) for (const x of v) largest = Math.max(largest, Math.abs(x));
      for (const [name, v] of f32.state) {
        if (!name.endsWith('.m')) continue;
        const w = f16.state.get(name)!;
        for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i]! - w[i]!) / largest);
      }
      t.diagnostic(
        `${ep}: float16 vs float32 loss within ${lossDiff.toExponential(2)}, gradients within ${worst.toExponential(2)} of the largest`,
      );
      assert.ok(lossDiff < 1e-2, `loss differs by ${lossDiff}`);
      assert.ok(worst < 2e-2, `gradients differ by ${worst}`);
    } finally {
      await rt.close();
    }
  }
});
