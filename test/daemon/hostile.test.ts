// Hostile clients against a live daemon: extension bombs, floods before hello, too many connections, pipelined
// handshakes, browser origins, readers that never read, too many frames, decompression bombs. Each time the
// daemon stays up, memory stays bounded and a well-formed client is served within a second.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import sharp from 'sharp';
import WebSocket from 'ws';
import { VidpriorClient } from '../../protocol/client.js';
import { defaultPixelLimits } from '../../src/io/image-header.js';
import { bombPng } from '../io/bomb-png.js';
import type { ErrorMessage } from '../../protocol/messages.js';
import {
  clientFrame,
  clientMessage,
  peakRssGrowthMb,
  rawClient,
  rawSocket,
  readServerFrames,
  startTestDaemon,
  testPng,
  timed,
  type TestDaemon,
} from './helpers.js';
import { scriptedExecutor } from './scripted-executor.js';

const TOKEN = 'correct horse battery staple';
const small = () => testPng(0, 8, 8);

let d: TestDaemon;
const executor = scriptedExecutor(small);
before(async () => {
  d = await startTestDaemon({ executors: [executor] });
});
after(async () => {
  await d.close();
});

/** A well-formed client's round trip, in ms. */
async function serviceMs(url: string, token?: string): Promise<number> {
  const { ms } = await timed(async () => {
    const c = await VidpriorClient.connect(url, { token });
    await c.listJobs();
    await c.close();
  });
  return ms;
}

function extBomb(payloadBytes: number): Buffer {
  // {"type":"hello","id":1,"protocol":<ext 0x42 of payloadBytes>}: msgpackr decodes ext 0x42 to a BigInt.
  const head = Buffer.from([0xc9, 0, 0, 0, 0, 0x42]);
  head.writeUInt32BE(payloadBytes, 1);
  return Buffer.concat([
    Buffer.from([0x83, 0xa4, ...Buffer.from('type'), 0xa5, ...Buffer.from('hello'), 0xa2, ...Buffer.from('id'), 0x01]),
    Buffer.from([0xa8, ...Buffer.from('protocol')]),
    head,
    Buffer.alloc(payloadBytes, 0x7f),
  ]);
}

test('a 4 MB MessagePack extension (a BigInt to msgpackr) is refused at once with a short reply; others are served within a second', {
  timeout: 30_000,
}, async () => {
  // Before hello: the connection may not send that much at all.
  const early = await rawClient(d.url);
  early.send(extBomb(4 * 1024 * 1024));
  const [code, ms] = await Promise.all([early.closed, serviceMs(d.url)]);
  assert.equal(code, 1009, 'closed as too big before hello');
  assert.ok(ms < 1000, `a well-formed client waited ${ms.toFixed(0)} ms`);
  // After hello: an E_PROTOCOL reply that does not echo the number, and no freeze.
  const c = await rawClient(d.url);
  c.send({ type: 'hello', id: 0, protocol: 1 });
  assert.equal((await c.next()).type, 'welcome');
  c.send(extBomb(4 * 1024 * 1024));
  const [bomb, others] = await Promise.all([timed(() => c.next()), serviceMs(d.url)]);
  const e = bomb.result as ErrorMessage;
  assert.equal(e.type, 'error');
  assert.equal(e.code, 'E_PROTOCOL');
  assert.ok(e.message.length < 300, `reply of ${e.message.length} characters`);
  assert.ok(bomb.ms < 1000, `answered in ${bomb.ms.toFixed(0)} ms`);
  assert.ok(others < 1000, `a well-formed client waited ${others.toFixed(0)} ms`);
  c.ws.close();
});

test('before hello a connection may send only a few KB: floods of any size leave memory under +100 MB', {
  timeout: 30_000,
}, async () => {
  const port = Number(new URL(d.url).port);
  const chunk = Buffer.alloc(1024 * 1024, 0x41);
  /** Writes up to `limitBytes` as fast as the socket takes them; resolves with how many went out before it closed. */
  const flood = async (s: Socket, limitBytes: number, frame: (i: number) => Buffer[]): Promise<number> => {
    let sent = 0;
    let open = true;
    s.on('close', () => {
      open = false;
    });
    s.on('error', () => {
      open = false;
    });
    for (let i = 0; open && sent < limitBytes; i++) {
      for (const part of frame(i)) {
        if (!open) break;
        sent += part.length;
        if (!s.write(part))
          await new Promise((r) => {
            s.once('drain', r);
            s.once('close', r);
          });
      }
    }
    s.destroy();
    return sent;
  };
  const { growthMb, result } = await peakRssGrowthMb(async () => {
    const big = await Promise.all(Array.from({ length: 8 }, () => rawSocket(port)));
    const many = await Promise.all(Array.from({ length: 8 }, () => rawSocket(port)));
    const small4k = Buffer.concat([clientFrame(4096), Buffer.alloc(4096, 0xc1)]);
    return Promise.all([
      // One frame announcing 500 MB, then its bytes.
      ...big.map((s) =>
        flood(s, 48 * 1024 * 1024, (i) => (i === 0 ? [clientFrame(500 * 1024 * 1024), chunk] : [chunk])),
      ),
      // Many 4 KB messages (each answered with an error).
      ...many.map((s) => flood(s, 48 * 1024 * 1024, () => [small4k])),
    ]);
  });
  const accepted = Math.max(...result);
  assert.ok(growthMb < 100, `memory grew by ${growthMb.toFixed(0)} MB`);
  assert.ok(accepted < 48 * 1024 * 1024, `a connection could send ${accepted} bytes without saying hello`);
  assert.ok((await serviceMs(d.url)) < 1000);
});

