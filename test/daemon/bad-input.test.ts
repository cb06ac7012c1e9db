// Bad input of every kind gets an error reply and the daemon keeps serving (this client and others).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { VidpriorClient } from '../../protocol/client.js';
import { encode } from '../../protocol/codec.js';
import type { ErrorMessage } from '../../protocol/messages.js';
import { Rng } from '../../src/random.js';
import { rawClient, startTestDaemon, tempDir, testPng, type RawClient, type TestDaemon } from './helpers.js';

let d: TestDaemon;
let allowed: string;
before(async () => {
  allowed = tempDir('allowed');
  d = await startTestDaemon({
    allowDirs: [allowed],
    limits: { maxMessageBytes: 256 * 1024, maxFrameBytes: 64 * 1024, maxFrames: 8 },
  });
});
const leftovers: string[] = [];
after(async () => {
  await d.close();
  for (const dir of [allowed, ...leftovers]) rmSync(dir, { recursive: true, force: true });
});

async function expectError(c: RawClient, code: string, id?: number | string): Promise<ErrorMessage> {
  const m = await c.next();
  assert.equal(m.type, 'error', `expected an error, got ${JSON.stringify(m).slice(0, 200)}`);
  const e = m as ErrorMessage;
  assert.equal(e.code, code, e.message);
  if (id !== undefined) assert.equal(e.id, id);
  return e;
}

async function greeted() {
  const c = await rawClient(d.url);
  c.send({ type: 'hello', id: 0, protocol: 1 });
  assert.equal((await c.next()).type, 'welcome');
  return c;
}

async function stillServing(c: RawClient) {
  c.send({ type: 'list_jobs', id: 'alive' });
  const m = await c.next();
  assert.equal(m.type, 'jobs');
}

test('undecodable messages: random bytes, truncated MessagePack, text, not a map', async () => {
  const c = await rawClient(d.url);
  const rng = new Rng(1);
  for (let k = 0; k < 20; k++) {
    const bytes = Uint8Array.from({ length: 1 + rng.int(64) }, () => rng.int(256));
    c.send(bytes);
    const m = await c.next();
    assert.equal(m.type, 'error');
    assert.ok(['E_PROTOCOL', 'E_TOO_LARGE'].includes((m as ErrorMessage).code), (m as ErrorMessage).message);
  }
  const hello = encode({ type: 'hello', id: 1, protocol: 1 });
  c.send(hello.subarray(0, hello.length - 4));
  await expectError(c, 'E_PROTOCOL');
  c.send('{"type":"hello"}', false);
  await expectError(c, 'E_PROTOCOL');
  c.send([1, 2, 3]);
  await expectError(c, 'E_PROTOCOL');
  c.send({ type: 'list_jobs', id: 9 });
  const e = await expectError(c, 'E_PROTOCOL', 9);
  assert.match(e.message, /say hello first/);
  c.send(hello);
  assert.equal((await c.next()).type, 'welcome', 'the same connection can still say hello');
  await stillServing(c);
  c.ws.close();
});

test('handshake: wrong protocol version is E_VERSION and closes; a second hello is refused', async () => {
  const c = await rawClient(d.url);
  c.send({ type: 'hello', id: 1, protocol: 99 });
  const e = await expectError(c, 'E_VERSION', 1);
  assert.deepEqual(e.details?.supported, [1]);
  assert.equal(await c.closed, 1008);
  const g = await greeted();
  g.send({ type: 'hello', id: 2, protocol: 1 });
  await expectError(g, 'E_PROTOCOL', 2);
  g.ws.close();
});

