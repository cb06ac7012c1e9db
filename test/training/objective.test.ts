import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noisedSample } from '../../src/training/objective.js';
import { Rng } from '../../src/random.js';

const rng = new Rng(3);
const zo = rng.normalArray(64),
  ze = rng.normalArray(64),
  eps = rng.normalArray(64);
const ab = 0.7;

test('unconditional: noise from the frame, target the noise (epsilon) or v', () => {
  const { noisy, target } = noisedSample(zo, zo, eps, ab, 'epsilon');
  for (let i = 0; i < 64; i++) {
    assert.ok(Math.abs(noisy[i]! - (Math.sqrt(ab) * zo[i]! + Math.sqrt(1 - ab) * eps[i]!)) < 1e-6);
    assert.ok(Math.abs(target[i]! - eps[i]!) < 1e-6);
  }
  const v = noisedSample(zo, zo, eps, ab, 'v_prediction').target;
  for (let i = 0; i < 64; i++)
    assert.ok(Math.abs(v[i]! - (Math.sqrt(ab) * eps[i]! - Math.sqrt(1 - ab) * zo[i]!)) < 1e-5);
});

test('conditional: noised from the original, the target makes x0-prediction the edited latent', () => {
  for (const kind of ['epsilon', 'v_prediction'] as const) {
    const { noisy, target } = noisedSample(zo, ze, eps, ab, kind);
    for (let i = 0; i < 64; i++) {
      assert.ok(Math.abs(noisy[i]! - (Math.sqrt(ab) * zo[i]! + Math.sqrt(1 - ab) * eps[i]!)) < 1e-6);
      // What a model predicting `target` implies for x0 (diffusers' DDIM formulas):
      const x0 =
        kind === 'epsilon'
          ? (noisy[i]! - Math.sqrt(1 - ab) * target[i]!) / Math.sqrt(ab)
          : Math.sqrt(ab) * noisy[i]! - Math.sqrt(1 - ab) * target[i]!;
      assert.ok(Math.abs(x0 - ze[i]!) < 1e-4, `${kind}: x0 ${x0} vs edited ${ze[i]}`);
    }
  }
});

test('bad sizes and prediction types are refused', () => {
  assert.throws(() => noisedSample(zo, ze.subarray(1), eps, ab, 'epsilon'), /different sizes/);
  assert.throws(() => noisedSample(zo, ze, eps, ab, 'sample' as 'epsilon'), /not "sample"/);
});
