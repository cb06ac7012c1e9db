import { test } from 'node:test';
import assert from 'node:assert/strict';
import { floatToHalf, halfToFloat, toFloat16, fromFloat16 } from '../src/tensor.js';

test('float16 conversion matches IEEE half on known values', () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [65520, 0x7c00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -24, 0x0001],
    [2 ** -14, 0x0400],
    [0.1, 0x2e66],
    [1 / 3, 0x3555],
  ];
  for (const [f, h] of cases) assert.equal(floatToHalf(f), h, `floatToHalf(${f})`);
  assert.ok(Number.isNaN(halfToFloat(floatToHalf(NaN))));
  assert.equal(halfToFloat(0x3555), 0.333251953125);
});

test('float16 round trip stays within half precision', () => {
  const xs = Float32Array.from({ length: 1000 }, (_, i) => (i - 500) * 0.0137);
  const back = fromFloat16(toFloat16(xs));
  for (let i = 0; i < xs.length; i++) assert.ok(Math.abs(back[i]! - xs[i]!) <= Math.abs(xs[i]!) * 2 ** -11 + 1e-7);
});