test('unknown message types and wrong field types are answered by id', async () => {
  const c = await greeted();
  c.send({ type: 'launch_rockets', id: 3 });
  assert.match((await expectError(c, 'E_PROTOCOL', 3)).message, /unknown client message type "launch_rockets"/);
  c.send({ type: 'list_jobs', id: 4, limit: 'ten' });
  assert.match((await expectError(c, 'E_PROTOCOL', 4)).message, /limit must be an integer/);
  c.send({ type: 'submit', id: 5, kind: 'stylize', params: { prompt: 'x' }, frames: 'f0.png' });
  assert.match((await expectError(c, 'E_PROTOCOL', 5)).message, /frames must be an array/);
  c.send({
    type: 'submit',
    id: 6,
    kind: 'stylize',
    params: { prompt: 7 },
    frames: [{ png: await testPng(0, 64, 64) }],
  });
  assert.match((await expectError(c, 'E_PROTOCOL', 6)).message, /params\.prompt must be a string/);
  c.send({
    type: 'submit',
    id: 7,
    kind: 'stylize',
    params: { prompt: 'x', strength: 1.5 },
    frames: [{ png: await testPng(0, 64, 64) }],
  });
  assert.match(
    (await expectError(c, 'E_BAD_REQUEST', 7)).message,
    /params\.strength must be a number > 0 and ≤ 1, got number 1\.5/,
  );
  c.send({
    type: 'submit',
    id: 8,
    kind: 'stylize',
    params: { prompt: 'x', strenght: 0.3 },
    frames: [{ png: await testPng(0, 64, 64) }],
  });
  assert.match((await expectError(c, 'E_BAD_REQUEST', 8)).message, /strenght is not a known field/);
  c.send({ type: 'submit', id: 9, kind: 'paint', params: {}, frames: [] });
  await expectError(c, 'E_BAD_REQUEST', 9);
  c.send({ type: 'get_job', id: 10, job: 'j-20000101-000000-000000' });
  await expectError(c, 'E_NOT_FOUND', 10);
  c.send({ type: 'cancel', id: 11, job: '../../etc' });
  await expectError(c, 'E_NOT_FOUND', 11);
  c.send({
    type: 'submit',
    id: 12,
    kind: 'finetune',
    params: { prompt: 'x' },
    frames: [{ png: await testPng(0, 64, 64) }],
  });
  assert.match((await expectError(c, 'E_BAD_REQUEST', 12)).message, /at least one edited keyframe/);
  c.send({
    type: 'submit',
    id: 13,
    kind: 'finetune',
    params: { prompt: 'x' },
    frames: [{ png: await testPng(0, 64, 64) }],
    edits: [{ frame: 3, png: await testPng(1, 64, 64) }],
  });
  assert.match((await expectError(c, 'E_BAD_REQUEST', 13)).message, /edits\[0\]\.frame is 3 but the job has 1 frames/);
  c.send({
    type: 'submit',
    id: 14,
    kind: 'stylize',
    params: { prompt: 'x', adapter: 'no-such-adapter' },
    frames: [{ png: await testPng(0, 64, 64) }],
  });
  await expectError(c, 'E_NOT_FOUND', 14);
  c.send({
    type: 'submit',
    id: 15,
    kind: 'stylize',
    params: { prompt: 'x', adapter: '../../etc/passwd' },
    frames: [{ png: await testPng(0, 64, 64) }],
  });
  await expectError(c, 'E_BAD_REQUEST', 15);
  await stillServing(c);
  c.ws.close();
});

test('frames that are not images, of mixed sizes, too large, too many, or with both png and path', async () => {
  const c = await greeted();
  const png = await testPng(0, 64, 64);
  c.send({
    type: 'submit',
    id: 1,
    kind: 'stylize',
    params: { prompt: 'x' },
    frames: [{ png }, { png: Buffer.from('GIF89a not a png') }],
  });
  assert.match((await expectError(c, 'E_BAD_INPUT', 1)).message, /frames\[1\] is not a PNG or JPEG image/);
  const broken = Buffer.from(png);
  broken.fill(7, 20);
  c.send({ type: 'submit', id: 2, kind: 'stylize', params: { prompt: 'x' }, frames: [{ png: broken }] });
  assert.match((await expectError(c, 'E_BAD_INPUT', 2)).message, /frames\[0\]/);
  c.send({
    type: 'submit',
    id: 3,
    kind: 'stylize',
    params: { prompt: 'x' },
    frames: [{ png }, { png: await testPng(1, 128, 64) }],
  });
  assert.match((await expectError(c, 'E_BAD_INPUT', 3)).message, /all frames of a job must have one size/);
  c.send({
    type: 'submit',
    id: 4,
    kind: 'stylize',
    params: { prompt: 'x' },
    frames: [{ png: new Uint8Array(100 * 1024) }],
  });
  await expectError(c, 'E_TOO_LARGE', 4);
  c.send({
    type: 'submit',
    id: 5,
    kind: 'stylize',
    params: { prompt: 'x' },
    frames: Array.from({ length: 9 }, () => ({ png })),
  });
  await expectError(c, 'E_TOO_LARGE', 5);
  c.send({ type: 'submit', id: 6, kind: 'stylize', params: { prompt: 'x' }, frames: [{ png, path: '/tmp/x.png' }] });
  await expectError(c, 'E_BAD_REQUEST', 6);
  c.send({ type: 'submit', id: 7, kind: 'stylize', params: { prompt: 'x' }, frames: [{ png, name: '../escape.png' }] });
  await expectError(c, 'E_BAD_REQUEST', 7);
  await stillServing(c);
  c.ws.close();
});

test('an oversized message is answered E_TOO_LARGE; a huge one closes only that connection (1009)', async () => {
  const c = await greeted();
  c.send({
    type: 'submit',
    id: 1,
    kind: 'stylize',
    params: { prompt: 'x' },
    frames: [{ png: new Uint8Array(300 * 1024) }],
  });
  await expectError(c, 'E_TOO_LARGE');
  await stillServing(c);
  c.send(new Uint8Array(600 * 1024));
  assert.equal(await c.closed, 1009);
  const other = await greeted();
  await stillServing(other);
  other.ws.close();
});

