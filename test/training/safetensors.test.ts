import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  writeSafetensors,
} from '../../src/training/safetensors.js';
import { VidpriorError } from '../../src/errors.js';

test('round trip keeps names, dtypes, shapes, values and metadata', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'st-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tensors = {
    'unet.b.lora_B.weight': { type: 'float32' as const, dims: [3, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
    'unet.a.lora_A.weight': { type: 'float16' as const, dims: [2], data: Uint16Array.from([0x3c00, 0xc000]) },
  };
  await writeSafetensors(join(dir, 'a.safetensors'), tensors, { rank: '2' });
  const back = await readSafetensors(join(dir, 'a.safetensors'));
  assert.deepEqual([...back.tensors.keys()].sort(), Object.keys(tensors).sort());
  assert.deepEqual(Array.from(back.tensors.get('unet.b.lora_B.weight')!.data as Float32Array), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(back.tensors.get('unet.a.lora_A.weight')!.dims, [2]);
  assert.equal(back.tensors.get('unet.a.lora_A.weight')!.type, 'float16');
  assert.deepEqual(back.metadata, { rank: '2' });
});

test('layout follows the format: u64 header length, JSON header, aligned data', () => {
  const bytes = encodeSafetensors({ x: { type: 'float32', dims: [1], data: Float32Array.of(1.5) } });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + n) % 8, 0);
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString());
  assert.deepEqual(header.x, { dtype: 'F32', shape: [1], data_offsets: [0, 4] });
  assert.equal(new DataView(bytes.buffer).getFloat32(8 + n, true), 1.5);
});

test('corrupt files are E_ADAPTER errors naming the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'st-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'bad.safetensors');
  writeFileSync(path, Buffer.from('not a safetensors file at all'));
  await assert.rejects(
    readSafetensors(path),
    (e: unknown) => e instanceof VidpriorError && e.code === 'E_ADAPTER' && e.message.includes(path),
  );
  const good = encodeSafetensors({ x: { type: 'float32', dims: [4], data: new Float32Array(4) } });
  assert.throws(
    () => decodeSafetensors(good.subarray(0, good.length - 4), 'cut.safetensors'),
    /cut\.safetensors.*outside the data/,
  );
  await assert.rejects(readSafetensors(join(dir, 'missing.safetensors')), /cannot read adapter file/);
});
