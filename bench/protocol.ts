/**
 * Protocol overhead per 512×512 frame on loopback, beside the inference time per frame, measured in the same
 * run on the same machine:
 *   - codec: encode a `frame` message (PNG as bin) and decode + validate it, without a socket;
 *   - loopback: one frame message over a real websocket (same ws options as the daemon), encode → send →
 *     receive → decode + validate, as a ping-pong timed per direction (round trip / 2), and the throughput of
 *     frames sent back to back;
 *   - daemon: a real stylize job through `vidprior serve`'s code (in-process daemon, the bench model) — the
 *     seconds per frame the client sees, which is what the protocol overhead is compared with — and the reply
 *     time of another client's requests meanwhile (inference runs off the event loop).
 *
 *   node dist/bench/protocol.js [--ep cpu] [--preset tiny] [--quick]      (also part of `npm run bench`)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { WebSocketServer, WebSocket } from 'ws';
import { Rng } from '../src/random.js';
import { decode, encode } from '../protocol/codec.js';
import { parseServerMessage, type Frame } from '../protocol/messages.js';
import { VidpriorClient } from '../protocol/client.js';
import { startDaemon } from '../daemon/daemon.js';
import { type BenchContext, type BenchModule, benchModelDir, hostInfo, round } from './common.js';

const SIZE = 512;

/** A 512×512 PNG that compresses like a photo (smooth shapes plus sensor-like noise), not like a flat test card. */
async function photoLikePng(seed: number): Promise<Uint8Array> {
  const rng = new Rng(seed);
  const rgb = Buffer.alloc(SIZE * SIZE * 3);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const i = (y * SIZE + x) * 3;
      const base = 128 + 60 * Math.sin((x + seed * 13) / 37) * Math.cos(y / 53);
      for (let c = 0; c < 3; c++) rgb[i + c] = Math.max(0, Math.min(255, Math.round(base + c * 20 + rng.normal() * 6)));
    }
  }
  return sharp(rgb, { raw: { width: SIZE, height: SIZE, channels: 3 } })
    .png()
    .toBuffer();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const frameMessage = (png: Uint8Array, index: number): Frame => ({
  type: 'frame',
  job: 'j-20261125-000000-000000',
  index,
  name: `f${index}.png`,
  png,
  replay: false,
});

/** encode + decode + validate of one frame message, no socket. Seconds per frame. */
function codecOnly(png: Uint8Array, repeats: number): { encode: number; decode: number } {
  const enc: number[] = [];
  const dec: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    const bytes = encode(frameMessage(png, i));
    const t1 = performance.now();
    parseServerMessage(decode(bytes));
    const t2 = performance.now();
    enc.push(t1 - t0);
    dec.push(t2 - t1);
  }
  return { encode: median(enc) / 1000, decode: median(dec) / 1000 };
}

/** A websocket echo of frame messages over loopback: per-direction latency and back-to-back throughput. */
async function loopback(
  png: Uint8Array,
  repeats: number,
  burst: number,
): Promise<{ oneWay: number; streamed: number }> {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
  });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  wss.on('connection', (ws) =>
    ws.on('message', (data) => {
      const m = parseServerMessage(decode(data as Buffer)) as Frame;
      if (m.index < 0) return;
      if (m.name === 'burst') for (let i = 0; i < burst; i++) ws.send(encode(frameMessage(png, i)));
      else ws.send(encode(m));
    }),
  );
  const ws = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, {
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
  });
  await new Promise((r) => ws.once('open', r));
  let resolveNext: ((m: Frame) => void) | null = null;
  ws.on('message', (data) => resolveNext?.(parseServerMessage(decode(data as Buffer)) as Frame));
  const next = () =>
    new Promise<Frame>((r) => {
      resolveNext = r;
    });
  try {
    // Ping-pong: each round trip is two one-way frame transfers (encode, send, receive, decode, validate).
    const rt: number[] = [];
    for (let i = 0; i < repeats + 3; i++) {
      const t0 = performance.now();
      const back = next();
      ws.send(encode(frameMessage(png, i)));
      await back;
      if (i >= 3) rt.push(performance.now() - t0);
    }
    // Back to back: the daemon streaming a job's frames to a client.
    let got = 0;
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      resolveNext = () => {
        if (++got === burst) resolve();
      };
      ws.send(encode({ ...frameMessage(new Uint8Array(1), 0), name: 'burst' }));
    });
    const streamed = (performance.now() - t0) / burst / 1000;
    return { oneWay: median(rt) / 2 / 1000, streamed };
  } finally {
    ws.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
  }
}

/**
 * A real stylize job through the daemon: seconds per frame as the client sees them, and how quickly the
 * daemon answers another client meanwhile (list_jobs every 50 ms: inference must not block the event loop).
 */
