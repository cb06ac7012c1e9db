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

/** An ext 0x42 value (msgpackr's BigInt extension) with `n` bytes of payload, as ext32. */
function bigintExt(n: number): Buffer {
  const head = Buffer.from([0xc9, 0, 0, 0, 0, 0x42]);
  head.writeUInt32BE(n, 1);
  return Buffer.concat([head, Buffer.alloc(n, 0x7f)]);
}

test('extension types are refused before they are decoded: a 4 MB BigInt is an E_PROTOCOL in milliseconds', () => {
  // hello whose protocol field is the extension: a map of 3 with the ext as a value.
  const msg = Buffer.concat([
    Buffer.from([0x83, 0xa4, ...Buffer.from('type'), 0xa5, ...Buffer.from('hello'), 0xa2, ...Buffer.from('id'), 0x01]),
    Buffer.from([0xa8, ...Buffer.from('protocol')]),
    bigintExt(4 * 1024 * 1024),
  ]);
  const t0 = performance.now();
  let err: VidpriorError | undefined;
  try {
    decode(msg, { maxMessageBytes: 8 * 1024 * 1024 });
  } catch (e) {
    err = e as VidpriorError;
  }
  const ms = performance.now() - t0;
  assert.equal(err?.code, 'E_PROTOCOL');
  assert.ok(err!.message.length < 300, `a bounded message, got ${err!.message.length} characters`);
  assert.match(err!.message, /extension/);
  assert.ok(ms < 200, `refused in ${ms.toFixed(1)} ms`);
  // Every extension form (fixext 1/2/4/8/16, ext 8/16/32) and the types msgpackr would build objects from.
  for (const type of [0x00, 0x42, 0x65, 0x69, 0x70, 0x73, 0x74, 0x78, 0x62, 0x72, 0xff]) {
    for (const bytes of [
      [0xd4, type, 0x00],
      [0xd5, type, 0x00, 0x00],
      [0xd6, type, 0, 0, 0, 1],
      [0xd7, type, 0, 0, 0, 0, 0, 0, 0, 1],
      [0xd8, type, ...new Array(16).fill(0x90)],
      [0xc7, 1, type, 0x90],
      [0xc8, 0, 1, type, 0x90],
      [0xc9, 0, 0, 0, 1, type, 0x90],
    ]) {
      assert.equal(
        code(() => decode(Buffer.from(bytes))),
        'E_PROTOCOL',
        `ext ${Buffer.from(bytes).toString('hex')}`,
      );
    }
  }
  assert.equal(
    code(() => decode(Buffer.from([0xc1]))),
    'E_PROTOCOL',
    '0xc1 is never used',
  );
});

test('int64 and uint64 encodings of valid numbers decode as numbers; integers beyond 2^53 are refused', () => {
  const u64 = (n: bigint) => {
    const b = Buffer.alloc(9);
    b[0] = 0xcf;
    b.writeBigUInt64BE(n, 1);
    return b;
  };
  const i64 = (n: bigint) => {
    const b = Buffer.alloc(9);
    b[0] = 0xd3;
    b.writeBigInt64BE(n, 1);
    return b;
  };
  // {"type":"hello","id":<uint64 7>,"protocol":<int64 1>}: another client's encoder may write small ints this way.
  const hello = Buffer.concat([
    Buffer.from([0x83, 0xa4, ...Buffer.from('type'), 0xa5, ...Buffer.from('hello'), 0xa2, ...Buffer.from('id')]),
    u64(7n),
    Buffer.from([0xa8, ...Buffer.from('protocol')]),
    i64(1n),
  ]);
  const m = parseClientMessage(decode(hello));
  assert.deepEqual(m, { type: 'hello', id: 7, protocol: 1 });
  assert.equal(decode(i64(-5n)), -5);
  assert.equal(decode(u64(2n ** 53n - 1n)), 2 ** 53 - 1);
  assert.equal(decode(i64(-(2n ** 53n) + 1n)), -(2 ** 53) + 1);
  for (const bad of [u64(2n ** 53n), u64(2n ** 64n - 1n), i64(2n ** 63n - 1n), i64(-(2n ** 63n))]) {
    let err: VidpriorError | undefined;
    try {
      decode(bad);
    } catch (e) {
      err = e as VidpriorError;
    }
    assert.equal(err?.code, 'E_PROTOCOL');
    assert.ok(!/\d{16}/.test(err!.message), `the number is not echoed: ${err!.message}`);
  }
});

test('map keys must be strings, nesting and value counts are bounded', () => {
  assert.equal(
    code(() => decode(Buffer.from([0x81, 0x01, 0x02]))),
    'E_PROTOCOL',
    'an integer key',
  );
  const deep = Buffer.concat([Buffer.alloc(100, 0x91), Buffer.from([0xc0])]);
  assert.equal(
    code(() => decode(deep)),
    'E_PROTOCOL',
    '100 nested arrays',
  );
  // An array of 2 million nils (2 MB) would be 2 million values: over the budget.
  const many = Buffer.concat([Buffer.from([0xdd, 0x00, 0x1e, 0x84, 0x80]), Buffer.alloc(2_000_000, 0xc0)]);
  assert.equal(
    code(() => decode(many, { maxMessageBytes: 4 * 1024 * 1024 })),
    'E_PROTOCOL',
  );
  // A length that claims more bytes than there are is refused without allocating it.
  assert.equal(
    code(() => decode(Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]))),
    'E_PROTOCOL',
  );
  assert.equal(
    code(() => decode(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]))),
    'E_PROTOCOL',
  );
});
