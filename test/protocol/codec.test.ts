import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode } from '../../protocol/codec.js';
import { parseClientMessage } from '../../protocol/messages.js';
import { parseParams } from '../../protocol/params.js';
import { VidpriorError } from '../../src/errors.js';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    if (e instanceof VidpriorError) return e.code;
    throw e;
  }
  return 'none';
};

test('encode emits plain MessagePack: bin for bytes, no extensions, undefined keys dropped', () => {
  const bytes = encode({ type: 'x', a: undefined, b: new Uint8Array([1, 2]), c: 0.5 });
  const hex = Buffer.from(bytes).toString('hex');
  assert.ok(hex.includes('c4020102'), 'bin8 of two bytes');
  assert.ok(!hex.includes('a161'), 'the undefined key "a" is left out');
  assert.deepEqual(decode(bytes), { type: 'x', b: Buffer.from([1, 2]), c: 0.5 });
  assert.equal(
    code(() => encode({ when: new Date(0) })),
    'E_INTERNAL',
    'a Date would need an extension type',
  );
  assert.equal(
    code(() => encode({ f: new Float32Array(2) })),
    'E_INTERNAL',
  );
});

test('decode refuses oversize, empty, truncated, trailing and extension data', () => {
  const ok = encode({ type: 'hello', id: 1, protocol: 1 });
  assert.equal(
    code(() => decode(ok, { maxMessageBytes: 4 })),
    'E_TOO_LARGE',
  );
  assert.equal(
    code(() => decode(new Uint8Array())),
    'E_PROTOCOL',
  );
  assert.equal(
    code(() => decode(ok.subarray(0, ok.length - 3))),
    'E_PROTOCOL',
  );
  assert.equal(
    code(() => decode(Buffer.concat([ok, Buffer.from([1])]))),
    'E_PROTOCOL',
  );
  assert.equal(
    code(() => decode(Buffer.from([0xd4, 0x05, 0x00]))),
    'E_PROTOCOL',
    'unknown ext type',
  );
  // A timestamp extension decodes, but no schema accepts a Date.
  assert.equal(
    code(() => parseClientMessage({ type: 'hello', id: decode(Buffer.from([0xd6, 0xff, 0, 0, 0, 1])), protocol: 1 })),
    'E_PROTOCOL',
  );
});

test('__proto__ keys cannot pollute prototypes', () => {
  const bytes = Buffer.from([
    0x82,
    0xa4,
    ...Buffer.from('type'),
    0xa5,
    ...Buffer.from('hello'),
    0xa9,
    ...Buffer.from('__proto__'),
    0x81,
    0xa1,
    0x78,
    0x01,
  ]);
  const v = decode(bytes) as Record<string, unknown>;
  assert.equal(({} as Record<string, unknown>).x, undefined);
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
});

test('validators name the bad field and choose the code', () => {
  const submit =
    (params: unknown, frames: unknown = [{ png: new Uint8Array(1) }]) =>
    () =>
      parseParams(
        'stylize',
        (parseClientMessage({ type: 'submit', id: 1, kind: 'stylize', params, frames }) as { params: unknown }).params,
      );
  assert.equal(code(submit({ prompt: 'x', strength: 1.5 })), 'E_BAD_REQUEST');
  assert.equal(code(submit({ prompt: 'x', strength: 'high' })), 'E_PROTOCOL');
  assert.equal(code(submit({ prompt: 'x', strenght: 0.4 })), 'E_BAD_REQUEST');
  assert.equal(code(submit({ strength: 0.4 })), 'E_PROTOCOL', 'prompt is required');
  assert.equal(code(submit({ prompt: 'x' }, 'not an array')), 'E_PROTOCOL');
  assert.equal(
    code(() => parseClientMessage({ type: 'nope', id: 1 })),
    'E_PROTOCOL',
  );
  assert.equal(
    code(() => parseClientMessage([1, 2])),
    'E_PROTOCOL',
  );
  assert.equal(
    code(() => parseClientMessage({ type: 'get_job', id: 1, job: 'x' })),
    'E_NOT_FOUND',
  );
  try {
    parseParams('stylize', { prompt: 'x', strength: 1.5 });
    assert.fail('should throw');
  } catch (e) {
    assert.match((e as Error).message, /params\.strength must be a number > 0 and ≤ 1, got number 1\.5/);
  }
  const p = parseParams('stylize', { prompt: 'x' });
  assert.deepEqual(p, {
    prompt: 'x',
    negative_prompt: '',
    strength: 0.45,
    steps: 50,
    guidance: 7.5,
    seed: 0,
    batch: 1,
  });
  // Training: LoRA by default; `full` fine-tunes every UNet weight, its learning rate then 1e-5 (set by the job).
  const f = parseParams('finetune', { prompt: 'x' });
  assert.equal(f.full, false);
  assert.equal(f.lr, undefined);
  assert.equal(parseParams('run', { prompt: 'x', full: true }).full, true);
  assert.throws(() => parseParams('finetune', { prompt: 'x', full: 'yes' }), /params\.full/);
});