test('paths: inside the allowed folders they are read; outside, via .. or a symlink they are refused', async () => {
  const c = await greeted();
  mkdirSync(join(allowed, 'shot'), { recursive: true });
  writeFileSync(join(allowed, 'shot', 'a.png'), await testPng(2, 64, 64));
  const outside = tempDir('outside');
  leftovers.push(outside);
  writeFileSync(join(outside, 'secret.png'), await testPng(3, 64, 64));
  symlinkSync(join(outside, 'secret.png'), join(allowed, 'shot', 'link.png'));
  c.send({
    type: 'submit',
    id: 1,
    kind: 'stylize',
    params: { prompt: 'x' },
    frames: [{ path: join(outside, 'secret.png') }],
  });
  await expectError(c, 'E_FORBIDDEN_PATH', 1);
  c.send({
    type: 'submit',
    id: 2,
    kind: 'stylize',
    params: { prompt: 'x' },
    frames: [{ path: `${allowed}/shot/../../${outside.split('/').pop()}/secret.png` }],
  });
  await expectError(c, 'E_FORBIDDEN_PATH', 2);
  c.send({
    type: 'submit',
    id: 3,
    kind: 'stylize',
    params: { prompt: 'x' },
    frames: [{ path: join(allowed, 'shot', 'link.png') }],
  });
  await expectError(c, 'E_FORBIDDEN_PATH', 3);
  c.send({ type: 'submit', id: 4, kind: 'stylize', params: { prompt: 'x' }, frames: [{ path: 'relative.png' }] });
  await expectError(c, 'E_FORBIDDEN_PATH', 4);
  c.send({
    type: 'submit',
    id: 5,
    kind: 'stylize',
    params: { prompt: 'x' },
    frames: [{ path: join(allowed, 'shot', 'a.png') }],
    output_dir: '/etc/vidprior',
  });
  await expectError(c, 'E_FORBIDDEN_PATH', 5);
  c.send({
    type: 'submit',
    id: 6,
    kind: 'stylize',
    params: { prompt: 'x' },
    frames: [{ path: join(allowed, 'shot', 'missing.png') }],
  });
  await expectError(c, 'E_BAD_INPUT', 6);
  c.send({
    type: 'submit',
    id: 7,
    kind: 'stylize',
    params: { prompt: 'x', steps: 4, strength: 0.5 },
    frames: [{ path: join(allowed, 'shot', 'a.png') }],
    output_dir: join(allowed, 'out'),
  });
  const accepted = await c.next();
  assert.equal(accepted.type, 'accepted');
  let m = await c.next();
  while (m.type === 'progress' || m.type === 'frame') m = await c.next();
  assert.equal(m.type, 'done', JSON.stringify(m));
  assert.ok(existsSync(join(allowed, 'out', 'a.png')), 'output_dir receives the frames');
  c.ws.close();
});

test('token-protected daemon: missing or wrong token is E_AUTH and closes; the right one is welcomed', async () => {
  const t = await startTestDaemon({ listen: { host: '127.0.0.1', port: 0, token: 'correct horse battery' } });
  try {
    await assert.rejects(VidpriorClient.connect(t.url), (e: Error & { code?: string }) => e.code === 'E_AUTH');
    await assert.rejects(
      VidpriorClient.connect(t.url, { token: 'wrong' }),
      (e: Error & { code?: string }) => e.code === 'E_AUTH',
    );
    const ok = await VidpriorClient.connect(t.url, { token: 'correct horse battery' });
    assert.equal(ok.welcome.type, 'welcome');
    await ok.close();
    // Without a token the daemon refuses browser pages (Origin header); with one it lets them try.
    const browser = new WebSocket(t.url, { origin: 'https://example.com' });
    await new Promise((resolve) => browser.once('open', resolve));
    browser.close();
  } finally {
    await t.close();
  }
  const page = new WebSocket(d.url, { origin: 'https://evil.example' });
  const status = await new Promise<number>((resolve) =>
    page.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)),
  );
  assert.equal(status, 403);
});

test('binding beyond loopback needs a token', async () => {
  await assert.rejects(
    startTestDaemon({ listen: { host: '0.0.0.0', port: 0 } }),
    (e: Error & { code?: string }) => e.code === 'E_BAD_REQUEST' && /--token/.test(e.message),
  );
});

test('heartbeat: a peer that stops answering pings is dropped', async () => {
  const t = await startTestDaemon({ listen: { host: '127.0.0.1', port: 0, heartbeatMs: 100 } });
  try {
    const silent = await rawClient(t.url, { autoPong: false });
    const code = await silent.closed;
    assert.equal(code, 1006, 'terminated without a close handshake');
    const alive = await VidpriorClient.connect(t.url);
    await new Promise((r) => setTimeout(r, 350));
    assert.equal((await alive.listJobs()).length, 0, 'a client that answers pings stays connected');
    await alive.close();
  } finally {
    await t.close();
  }
});