test('connections are capped: a silent one makes room for a new client; when all are greeted the next gets 503 saying why', {
  timeout: 30_000,
}, async () => {
  const t = await startTestDaemon({
    executors: [executor],
    listen: { host: '127.0.0.1', port: 0, heartbeatMs: 60_000, maxConnections: 4 },
  });
  const port = Number(new URL(t.url).port);
  const silent: Socket[] = [];
  try {
    for (let i = 0; i < 4; i++) silent.push(await rawSocket(port));
    assert.ok((await serviceMs(t.url)) < 1000, 'the oldest silent connection gave way');
    const greeted = await Promise.all(Array.from({ length: 4 }, () => t.connect()));
    const refused = new WebSocket(t.url);
    const res = await new Promise<{ status: number; body: string }>((resolve) =>
      refused.once('unexpected-response', (_req, r) => {
        let body = '';
        r.on('data', (b: Buffer) => {
          body += b.toString();
        });
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      }),
    );
    assert.equal(res.status, 503);
    assert.match(res.body, /4 connections/);
    await greeted[0]!.close();
    await new Promise((r) => setTimeout(r, 50));
    assert.ok((await serviceMs(t.url)) < 1000, 'a closed connection frees its place');
  } finally {
    for (const s of silent) s.destroy();
    await t.close();
  }
});

