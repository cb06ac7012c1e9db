/**
 * Small ONNX graphs for the runtime tests, built in code (GraphBuilder + encodeModel), plus access to the
 * shared tiny-sd-torch fixture when ../shared is present.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { encodeModel } from '../../src/onnx/codec.js';
import type { ElemType } from '../../src/onnx/ir.js';
import { Rng } from '../../src/random.js';

/** y = x op x for a binary op (Add, Mul, …) over any shape of one element type. */
export function binarySelfModel(op: string, type: ElemType): Uint8Array {
  const b = new GraphBuilder(`${op}_${type}`, { opset: 17 });
  const x = b.input('x', type, ['n']);
  b.output(b.op(op, [x, x], {}, { outputs: ['y'] }), undefined, type, ['n']);
  return encodeModel(b.build());
}

/** y = Identity(x), x of `type` and shape [n]. */
export function identityModelOf(type: ElemType): Uint8Array {
  const b = new GraphBuilder(`identity_${type}`, { opset: 17 });
  const x = b.input('x', type, ['n']);
  b.output(b.op('Identity', [x], {}, { outputs: ['y'] }), undefined, type, ['n']);
  return encodeModel(b.build());
}

/** y = x·W + b with x [batch, 4] float32: fixed seeded weights, so the expected output is computable. */
export function linearModel(): {
  bytes: Uint8Array;
  w: Float32Array;
  bias: Float32Array;
  model: ReturnType<GraphBuilder['build']>;
} {
  const rng = new Rng(7);
  const w = Float32Array.from({ length: 4 * 3 }, () => rng.normal());
  const bias = Float32Array.from({ length: 3 }, () => rng.normal());
  const b = new GraphBuilder('linear', { opset: 17 });
  const x = b.input('x', 'float32', ['batch', 4]);
  const wName = b.initializer('w', 'float32', [4, 3], w);
  const bName = b.initializer('b', 'float32', [3], bias);
  b.output(b.op('Add', [b.op('MatMul', [x, wName]), bName], {}, { outputs: ['y'] }), undefined, 'float32', [
    'batch',
    3,
  ]);
  const model = b.build();
  return { bytes: encodeModel(model), w, bias, model };
}

export function linearReference(x: Float32Array, w: Float32Array, bias: Float32Array): Float32Array {
  const rows = x.length / 4;
  const y = new Float32Array(rows * 3);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < 3; j++) {
      let s = bias[j]!;
      for (let k = 0; k < 4; k++) s += x[r * 4 + k]! * w[k * 3 + j]!;
      y[r * 3 + j] = s;
    }
  }
  return y;
}

/**
 * A deliberately slow graph (a chain of `steps` n×n MatMuls with Tanh so nothing folds away): used to prove the
 * main event loop keeps running while the worker is busy.
 */
export function heavyModel(n: number, steps: number): Uint8Array {
  const rng = new Rng(3);
  const b = new GraphBuilder('heavy', { opset: 17 });
  let v = b.input('x', 'float32', [n, n]);
  const w = b.initializer(
    'w',
    'float32',
    [n, n],
    Float32Array.from({ length: n * n }, () => rng.normal() / Math.sqrt(n)),
  );
  for (let i = 0; i < steps; i++) v = b.op('Tanh', [b.op('MatMul', [v, w])]);
  b.output(b.op('Identity', [v], {}, { outputs: ['y'] }), undefined, 'float32', [n, n]);
  return encodeModel(b.build());
}

/** MatMul with symbolic inner dims that ORT can only check at run time. */
export function matmulModel(): Uint8Array {
  const b = new GraphBuilder('matmul', { opset: 17 });
  const a = b.input('a', 'float32', ['m', 'k']);
  const c = b.input('b', 'float32', ['k2', 'n']);
  b.output(b.op('MatMul', [a, c], {}, { outputs: ['y'] }), undefined, 'float32', ['m', 'n']);
  return encodeModel(b.build());
}

// ---- the shared fixture (a real diffusers/PyTorch export) ---------------------------------------------

export const FIXTURE_DIR = join('..', 'shared', 'fixtures', 'tiny-sd-torch');
export const hasFixture = existsSync(join(FIXTURE_DIR, 'reference.json'));
export const FIXTURE_SKIP = hasFixture
  ? false
  : `../shared/fixtures/tiny-sd-torch is absent (run from the repo root beside ../shared)`;

interface RefArray {
  shape: number[];
  data: number[];
}
let reference: Record<string, RefArray> | null = null;

export function fixtureRef(name: string): { dims: number[]; data: Float32Array } {
  reference ??= JSON.parse(readFileSync(join(FIXTURE_DIR, 'reference.json'), 'utf8')) as Record<string, RefArray>;
  const r = reference[name];
  if (!r) throw new Error(`reference.json has no ${name}`);
  return { dims: r.shape, data: Float32Array.from(r.data) };
}