async function daemonJob(
  ctx: BenchContext,
  pngs: Uint8Array[],
  steps: number,
): Promise<{ perFrame: number; ep: string; replyMs: { median: number; max: number; count: number } }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'vidprior-bench-protocol-'));
  const modelDir = await benchModelDir(ctx);
  const daemon = await startDaemon({
    dataDir,
    model: modelDir,
    ep: ctx.ep,
    embeddedDefault: async () => modelDir,
    listen: { host: '127.0.0.1', port: 0 },
  });
  const client = await VidpriorClient.connect(daemon.server!.url);
  try {
    const params = { prompt: 'an oil painting of a city at night', steps, strength: 0.45, guidance: 7.5, seed: 0 };
    // Warm-up job: model load, session initialisation, shader compilation are not per-frame costs.
    await (
      await client.submit({
        kind: 'stylize',
        params: { ...params, steps: Math.min(steps, 10) },
        frames: [{ png: pngs[0]! }],
      })
    ).done;
    const job = await client.submit({
      kind: 'stylize',
      params,
      frames: pngs.map((png, i) => ({ name: `f${i}.png`, png })),
    });
    const arrivals: number[] = [];
    job.onFrame = () => arrivals.push(performance.now());
    const other = await VidpriorClient.connect(daemon.server!.url);
    const replies: number[] = [];
    let running = true;
    const probing = (async () => {
      while (running) {
        const t0 = performance.now();
        await other.listJobs({ limit: 1 });
        replies.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await job.done;
    running = false;
    await probing;
    await other.close();
    // Between the first and the last frame: steady state, without the submit upload and prompt encoding.
    const perFrame = arrivals.length > 1 ? (arrivals.at(-1)! - arrivals[0]!) / (arrivals.length - 1) / 1000 : NaN;
    return {
      perFrame,
      ep: daemon.queue.model.ep,
      replyMs: { median: median(replies), max: Math.max(...replies), count: replies.length },
    };
  } finally {
    await client.close();
    await daemon.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

export async function benchProtocol(ctx: BenchContext): Promise<unknown> {
  const gpu = ctx.ep === 'webgpu' || ctx.ep === 'cuda';
  const frames = ctx.quick ? 3 : gpu ? 8 : 4;
  const steps = ctx.quick ? 10 : gpu ? 50 : 20;
  const pngs = await Promise.all(Array.from({ length: frames }, (_, i) => photoLikePng(i + 1)));
  const png = pngs[0]!;
  const codec = codecOnly(png, ctx.quick ? 20 : 100);
  const wire = await loopback(png, ctx.quick ? 20 : 100, ctx.quick ? 20 : 100);
  ctx.log(
    `protocol: ${(wire.oneWay * 1000).toFixed(2)} ms one way per ${(png.length / 1024).toFixed(0)} KiB frame (codec ${((codec.encode + codec.decode) * 1000).toFixed(3)} ms)`,
  );
  const job = await daemonJob(ctx, pngs, steps);
  ctx.log(
    `daemon stylize: ${job.perFrame.toFixed(3)} s per frame (${job.ep}, ${Math.floor(steps * 0.45)} denoising steps)`,
  );
  return {
    frameSize: [SIZE, SIZE],
    pngBytes: png.length,
    host: hostInfo(),
    codec: { encodeMs: round(codec.encode * 1000), decodeAndValidateMs: round(codec.decode * 1000) },
    loopback: {
      oneWayMsPerFrame: round(wire.oneWay * 1000),
      streamedMsPerFrame: round(wire.streamed * 1000),
      streamedMBps: round(png.length / wire.streamed / 1e6),
    },
    inference: {
      ep: job.ep,
      preset: ctx.preset,
      steps,
      strength: 0.45,
      denoisingSteps: Math.floor(steps * 0.45),
      frames,
      secondsPerFrame: round(job.perFrame),
    },
    // A second client's list_jobs round trip while the job runs: the event loop stays free during inference.
    replyWhileBusyMs: { median: round(job.replyMs.median), max: round(job.replyMs.max), requests: job.replyMs.count },
    // The number this benchmark exists for: what share of a frame's time the protocol costs.
    overheadVsInference: round(wire.oneWay / job.perFrame),
  };
}

export const protocolBench: BenchModule = {
  name: 'protocol',
  describe:
    "protocol overhead per 512×512 frame on loopback (encode, send, receive, decode) beside the daemon's inference time per frame",
  run: benchProtocol,
};

// Runnable alone: node dist/bench/protocol.js [--ep cpu] [--preset tiny] [--quick]
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const k = args.indexOf(name);
    return k >= 0 ? args[k + 1] : undefined;
  };
  const ctx: BenchContext = {
    ep: (opt('--ep') ?? 'cpu') as BenchContext['ep'],
    preset: opt('--preset') ?? 'tiny',
    dtype: (opt('--dtype') ?? 'float32') as BenchContext['dtype'],
    quick: args.includes('--quick'),
    modelsDir: opt('--models') ?? join('.cache', 'bench-models'),
    log: (line) => process.stderr.write(`bench: ${line}\n`),
  };
  benchProtocol(ctx).then(
    (r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`),
    (err: unknown) => {
      process.stderr.write(`bench protocol failed: ${(err as Error).stack ?? err}\n`);
      process.exitCode = 1;
    },
  );
}
