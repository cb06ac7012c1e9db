import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { encodeNpy, parseNpy, readNpy, readNpyFloat32, writeNpy } from '../../src/io/npy.js';
import { float32, toFloat16, tensor } from '../../src/tensor.js';
import { VidpriorError } from '../../src/errors.js';

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

function header(dict: string, major = 1): Uint8Array {
  const prefix = major === 1 ? 10 : 12;
  const total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  const text = `${dict.padEnd(total - prefix - 1, ' ')}\n`;
  const out = new Uint8Array(total);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const v = new DataView(out.buffer);
  if (major === 1) v.setUint16(8, text.length, true);
  else v.setUint32(8, text.length, true);
  out.set(new TextEncoder().encode(text), prefix);
  return out;
}

test('float32, float16 and float64 arrays round-trip; headers are 64-byte aligned', () => {
  const data = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i) * 3);
  const bytes = encodeNpy({ dtype: 'float32', shape: [1, 2, 3, 4], data });
  assert.equal((bytes.indexOf(0x0a) + 1) % 64, 0);
  const back = parseNpy(bytes);
  assert.deepEqual(back, { dtype: 'float32', shape: [1, 2, 3, 4], data });
  const half = toFloat16(data);
  assert.deepEqual(parseNpy(encodeNpy({ dtype: 'float16', shape: [24], data: half })).data, half);
  const dbl = Float64Array.from(data, (v) => v / 3);
  assert.deepEqual(parseNpy(encodeNpy({ dtype: 'float64', shape: [4, 6], data: dbl })).data, dbl);
  assert.deepEqual(parseNpy(encodeNpy({ dtype: 'float32', shape: [], data: Float32Array.of(5) })).shape, []);
});

test('version 2 headers and an unaligned data offset are read', () => {
  const h = header("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 2);
  const bytes = new Uint8Array(h.length + 12 + 1);
  bytes.set(h, 1);
  bytes.set(new Uint8Array(Float32Array.of(1, 2, 3).buffer), h.length + 1);
  assert.deepEqual([...parseNpy(bytes.subarray(1)).data], [1, 2, 3]);
});

test('Fortran order, other dtypes, big-endian, truncation and garbage are E_BAD_INPUT naming the file', () => {
  const cases: [string, RegExp][] = [
    ["{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", /Fortran/],
    ["{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", /<i8/],
    ["{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", />f4/],
    ["{'descr': '<f4', 'fortran_order': False, 'shape': (1000,), }", /truncated/],
  ];
  for (const [dict, why] of cases) {
    assert.throws(
      () => parseNpy(header(dict), 'noise.npy'),
      (e: unknown) =>
        e instanceof VidpriorError &&
        e.code === 'E_BAD_INPUT' &&
        e.message.includes('noise.npy') &&
        why.test(e.message),
      dict,
    );
  }
  assert.throws(
    () => parseNpy(new TextEncoder().encode('PK\x03\x04 not numpy'), 'x.npy'),
    (e: unknown) => e instanceof VidpriorError && /magic/.test(e.message),
  );
});

test('readNpyFloat32 widens and checks the expected shape; files on disk', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-npy-'));
  try {
    const f = join(dir, 'a.npy');
    await writeNpy(f, tensor('float16', [1, 4, 2, 2], toFloat16(Float32Array.from({ length: 16 }, (_, i) => i / 4))));
    const t = await readNpyFloat32(f, [1, 4, 2, 2]);
    assert.equal(t.data[5], 1.25);
    await assert.rejects(
      readNpyFloat32(f, [1, 4, 8, 8]),
      (e: unknown) => e instanceof VidpriorError && e.message.includes('[1, 4, 8, 8]') && e.message.includes(f),
    );
    await assert.rejects(
      readNpy(join(dir, 'missing.npy')),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_BAD_INPUT',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('agrees with numpy both ways', { skip: hasNumpy ? false : 'python3 with numpy not available' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-npy-'));
  try {
    const ours = join(dir, 'ours.npy');
    await writeNpy(ours, float32([2, 3], [0.5, -1, 2, 3.25, 4, -5]));
    const py = `
import numpy as np, sys
a = np.load(sys.argv[1]); print(a.dtype, a.shape, repr(a.ravel().tolist()))
np.lib.format.write_array(open(sys.argv[2], 'wb'), np.arange(6, dtype='<f8').reshape(2, 3) / 4, version=(2, 0))
np.save(sys.argv[3], np.array([[1.5, -2]], dtype='<f2'))
np.save(sys.argv[4], np.asfortranarray(np.ones((2, 2), dtype='<f4')))
`;
    const r = spawnSync('python3', ['-c', py, ours, join(dir, 'v2.npy'), join(dir, 'h.npy'), join(dir, 'f.npy')], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'float32 (2, 3) [0.5, -1.0, 2.0, 3.25, 4.0, -5.0]');
    const v2 = await readNpy(join(dir, 'v2.npy'));
    assert.deepEqual(v2.shape, [2, 3]);
    assert.deepEqual([...v2.data], [0, 0.25, 0.5, 0.75, 1, 1.25]);
    assert.deepEqual([...(await readNpyFloat32(join(dir, 'h.npy'))).data], [1.5, -2]);
    await assert.rejects(
      readNpy(join(dir, 'f.npy')),
      (e: unknown) => e instanceof VidpriorError && /Fortran/.test(e.message),
    );
    assert.ok(readFileSync(ours).length % 64 === 24 % 64);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
