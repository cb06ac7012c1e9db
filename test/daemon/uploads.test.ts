// Chunked, resumable uploads (protocol §4): a strip larger than the message limit goes through uploads and a
// job whose frames stream back one by one; an interrupted upload resumes from upload_status; bad offsets, ids,
// sizes and hashes are refused with their codes; abandoned and leftover uploads are removed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { VidpriorError } from '../../src/errors.js';
import type { Upload } from '../../protocol/messages.js';
import { rejectsWith } from '../assert-close.js';
import { startTestDaemon, tempDir, type TestDaemon } from './helpers.js';

const LIMIT = 64 * 1024;
let d: TestDaemon;
const frames: Uint8Array[] = [];

/** A noise PNG (it does not compress): 96×96 is ~27 KiB, so a few frames pass the 64 KiB message limit. */
async function noisePng(seed: number, size = 96): Promise<Uint8Array> {
  const data = Buffer.alloc(size * size * 3);
  let x = (seed + 1) * 0x9e3779b9;
  for (let i = 0; i < data.length; i++) {
    // xorshift32: deterministic and incompressible enough.
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = x & 255;
  }
  return sharp(data, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toBuffer();
}

before(async () => {
  d = await startTestDaemon({ limits: { maxMessageBytes: LIMIT } });
  for (let i = 0; i < 4; i++) frames.push(await noisePng(i));
});
after(() => d.close());

const uploadsDir = () => join(d.dataDir, 'uploads');

test('a strip larger than the message limit goes through uploads; results stream back frame by frame', async () => {
  const c = await d.connect();
  assert.ok(c.welcome.capabilities.includes('upload'));
  const total = frames.reduce((n, f) => n + f.length, 0);
  assert.ok(total > LIMIT, `${total} bytes should exceed the ${LIMIT}-byte limit`);
  // In one message it cannot go (too large to read its id: the error answers no request).
  const refused = new Promise<VidpriorError>((resolve) => {
    c.onError = resolve;
  });
  void c
    .submit({ kind: 'stylize', params: { prompt: 'ink', steps: 4 }, frames: frames.map((png) => ({ png })) })
    .catch(() => {});
  assert.equal((await refused).code, 'E_TOO_LARGE');
  const big = await noisePng(9, 160); // more than one chunk (chunk_bytes is half the limit)
  const ids: string[] = [];
  for (const [i, png] of [...frames, big].entries()) ids.push(await c.upload(png, { name: `f${i}.png` }));
  // The big one is another size: it is sent alone as a second job below.
  const job = await c.submit({
    kind: 'stylize',
    params: { prompt: 'ink', steps: 4, strength: 0.5 },
    frames: ids.slice(0, 4).map((upload, i) => ({ name: `f${i}.png`, upload })),
  });
  const seen: number[] = [];
  let doneEarly = false;
  job.onFrame = (f) => {
    seen.push(f.index);
    assert.ok(!doneEarly);
  };
  const done = await job.done;
  doneEarly = true;
  assert.deepEqual(seen.sort(), [0, 1, 2, 3]);
  assert.equal(done.outputs.frames, 4);
  // The job keeps its own copies: the uploads it used are gone, in the store and on disk.
  await rejectsWith(c.uploadStatus(ids[0]!), 'E_NOT_FOUND');
  const single = await c.submit({
    kind: 'stylize',
    params: { prompt: 'ink', steps: 4, strength: 0.5 },
    frames: [{ name: 'big.png', upload: ids[4]! }],
  });
  single.onFrame = () => {};
  await single.done;
  assert.deepEqual(readdirSync(uploadsDir()), []);
});

test('an interrupted upload resumes from upload_status on a new connection', async () => {
  const png = await noisePng(5, 160);
  const first = await d.connect();
  const begun = (await first.request({ type: 'upload_begin', bytes: png.length, name: 'f.png' })) as Upload;
  assert.ok(png.length > begun.chunk_bytes, 'the frame should need more than one chunk');
  assert.ok(begun.chunk_bytes <= LIMIT / 2);
  await first.request({
    type: 'upload_chunk',
    upload: begun.upload,
    offset: 0,
    data: png.subarray(0, begun.chunk_bytes),
  });
  await first.close();

  const second = await d.connect();
  const status = await second.uploadStatus(begun.upload);
  assert.equal(status.received, begun.chunk_bytes);
  assert.equal(status.complete, false);
  const id = await second.upload(png, { resume: begun.upload });
  assert.equal(id, begun.upload);
  const job = await second.submit({ kind: 'stylize', params: { prompt: 'ink', steps: 4 }, frames: [{ upload: id }] });
  job.onFrame = () => {};
  assert.equal((await job.done).outputs.frames, 1);
});

test('bad offsets, ids, sizes and hashes are refused with their codes', async () => {
  const c = await d.connect();
  const png = frames[0]!;
  const req = (m: Record<string, unknown>) => c.request(m as never) as Promise<Upload>;
  await rejectsWith(req({ type: 'upload_status', upload: 'u-00000000000000000000000000000000' }), 'E_NOT_FOUND');
  await rejectsWith(req({ type: 'upload_chunk', upload: 'nonsense', offset: 0, data: png }), 'E_NOT_FOUND');
  await rejectsWith(req({ type: 'upload_begin', bytes: 64 * 1024 ** 2 }), 'E_TOO_LARGE', /max_frame_bytes/);
  const u = await req({ type: 'upload_begin', bytes: png.length, sha256: '0'.repeat(64) });
  // Past the announced size, larger than a chunk, at the wrong offset.
  await rejectsWith(
    req({ type: 'upload_chunk', upload: u.upload, offset: 0, data: new Uint8Array(png.length + 1) }),
    'E_BAD_REQUEST',
  );
  await rejectsWith(
    req({ type: 'upload_chunk', upload: u.upload, offset: 0, data: new Uint8Array(u.chunk_bytes + 1) }),
    'E_TOO_LARGE',
  );
  await req({ type: 'upload_chunk', upload: u.upload, offset: 0, data: png.subarray(0, 100) });
  await assert.rejects(
    req({ type: 'upload_chunk', upload: u.upload, offset: 0, data: png.subarray(0, 100) }),
    (e: unknown) =>
      e instanceof VidpriorError &&
      e.code === 'E_BAD_REQUEST' &&
      /send from offset 100/.test(e.message) &&
      e.details?.received === 100,
  );
  // A job cannot use it unfinished; upload_end refuses it unfinished, then with the wrong hash (and drops it).
  await rejectsWith(
    c.submit({ kind: 'stylize', params: { prompt: 'ink' }, frames: [{ upload: u.upload }] }),
    'E_BAD_REQUEST',
    /not finished/,
  );
  await rejectsWith(req({ type: 'upload_end', upload: u.upload }), 'E_BAD_REQUEST', /100 of its/);
  await req({ type: 'upload_chunk', upload: u.upload, offset: 100, data: png.subarray(100) });
  await rejectsWith(req({ type: 'upload_end', upload: u.upload }), 'E_BAD_INPUT', /SHA-256/);
  await rejectsWith(c.uploadStatus(u.upload), 'E_NOT_FOUND');
  // A frame that names two sources is refused.
  const ok = await c.upload(png);
  await rejectsWith(
    c.submit({ kind: 'stylize', params: { prompt: 'ink' }, frames: [{ upload: ok, png }] }),
    'E_BAD_REQUEST',
    /exactly one of/,
  );
  // Still usable after the refusal.
  assert.equal((await c.uploadStatus(ok)).complete, true);
});

test('abandoned uploads expire; leftovers of an earlier daemon are removed at start', async () => {
  const dataDir = tempDir('uploads-expire');
  try {
    mkdirSync(join(dataDir, 'uploads'), { recursive: true });
    writeFileSync(join(dataDir, 'uploads', 'u-leftover.part'), 'from a daemon that was killed');
    const short = await startTestDaemon({ dataDir, uploads: { ttlMs: 150 } });
    try {
      assert.deepEqual(readdirSync(join(dataDir, 'uploads')), []);
      const c = await short.connect();
      const u = (await c.request({ type: 'upload_begin', bytes: 10 })) as Upload;
      assert.ok(existsSync(join(dataDir, 'uploads', `${u.upload}.part`)));
      await new Promise((r) => setTimeout(r, 600));
      await rejectsWith(c.uploadStatus(u.upload), 'E_NOT_FOUND');
      assert.deepEqual(readdirSync(join(dataDir, 'uploads')), []);
    } finally {
      await short.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
