/**
 * Gradient checks against central finite differences, run through the project runtime (CPU provider).
 *
 * The checked scalar is L = Σ y ⊙ R for a fixed random R of y's shape, so every output element matters. For
 * each `wrt` value the analytic gradient g from `buildGradients` is compared with (L(x + εv) − L(x − εv)) / 2ε
 * along a few random unit directions v and along single elements. The runtime's tensors are float32 (no float64),
 * so ε and the tolerances are float32-sized; the perturbation actually applied (after rounding to float32) is
 * the one the analytic side is dotted with.
 */
import { buildGradients } from '../../src/autodiff/index.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { encodeModel } from '../../src/onnx/codec.js';
import { cloneModel } from '../../src/onnx/graph.js';
import type { Model } from '../../src/onnx/ir.js';
import { Rng } from '../../src/random.js';
import type { Runtime, SessionOptions } from '../../src/runtime/index.js';
import { type Tensor, float32 } from '../../src/tensor.js';
import { annotateByProbe } from './annotate.js';
import { inferShapes } from '../../src/onnx/shape-inference.js';

export interface GradcheckOptions {
  /** Forward value whose projection is differentiated (default: the model's first output). */
  output?: string;
  /** Graph inputs or initializers to differentiate. */
  wrt: string[];
  /** A value for every graph input. */
  feeds: Record<string, Tensor>;
  seed?: number;
  eps?: number;
  rtol?: number;
  atol?: number;
  /** Random directions per wrt value (default 3). */
  directions?: number;
  /** Single elements per wrt value (default 4). */
  elements?: number;
}

export interface CheckedValue {
  wrt: string;
  /** Worst |fd − analytic| / (|fd| + |analytic| + atol/rtol) over the checks, ≤ rtol when passing. */
  worst: number;
  checks: { what: string; fd: number; analytic: number }[];
}

export interface GradcheckReport {
  values: CheckedValue[];
  /** Op types of the backward nodes (to see what the gradient graph is made of). */
  backwardOps: string[];
  backwardModel: Model;
}

/** Builds the forward+backward model with L = Σ y ⊙ R; returns it, the forward-only model and feeds. */
export async function prepareBackward(
  rt: Runtime,
  model: Model,
  opts: GradcheckOptions,
): Promise<{
  backward: Model;
  forward: Model;
  feeds: Record<string, Tensor>;
  gradNames: Record<string, string>;
  nodesBefore: number;
}> {
  const m = cloneModel(model);
  const feeds: Record<string, Tensor> = { ...opts.feeds };
  // 1. wrt initializers become inputs, so finite differences can perturb them.
  for (const w of opts.wrt) {
    const idx = m.graph.initializers.findIndex((t) => t.name === w);
    if (idx < 0) continue;
    const [t] = m.graph.initializers.splice(idx, 1);
    m.graph.inputs.push({ name: w, type: t!.type, shape: t!.dims });
    feeds[w] = float32(t!.dims, Float32Array.from(t!.data as Float32Array));
  }
  // 2. Shapes of everything (static shape inference; a measuring probe run where inference cannot), then the
  //    projection loss.
  try {
    inferShapes(m, Object.fromEntries(m.graph.inputs.map((i) => [i.name, [...feeds[i.name]!.dims]])), {
      setSignature: true,
    });
  } catch {
    m.graph.valueInfo = [];
    await annotateByProbe(rt, m, feeds);
  }
  const output = opts.output ?? m.graph.outputs[0]!.name;
  const outShape =
    m.graph.valueInfo.find((v) => v.name === output)?.shape ?? m.graph.outputs.find((v) => v.name === output)!.shape!;
  const rng = new Rng(opts.seed ?? 7);
  const n = (outShape as number[]).reduce((a, d) => a * d, 1);
  const b = new GraphBuilder(m);
  const r = b.constant(
    Float32Array.from({ length: n }, () => rng.normal()),
    outShape as number[],
    'float32',
    'check_projection',
  );
  const prod = b.op('Mul', [output, r]);
  const loss = b.op('ReduceSum', [prod], { keepdims: 0 });
  m.graph.valueInfo.push({ name: prod, type: 'float32', shape: outShape }, { name: loss, type: 'float32', shape: [] });
  m.graph.outputs = [{ name: loss, type: 'float32', shape: [] }];
  const forward = cloneModel(m);
  // 3. The backward pass.
  const nodesBefore = m.graph.nodes.length;
  const inputShapes = Object.fromEntries(m.graph.inputs.map((i) => [i.name, [...feeds[i.name]!.dims]]));
  const { gradients } = buildGradients(m, { loss, wrt: opts.wrt, builder: b, inputShapes });
  // The value_info is for autodiff only: with it, ORT 1.30's ReshapeFusion fails to load real exports
  // ("Attempting to get index by a name which does not exist … _new_reshape").
  m.graph.valueInfo = [];
  forward.graph.valueInfo = [];
  const gradNames: Record<string, string> = {};
  for (const w of opts.wrt)
    gradNames[w] = b.output(gradients[w]!, `grad_${w.replace(/[^A-Za-z0-9_]/g, '_')}`, 'float32', null);
  return { backward: m, forward, feeds, gradNames, nodesBefore };
}