test('messages of one connection are handled in order: a burst of wrong hellos, the right one and a submit creates no job', {
  timeout: 30_000,
}, async () => {
  const runs = executor.runs;
  const t = await startTestDaemon({
    executors: [executor],
    listen: { host: '127.0.0.1', port: 0, heartbeatMs: 60_000, token: TOKEN },
  });
  try {
    const port = Number(new URL(t.url).port);
    const submit = {
      type: 'submit',
      id: 9,
      kind: 'stylize',
      params: { prompt: 'x' },
      frames: [{ png: await small() }],
    };
    for (const guesses of [1, 2000]) {
      const s = await rawSocket(port);
      const read = readServerFrames(s);
      const burst = [
        ...Array.from({ length: guesses }, (_, i) =>
          clientMessage({ type: 'hello', id: i, protocol: 1, token: `guess-${i}` }),
        ),
        clientMessage({ type: 'hello', id: 'right', protocol: 1, token: TOKEN }),
        clientMessage(submit),
      ];
      s.write(Buffer.concat(burst)); // one write: the daemon reads them in the same tick
      const code = await read.closed;
      assert.equal(code, 1008);
      assert.deepEqual(
        read.messages.map((m) => [m.type, (m as ErrorMessage).code]),
        [['error', 'E_AUTH']],
        `${guesses} guess(es): only the first hello is answered`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(t.daemon.queue.list().length, 0, 'no job was created');
    assert.equal(executor.runs, runs);
  } finally {
    await t.close();
  }
});

test('browser origins: the daemon’s own address is allowed (non-browser clients send it), any other is 403 saying what to do', {
  timeout: 30_000,
}, async () => {
  const port = Number(new URL(d.url).port);
  for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
    // Python's websocket-client sends Origin: http://<host>:<port> of the URL it connects to.
    const c = await rawClient(d.url, { origin });
    c.send({ type: 'hello', id: 1, protocol: 1 });
    assert.equal((await c.next()).type, 'welcome', origin);
    c.ws.close();
  }
  for (const origin of [
    'https://evil.example',
    `http://127.0.0.1:${port + 1}`,
    `http://evil.example:${port}`,
    'null',
  ]) {
    const page = new WebSocket(d.url, { origin });
    const res = await new Promise<{ status: number; body: string }>((resolve) =>
      page.once('unexpected-response', (_req, r) => {
        let body = '';
        r.on('data', (b: Buffer) => {
          body += b.toString();
        });
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      }),
    );
    assert.equal(res.status, 403, origin);
    assert.match(res.body, /--token/, 'the refusal says how to connect');
    assert.match(res.body, new RegExp(`http://127\\.0\\.0\\.1:${port}`), 'and which origin is allowed');
  }
});

test('clients that never read: memory buffered for all of them together is capped', { timeout: 60_000 }, async () => {
  // A 1 MB frame (noise does not compress), 100 of them: each subscriber is sent 100 MB, far more than the
  // kernel's socket buffers take, while the job runs.
  const noise = randomBytes(600 * 600 * 3);
  const big = await sharp(noise, { raw: { width: 600, height: 600, channels: 3 } })
    .png({ compressionLevel: 0 })
    .toBuffer();
  const streamer = scriptedExecutor(() => big);
  const t = await startTestDaemon({
    executors: [streamer],
    listen: { host: '127.0.0.1', port: 0, heartbeatMs: 60_000, maxOutboxBytes: 32 * 1024 * 1024 },
  });
  try {
    const c = await t.connect();
    streamer.gate(0);
    const job = await c.submit({
      kind: 'stylize',
      params: { prompt: 'x' },
      frames: await Promise.all(
        Array.from({ length: 100 }, async (_, i) => ({ name: `f${i}.png`, png: await small() })),
      ),
    });
    job.onFrame = () => {}; // this client reads and drops them
    await streamer.waiting();
    const port = Number(new URL(t.url).port);
    const sockets: Socket[] = [];
    for (let i = 0; i < 12; i++) {
      const s = await rawSocket(port);
      s.write(clientMessage({ type: 'hello', id: 0, protocol: 1 }));
      s.write(clientMessage({ type: 'attach', id: 1, job: job.id, replay: false }));
      sockets.push(s);
    }
    await new Promise((r) => setTimeout(r, 200));
    for (const s of sockets) s.pause(); // from now on they never read
    const { growthMb } = await peakRssGrowthMb(async () => {
      streamer.open();
      await job.done;
      await new Promise((r) => setTimeout(r, 300));
    });
    for (const s of sockets) s.destroy();
    assert.ok(growthMb < 100, `12 clients that never read grew memory by ${growthMb.toFixed(0)} MB`);
    assert.ok((await serviceMs(t.url)) < 1000);
  } finally {
    await t.close();
  }
});

test('100,001 frames is E_TOO_LARGE (the limit is 100,000)', { timeout: 30_000 }, async () => {
  const c = await rawClient(d.url);
  c.send({ type: 'hello', id: 0, protocol: 1 });
  assert.equal((await c.next()).type, 'welcome');
  const png = await small();
  c.send({
    type: 'submit',
    id: 1,
    kind: 'stylize',
    params: { prompt: 'x' },
    frames: Array.from({ length: 100_001 }, () => ({ png })),
  });
  const e = (await c.next()) as ErrorMessage;
  assert.equal(e.code, 'E_TOO_LARGE', e.message);
  assert.match(e.message, /100001 frames/);
  c.ws.close();
});

test('decompression bombs are refused from their header, before any decoding: a 207-byte 1024² PNG, a 16000² PNG', {
  timeout: 30_000,
}, async () => {
  // The default limits of a machine with 24 GiB.
  const t = await startTestDaemon({ executors: [executor], limits: defaultPixelLimits(24 * 1024 ** 3) });
  try {
    const c = await rawClient(t.url);
    c.send({ type: 'hello', id: 0, protocol: 1 });
    assert.equal((await c.next()).type, 'welcome');
    const tiny = bombPng(1024, 1024);
    assert.ok(tiny.length < 300, `${tiny.length} bytes`);
    const huge = bombPng(16000, 16000);
    assert.ok(huge.length < 64 * 1024, `${huge.length} bytes`);
    const { growthMb } = await peakRssGrowthMb(async () => {
      for (const [id, png] of [
        [1, tiny],
        [2, huge],
      ] as const) {
        // work_size 0: the model works at the frame's own size (by default a 1024² frame would work at 512²).
        c.send({ type: 'submit', id, kind: 'stylize', params: { prompt: 'x', work_size: 0 }, frames: [{ png }] });
        const e = (await c.next()) as ErrorMessage;
        assert.equal(e.type, 'error', JSON.stringify(e).slice(0, 200));
        assert.equal(e.code, 'E_TOO_LARGE', e.message);
        assert.match(e.message, /frames\[0\] is (1024×1024|16000×16000)/);
      }
    });
    assert.ok(growthMb < 100, `memory grew by ${growthMb.toFixed(0)} MB`);
    assert.equal(t.daemon.queue.list().length, 0);
    c.ws.close();
  } finally {
    await t.close();
  }
});
