import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/random.js';

test('same seed, same stream; different seeds differ', () => {
  const a = new Rng(42),
    b = new Rng(42),
    c = new Rng(43);
  const xa = Array.from({ length: 8 }, () => a.nextUint32());
  const xb = Array.from({ length: 8 }, () => b.nextUint32());
  const xc = Array.from({ length: 8 }, () => c.nextUint32());
  assert.deepEqual(xa, xb);
  assert.notDeepEqual(xa, xc);
});

test('normals have mean 0 and variance 1', () => {
  const r = new Rng(7);
  const v = r.normalArray(200_000);
  let s = 0,
    s2 = 0;
  for (const x of v) {
    s += x;
    s2 += x * x;
  }
  const mean = s / v.length,
    variance = s2 / v.length - mean * mean;
  assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.01, `variance ${variance}`);
});

test('state round-trips', () => {
  const r = new Rng(5);
  r.normal();
  const copy = Rng.fromState(r.state());
  assert.deepEqual(
    Array.from({ length: 5 }, () => copy.normal()),
    Array.from({ length: 5 }, () => r.normal()),
  );
});