export async function gradcheck(
  rt: Runtime,
  model: Model,
  opts: GradcheckOptions,
  sessionOptions: SessionOptions = {},
): Promise<GradcheckReport> {
  const eps = opts.eps ?? 1e-2,
    rtol = opts.rtol ?? 1e-2,
    atol = opts.atol ?? 1e-3;
  const { backward, forward, feeds, gradNames, nodesBefore } = await prepareBackward(rt, model, opts);
  const lossName = forward.graph.outputs[0]!.name;
  const bwd = await rt.createSession(encodeModel(backward), { label: 'gradcheck-backward', ...sessionOptions });
  const fwd = await rt.createSession(encodeModel(forward), { label: 'gradcheck-forward' });
  const inputsOf = (mdl: Model, f: Record<string, Tensor>) =>
    Object.fromEntries(mdl.graph.inputs.map((i) => [i.name, f[i.name]!]));
  try {
    const out = await bwd.run(inputsOf(backward, feeds));
    const rng = new Rng((opts.seed ?? 7) + 1);
    const lossAt = async (f: Record<string, Tensor>) =>
      ((await fwd.run(inputsOf(forward, f)))[lossName] as Tensor<'float32'>).data[0]!;
    const values: CheckedValue[] = [];
    for (const w of opts.wrt) {
      const x = feeds[w] as Tensor<'float32'>;
      const g = (out[gradNames[w]!] as Tensor<'float32'>).data;
      if (g.length !== x.data.length)
        throw new Error(`gradient of ${w} has ${g.length} elements, expected ${x.data.length}`);
      const checks: CheckedValue['checks'] = [];
      const probe = async (what: string, v: Float32Array) => {
        const plus = float32(
          x.dims,
          x.data.map((xi, i) => xi + eps * v[i]!),
        );
        const minus = float32(
          x.dims,
          x.data.map((xi, i) => xi - eps * v[i]!),
        );
        const fd = ((await lossAt({ ...feeds, [w]: plus })) - (await lossAt({ ...feeds, [w]: minus }))) / (2 * eps);
        let analytic = 0;
        for (let i = 0; i < g.length; i++) analytic += (g[i]! * (plus.data[i]! - minus.data[i]!)) / (2 * eps);
        checks.push({ what, fd, analytic });
      };
      // Unit-length directions: a step of ε moves the point as far as one element check does.
      for (let d = 0; d < (opts.directions ?? 3); d++) {
        const v = Float32Array.from(x.data, () => rng.normal());
        const norm = Math.hypot(...v);
        await probe(
          `direction ${d}`,
          v.map((e) => e / norm),
        );
      }
      for (let e = 0; e < Math.min(opts.elements ?? 4, x.data.length); e++) {
        const i = rng.int(x.data.length);
        const v = new Float32Array(x.data.length);
        v[i] = 1;
        await probe(`element ${i}`, v);
      }
      const worst = Math.max(
        ...checks.map((c) => Math.abs(c.fd - c.analytic) / (Math.abs(c.fd) + Math.abs(c.analytic) + atol / rtol)),
      );
      values.push({ wrt: w, worst, checks });
    }
    const backwardOps = [...new Set(backward.graph.nodes.slice(nodesBefore).map((nd) => nd.opType))].sort();
    return { values, backwardOps, backwardModel: backward };
  } finally {
    await bwd.release();
    await fwd.release();
  }
}

/** Throws with the failing checks when any value's worst error passes `rtol`. */
export function assertGradients(report: GradcheckReport, rtol = 1e-2): void {
  const bad = report.values.filter((v) => !(v.worst <= rtol));
  if (bad.length === 0) return;
  const lines = bad.map(
    (v) =>
      `${v.wrt}: worst ${v.worst.toExponential(2)}\n${v.checks
        .map((c) => `    ${c.what}: fd ${c.fd.toPrecision(6)} analytic ${c.analytic.toPrecision(6)}`)
        .join('\n')}`,
  );
  throw new Error(`gradient check failed (rtol ${rtol}):\n${lines.join('\n')}`);
}

/** Deterministic float32 data: normal values (or uniform in [lo, hi] for positive-only ops). */
export function randomTensor(dims: number[], seed: number, range?: [number, number]): Tensor<'float32'> {
  const rng = new Rng(seed);
  const n = dims.reduce((a, d) => a * d, 1);
  const data = Float32Array.from({ length: n }, () =>
    range ? range[0] + (range[1] - range[0]) * rng.uniform() : rng.normal(),
  );
  return float32(dims, data);
}

export interface OpCase {
  opset: number;
  /** Graph inputs: dims, optional value range (uniform) and whether the value is differentiated (default yes). */
  inputs: Record<string, { dims: number[]; range?: [number, number]; wrt?: boolean; int64?: number[] }>;
  /** Emits the forward graph from the input names; returns the checked output. */
  build: (b: GraphBuilder, x: Record<string, string>) => string;
  eps?: number;
  rtol?: number;
  atol?: number;
  seed?: number;
}

/** Builds a small graph from `c`, runs the gradient check and asserts it. Returns the report. */
export async function checkCase(rt: Runtime, name: string, c: OpCase): Promise<GradcheckReport> {
  const b = new GraphBuilder(name, { opset: c.opset });
  const names: Record<string, string> = {};
  const feeds: Record<string, Tensor> = {};
  const wrt: string[] = [];
  let seed = c.seed ?? 11;
  for (const [inName, spec] of Object.entries(c.inputs)) {
    if (spec.int64) {
      names[inName] = b.input(inName, 'int64', spec.dims);
      feeds[inName] = { type: 'int64', dims: spec.dims, data: BigInt64Array.from(spec.int64, (v) => BigInt(v)) };
      continue;
    }
    names[inName] = b.input(inName, 'float32', spec.dims);
    feeds[inName] = randomTensor(spec.dims, seed++, spec.range);
    if (spec.wrt !== false) wrt.push(inName);
  }
  b.output(c.build(b, names), 'y');
  const report = await gradcheck(rt, b.build(), { wrt, feeds, eps: c.eps, rtol: c.rtol, atol: c.atol, seed: c.seed });
  assertGradients(report, c.rtol ?? 1e-2);
  return report;
}
