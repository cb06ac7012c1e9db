// Shared by the daemon tests: a daemon on a free port with a fresh data dir, deterministic test frames.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import WebSocket from 'ws';
import { decode, encode } from '../../protocol/codec.js';
import { parseServerMessage, type ServerMessage } from '../../protocol/messages.js';
import { overrideConfig } from '../../src/config.js';
import { ensureDefaultModel } from '../../src/models/builder/default-model.js';
import { startDaemon, type Daemon, type DaemonOptions } from '../../daemon/daemon.js';
import { VidpriorClient } from '../../protocol/client.js';

/** One cache for the embedded default model across test files (building it is atomic). */
export const TEST_CACHE = join(tmpdir(), 'vidprior-test-cache');

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `vidprior-${prefix}-`));
}

/** A w×h PNG whose pixels depend on `seed` (gradients, so the VAE sees structure). */
export async function testPng(seed: number, w = 32, h = 32): Promise<Uint8Array> {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      data[i] = (x * 8 + seed * 40) % 256;
      data[i + 1] = (y * 8 + seed * 17) % 256;
      data[i + 2] = ((x + y) * 4 + seed * 90) % 256;
    }
  }
  return sharp(data, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
}

export interface TestDaemon {
  daemon: Daemon;
  url: string;
  dataDir: string;
  connect(opts?: { token?: string }): Promise<VidpriorClient>;
  close(): Promise<void>;
}

export async function startTestDaemon(opts: Partial<DaemonOptions> = {}): Promise<TestDaemon> {
  overrideConfig({ cacheDir: TEST_CACHE });
  const dataDir = opts.dataDir ?? tempDir('data');
  const daemon = await startDaemon({
    dataDir,
    ep: 'cpu',
    embeddedDefault: () => ensureDefaultModel(),
    listen: { host: '127.0.0.1', port: 0, heartbeatMs: 60_000 },
    ...opts,
  }).catch((err: unknown) => {
    if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  });
  const url = daemon.server?.url ?? '';
  const clients: VidpriorClient[] = [];
  return {
    daemon,
    url,
    dataDir,
    async connect(o = {}) {
      const c = await VidpriorClient.connect(url, { client: 'test', ...o });
      clients.push(c);
      return c;
    },
    async close() {
      await Promise.all(clients.map((c) => c.close()));
      await daemon.close();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A raw websocket client: send anything, read each reply decoded and validated. */
export async function rawClient(url: string, opts: WebSocket.ClientOptions = {}) {
  const ws = new WebSocket(url, opts);
  const inbox: ServerMessage[] = [];
  const waiters: ((m: ServerMessage) => void)[] = [];
  ws.on('message', (data) => {
    const m = parseServerMessage(decode(data as Buffer));
    const w = waiters.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return {
    ws,
    closed,
    /** Messages received and not yet taken by next(). */
    inbox,
    send(v: unknown, binary = true) {
      ws.send(v instanceof Uint8Array || typeof v === 'string' ? v : encode(v as object), { binary });
    },
    next(): Promise<ServerMessage> {
      const m = inbox.shift();
      return m ? Promise.resolve(m) : new Promise((resolve) => waiters.push(resolve));
    },
  };
}
export type RawClient = Awaited<ReturnType<typeof rawClient>>;

/** A client websocket frame (masked with a zero key, so the payload goes as it is). */
export function clientFrame(payloadLength: number, opcode = 0x2, fin = true): Buffer {
  const head =
    payloadLength < 126
      ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | payloadLength])
      : payloadLength < 65536
        ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, payloadLength >> 8, payloadLength & 0xff])
        : Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 127]), u64(payloadLength)]);
  return Buffer.concat([head, Buffer.alloc(4)]);
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** A TCP connection that has done the websocket upgrade by hand (for clients no library would be). */
export async function rawSocket(port: number, headers: Record<string, string> = {}): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.write(
    `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
  );
  const response = await new Promise<string>((resolve, reject) => {
    let got = '';
    const onData = (b: Buffer) => {
      got += b.toString('latin1');
      if (got.includes('\r\n\r\n')) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => resolve(got));
  });
  if (!response.startsWith('HTTP/1.1 101')) {
    socket.destroy();
    throw new Error(`upgrade refused: ${response.split('\r\n')[0]}`);
  }
  return socket;
}

/** Peak resident memory of this process while `during` runs, sampled every 5 ms, in MB above the start. */
export async function peakRssGrowthMb<T>(during: () => Promise<T>): Promise<{ result: T; growthMb: number }> {
  globalThis.gc?.();
  const start = process.memoryUsage.rss();
  let peak = start;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  try {
    const result = await during();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, growthMb: (peak - start) / 1024 / 1024 };
  } finally {
    clearInterval(timer);
  }
}

/** Resolves with how long `fn` took, in ms. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const t0 = performance.now();
  const result = await fn();
  return { result, ms: performance.now() - t0 };
}

/** Reads what the daemon sends on a raw socket: its binary messages (decoded) and the close code, until it closes. */
export function readServerFrames(socket: Socket): { messages: ServerMessage[]; closed: Promise<number | null> } {
  const messages: ServerMessage[] = [];
  let buf = Buffer.alloc(0);
  let closeCode: number | null = null;
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0]! & 0x0f;
      let len = buf[1]! & 0x7f;
      let at = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        at = 10;
      }
      if (buf.length < at + len) return;
      const payload = buf.subarray(at, at + len);
      buf = buf.subarray(at + len);
      if (opcode === 0x2) messages.push(parseServerMessage(decode(payload)));
      if (opcode === 0x8 && payload.length >= 2) closeCode = payload.readUInt16BE(0);
    }
  });
  const closed = new Promise<number | null>((resolve) => {
    socket.once('close', () => resolve(closeCode));
  });
  socket.on('error', () => {});
  return { messages, closed };
}

/** One client websocket message (masked with a zero key) holding `message` MessagePack-encoded. */
export function clientMessage(message: object | Uint8Array): Buffer {
  const payload = message instanceof Uint8Array ? message : encode(message);
  return Buffer.concat([clientFrame(payload.length), payload]);
}

/** Waits until `file` exists and `accept` holds for its JSON. */
export async function waitJson(
  file: string,
  accept: (v: Record<string, unknown>) => boolean,
  ms = 30_000,
): Promise<Record<string, unknown>> {
  const end = Date.now() + ms;
  for (;;) {
    if (existsSync(file)) {
      try {
        const v = JSON.parse(readFileSync(file, 'utf8'));
        if (accept(v)) return v;
        if (v.state === 'failed') throw new Error(`${file}: the job failed: ${JSON.stringify(v.error)}`);
      } catch (err) {
        if (!(err instanceof SyntaxError)) throw err; // a SyntaxError: caught mid-write, look again
      }
    }
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${file}: ${existsSync(file) ? readFileSync(file, 'utf8') : 'missing'}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
