/**
 * The restricted reader of PyTorch zip checkpoints on a file saved by PyTorch itself (data/tiny.ckpt, made by
 * data/make-torch-checkpoint.py; values in data/tiny.json): every tensor type, storages shared by views at an
 * offset, a Lightning `state_dict`, and an object whose unpickling would run a shell command — which is
 * read as inert data, never run.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { openTorchCheckpoint } from '../../../src/models/checkpoint/torch-zip.js';
import { readPickle } from '../../../src/models/checkpoint/pickle.js';
import { fromFloat16 } from '../../../src/tensor.js';

const DATA = resolve('test/models/checkpoint/data');
let work: string;

before(() => {
  work = mkdtempSync(join(tmpdir(), 'vidprior-torch-zip-'));
  copyFileSync(join(DATA, 'tiny.ckpt'), join(work, 'tiny.ckpt'));
});
after(() => rmSync(work, { recursive: true, force: true }));

function widen(type: string, data: unknown): number[] {
  if (type === 'float16') return [...fromFloat16(data as Uint16Array)];
  if (type === 'bfloat16') return [...new Float32Array(Uint32Array.from(data as Uint16Array, (b) => b << 16).buffer)];
  if (type === 'int64') return Array.from(data as BigInt64Array, Number);
  return [...(data as Float32Array)];
}

test('a PyTorch checkpoint reads as its tensors: types, shapes, values, shared storages', async () => {
  const want = JSON.parse(readFileSync(join(DATA, 'tiny.json'), 'utf8')) as Record<
    string,
    { dtype: string; shape: number[]; values: number[] }
  >;
  const src = await openTorchCheckpoint(join(work, 'tiny.ckpt'));
  try {
    const names = src.names();
    for (const [name, w] of Object.entries(want)) {
      assert.ok(names.includes(name), `${name} is listed`);
      const info = src.info(name)!;
      assert.deepEqual(info.dims, w.shape, name);
      assert.equal(info.type, w.dtype === 'int64' ? 'int64' : w.dtype, name);
      const got = widen(info.type, await src.read(name));
      assert.equal(got.length, w.values.length, name);
      for (let i = 0; i < got.length; i++)
        assert.ok(Math.abs(got[i]! - w.values[i]!) <= 1e-7 * Math.max(1, Math.abs(w.values[i]!)), `${name}[${i}]`);
    }
    await assert.rejects(src.read('transposed'), /not contiguous/);
  } finally {
    await src.close();
  }
  assert.equal(existsSync(join(work, 'pwned')), false, 'nothing from the pickle ran');
});

test('code in a pickle stays data; unknown opcodes and non-tensor persistent ids are refused', () => {
  // GLOBAL os.system, ("touch x",), REDUCE, STOP: read as an opaque value.
  const evil = Buffer.concat([
    Buffer.from('cos\nsystem\n'),
    Buffer.from([0x8c, 7]),
    Buffer.from('touch x'),
    Buffer.from([0x85, 0x52, 0x2e]),
  ]);
  assert.deepEqual(readPickle(evil, 'evil'), { kind: 'opaque', name: 'os.system' });
  assert.throws(() => readPickle(Buffer.from([0x80, 0x05, 0x97, 0x2e]), 'buffer'), /opcode 0x97/);
  assert.throws(() => readPickle(Buffer.from([0x8c, 3, 0x61, 0x62, 0x63, 0x51, 0x2e]), 'pid'), /not a tensor storage/);
});

test('a checkpoint without a state dict, and a zip that is not a checkpoint, are refused by name', async () => {
  const notZip = join(work, 'broken.ckpt');
  writeFileSync(notZip, Buffer.from('PK\x03\x04 not really a zip'));
  await assert.rejects(openTorchCheckpoint(notZip), (e: Error & { code?: string }) => e.code === 'E_MODEL_INPUT');
});
