// Seeded fuzzing of every client message type and field against a live daemon (bounded in cases and time).
// Each case is a valid message with one thing changed — a field replaced by a hostile value, removed, or an
// unknown one added, or the encoded bytes flipped, cut or extended — sent on a greeted connection (hello: on a
// fresh one). Throughout: every case gets one reply that is a valid server message and never E_INTERNAL, within
// seconds (or, past a size limit, the connection is closed with 1009); a well-formed client is served within a second; memory stays bounded; the daemon stays up.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { defaultExecutors } from '../../daemon/jobs/index.js';
import type { JobExecutor } from '../../daemon/jobs/executor.js';
import { VidpriorClient } from '../../protocol/client.js';
import { decode, encode } from '../../protocol/codec.js';
import { CLIENT_MESSAGES, parseServerMessage, type ServerMessage } from '../../protocol/messages.js';
import { JOB_KINDS, describeParams, type JobKind } from '../../protocol/params.js';
import { Rng } from '../../src/random.js';
import { startTestDaemon, tempDir, testPng, timed, type TestDaemon } from './helpers.js';

const SEED = 16;
const MAX_CASES = 1500;
const MAX_MS = 15_000;

let d: TestDaemon;
let allowed: string;
const daemonLog: string[] = [];
before(async () => {
  allowed = tempDir('fuzz-allowed');
  mkdirSync(join(allowed, 'in'));
  writeFileSync(join(allowed, 'in', 'a.png'), await testPng(1, 8, 8));
  // The real executors' checks (plan), with outputs made at once instead of by the model.
  const png = await testPng(2, 8, 8);
  const executors: JobExecutor[] = defaultExecutors().map((e) => ({
    ...e,
    async run(ctx) {
      for (let i = 0; i < ctx.spec.outputs.length; i++) if (!ctx.isDone(i)) await ctx.emitFrame(i, png);
      return {};
    },
  }));
  d = await startTestDaemon({
    allowDirs: [allowed],
    executors,
    limits: { maxMessageBytes: 512 * 1024, maxFrameBytes: 64 * 1024, maxFrames: 8 },
    log: (line) => daemonLog.push(line),
  });
});
after(async () => {
  await d.close();
  rmSync(allowed, { recursive: true, force: true });
});

/** A valid message of every type, with every field set (submit: one per kind). */
async function templates(job: string, uploads: { open: string; done: string }): Promise<Record<string, unknown>[]> {
  const png = await testPng(0, 8, 8);
  const params: Record<JobKind, Record<string, unknown>> = {
    stylize: {
      prompt: 'ink',
      negative_prompt: 'blur',
      strength: 0.5,
      steps: 4,
      guidance: 7,
      seed: 3,
      batch: 1,
      model: 'embedded-default',
      loras: [],
    },
    'edit-keyframe': {
      prompt: 'ink',
      negative_prompt: '',
      strength: 0.75,
      steps: 4,
      guidance: 7,
      seed: 1,
      candidates: 2,
      frame: 0,
      model: 'embedded-default',
      loras: [],
    },
    finetune: {
      prompt: 'ink',
      train_frames: 2,
      iters: 2,
      lr: 1e-4,
      rank: 2,
      max_timestep: 500,
      checkpoint_every: 1,
      seed: 0,
      adapter_name: 'fuzz',
      model: 'embedded-default',
      loras: [],
      full: false,
    },
    run: {
      prompt: 'ink',
      train_frames: 2,
      iters: 2,
      lr: 1e-4,
      rank: 2,
      max_timestep: 500,
      checkpoint_every: 1,
      seed: 0,
      adapter_name: 'fuzz-run',
      model: 'embedded-default',
      loras: [],
      full: false,
      negative_prompt: '',
      strength: 0.5,
      steps: 4,
      guidance: 7,
      batch: 1,
    },
    farm: {
      prompt: 'ink',
      train_frames: 2,
      iters: 2,
      lr: 1e-4,
      rank: 2,
      full: false,
      max_timestep: 500,
      checkpoint_every: 1,
      seed: 0,
      model: 'embedded-default',
      negative_prompt: '',
      strength: 0.5,
      steps: 4,
      guidance: 7,
      chunk: 2,
    },
    deflicker: {
      working_size: 8,
      width: 4,
      scales: 2,
      epochs: 1,
      lr: 5e-4,
      batch: 1,
      apply_batch: 1,
      irt: false,
      irt_init_epochs: 0,
      gradient_weight: 1,
      early_stop: true,
      seed: 0,
    },
  };
  const noise = { dims: [1, 4, 1, 1], data: new Uint8Array(16) };
  const submits = JOB_KINDS.map((kind) => ({
    type: 'submit',
    id: 1,
    kind,
    params: params[kind],
    frames: [{ name: 'f0.png', png }, { path: join(allowed, 'in', 'a.png') }, { name: 'f2.png', upload: uploads.done }],
    ...(kind === 'finetune' || kind === 'run' || kind === 'deflicker' || kind === 'farm'
      ? {
          edits: [
            { frame: 0, png },
            { frame: 1, path: join(allowed, 'in', 'a.png') },
            { frame: 2, upload: uploads.done },
          ],
        }
      : {}),
    ...(kind === 'stylize' || kind === 'run' ? { noise } : {}),
    name: `fuzz ${kind}`,
    output_dir: join(allowed, 'out'),
    subscribe: false,
  }));
  // Every parameter of every kind is in its template (so each one is fuzzed).
  for (const kind of JOB_KINDS)
    for (const name of Object.keys(describeParams(kind)))
      if (name !== 'adapter') assert.ok(name in params[kind], `${kind} template lacks ${name}`);
  return [
    { type: 'hello', id: 'h', protocol: 1, client: 'fuzz/1', token: 'unused-token' },
    ...submits,
    { type: 'cancel', id: 2, job },
    { type: 'list_jobs', id: 3, state: 'done', limit: 5 },
    { type: 'get_job', id: 4, job },
    { type: 'attach', id: 5, job, replay: true, from_index: 0 },
    { type: 'detach', id: 6, job },
    { type: 'list_models', id: 7 },
    { type: 'delete_job', id: 8, job: 'j-20000101-000000-000000' },
    { type: 'upload_begin', id: 9, name: 'f.png', bytes: png.length, sha256: 'ab'.repeat(32) },
    { type: 'upload_chunk', id: 10, upload: uploads.open, offset: 16, data: png.subarray(16, 32) },
    { type: 'upload_status', id: 11, upload: uploads.open },
    { type: 'upload_end', id: 12, upload: uploads.open },
  ];
}

/** Values that have broken parsers somewhere. */
function hostileValue(rng: Rng): unknown {
  const pick = <T>(xs: T[]) => xs[rng.int(xs.length)]!;
  switch (rng.int(9)) {
    case 0:
      return pick([null, true, false, undefined]);
    case 1:
      return pick([
        0,
        -1,
        1,
        -0,
        0.5,
        2 ** 31,
        2 ** 32,
        2 ** 32 - 1,
        2 ** 53 - 1,
        -(2 ** 53) + 1,
        1e308,
        -1e308,
        5e-324,
      ]);
    case 2:
      return pick([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
    case 3:
      return pick([
        '',
        ' ',
        '\u0000',
        '../../etc/passwd',
        '/etc/passwd',
        '__proto__',
        'constructor',
        '日本語',
        '\u{1F600}',
        'j-20261204-100000-zzzzzz',
      ]);
    case 4:
      return 'x'.repeat(pick([255, 256, 4096, 4097, 100_000]));
    case 5:
      return pick([new Uint8Array(0), Uint8Array.from({ length: 64 }, () => rng.int(256)), new Uint8Array(70 * 1024)]);
    case 6:
      return pick([[], [1, 2, 3], Array.from({ length: 1000 }, (_, i) => i), [{ png: new Uint8Array(1) }]]);
    case 7: {
      let v: unknown = { a: 1 };
      for (let i = 0, n = pick([2, 12, 24]); i < n; i++) v = { v };
      return v;
    }
    default:
      return pick<unknown>([
        {},
        { constructor: { prototype: { polluted: true } } },
        { toString: 'x' },
        { type: 'hello' },
      ]);
  }
}

/** The dotted paths of every field of `v` (maps and arrays, one level into arrays' items). */
function fieldPaths(v: unknown, prefix: string[] = []): string[][] {
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return [];
  const out: string[][] = [];
  for (const [k, x] of Object.entries(v)) {
    out.push([...prefix, k]);
    out.push(...fieldPaths(x, [...prefix, k]));
  }
  return out;
}

function withField(msg: unknown, path: string[], change: (parent: Record<string, unknown>, key: string) => void) {
  const copy = structuredClone(msg) as Record<string, unknown>;
  let parent = copy;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string, unknown>;
  change(parent, path.at(-1)!);
  return copy;
}

/** One fuzz case from a template: the bytes to send. */
function mutate(template: Record<string, unknown>, rng: Rng): Uint8Array {
  const paths = fieldPaths(template);
  const path = paths[rng.int(paths.length)]!;
  switch (rng.int(6)) {
    case 0:
    case 1:
    case 2: {
      const value = hostileValue(rng);
      // Arrays cannot hold "nothing": nil instead.
      return encode(
        withField(template, path, (p, k) => (p[k] = value === undefined && Array.isArray(p) ? null : value)),
      );
    }
    case 3:
      return encode(withField(template, path, (p, k) => (Array.isArray(p) ? p.splice(Number(k), 1) : delete p[k])));
    case 4:
      return encode(
        withField(template, path.slice(0, -1).concat('unknown_field'), (p, k) => (p[k] = hostileValue(rng))),
      );
    default: {
      const bytes = Buffer.from(encode(template));
      const how = rng.int(4);
      if (how === 0) for (let i = 0; i < 1 + rng.int(4); i++) bytes[rng.int(bytes.length)] = rng.int(256);
      if (how === 1) return bytes.subarray(0, rng.int(bytes.length));
      if (how === 2) return Buffer.concat([bytes, Buffer.from([rng.int(256), rng.int(256)])]);
      // Nesting deeper than any encoder here would write: arrays of one item, then the message.
      if (how === 3) return Buffer.concat([Buffer.alloc(1 + rng.int(200), 0x91), bytes]);
      return bytes;
    }
  }
}

/** A connection that collects replies (job events are set aside) and records messages that do not validate. */
async function connection(url: string) {
  const ws = new WebSocket(url);
  const replies: ServerMessage[] = [];
  const invalid: string[] = [];
  let wake: (() => void) | null = null;
  ws.on('message', (data) => {
    let m: ServerMessage;
    try {
      m = parseServerMessage(decode(data as Buffer));
    } catch (err) {
      invalid.push((err as Error).message);
      return;
    }
    const isEvent = m.type === 'progress' || m.type === 'frame' || m.type === 'done' || (m.type === 'error' && m.job);
    if (!isEvent) replies.push(m);
    wake?.();
  });
  let closed = false;
  let closeCode = 0;
  ws.on('close', (code) => {
    closed = true;
    closeCode = code;
    wake?.();
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return {
    ws,
    invalid,
    get closed() {
      return closed;
    },
    get closeCode() {
      return closeCode;
    },
    async reply(ms: number): Promise<ServerMessage | null> {
      const end = Date.now() + ms;
      while (replies.length === 0 && !closed && Date.now() < end)
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      return replies.shift() ?? null;
    },
  };
}

test(`fuzz: every message type and field, seed ${SEED}, at most ${MAX_CASES} cases in ${MAX_MS / 1000} s`, {
  timeout: 60_000,
}, async () => {
  const rng = new Rng(SEED);
  const setup = await VidpriorClient.connect(d.url);
  const first = await setup.submit({
    kind: 'stylize',
    params: { prompt: 'x', steps: 4 },
    frames: [{ png: await testPng(0, 8, 8) }],
  });
  first.onFrame = () => {};
  await first.done;
  // A finished upload for submits to name, and one half done for the upload messages.
  const png = await testPng(0, 8, 8);
  const done = await setup.upload(png, { name: 'f.png' });
  const open = (await setup.request({ type: 'upload_begin', bytes: png.length })) as { upload: string };
  await setup.request({ type: 'upload_chunk', upload: open.upload, offset: 0, data: png.subarray(0, 16) });
  await setup.close();
  const all = await templates(first.id, { open: open.upload, done });
  // Every client message type has a template, and every field of its schema is in it.
  for (const [type, schema] of Object.entries(CLIENT_MESSAGES)) {
    const ofType = all.filter((m) => m.type === type);
    assert.ok(ofType.length > 0, `no template for ${type}`);
    for (const field of Object.keys(schema.shape))
      assert.ok(
        ofType.some((t) => field in t),
        `no ${type} template has ${field}`,
      );
  }

  const started = Date.now();
  const rss0 = process.memoryUsage.rss();
  let rssPeak = rss0;
  let slowest = 0;
  let cases = 0;
  const seen = new Map<string, number>();
  const time = new Map<string, [number, number]>();
  const greetedConnection = async () => {
    const fresh = await connection(d.url);
    fresh.ws.send(encode({ type: 'hello', id: 0, protocol: 1 }));
    assert.equal((await fresh.reply(2000))?.type, 'welcome');
    return fresh;
  };
  let c = await greetedConnection();
  for (; cases < MAX_CASES && Date.now() - started < MAX_MS; cases++) {
    const template = all[rng.int(all.length)]!;
    const bytes = mutate(template, rng);
    const where = `case ${cases} (seed ${SEED}, ${template.type}: ${Buffer.from(bytes).toString('hex').slice(0, 120)})`;
    // hello goes on a fresh connection (before any handshake); everything else on the greeted one.
    const t0 = performance.now();
    const target = template.type === 'hello' ? await connection(d.url) : c;
    target.ws.send(bytes);
    const reply = await target.reply(5000);
    if (!reply && target.closed) {
      // Closed without a reply: only for what the protocol closes on (over the size limits, 1009; policy, 1008).
      assert.ok([1008, 1009].includes(target.closeCode), `${where}: closed with ${target.closeCode}`);
      seen.set(`closed ${target.closeCode}`, (seen.get(`closed ${target.closeCode}`) ?? 0) + 1);
      if (target !== c) target.ws.terminate();
      else c = await greetedConnection();
      continue;
    }
    const spent = time.get(String(template.type)) ?? [0, 0];
    time.set(String(template.type), [spent[0]! + performance.now() - t0, spent[1]! + 1]);
    assert.ok(reply, `${where}: no reply`);
    assert.deepEqual(target.invalid, [], `${where}: invalid server message`);
    if (reply.type === 'error') {
      assert.notEqual(reply.code, 'E_INTERNAL', `${where}: ${reply.message}`);
      assert.ok(reply.message.length <= 2001, `${where}: a reply of ${reply.message.length} characters`);
      seen.set(reply.code, (seen.get(reply.code) ?? 0) + 1);
    } else {
      assert.ok('id' in reply && reply.id !== undefined, `${where}: a ${reply.type} without id`);
      seen.set(reply.type, (seen.get(reply.type) ?? 0) + 1);
    }
    if (target !== c) target.ws.terminate();
    if (c.closed) c = await greetedConnection();
    if (cases % 100 === 0) {
      const { ms } = await timed(async () => {
        const well = await VidpriorClient.connect(d.url);
        await well.listJobs();
        await well.close();
      });
      slowest = Math.max(slowest, ms);
      assert.ok(ms < 1000, `${where}: a well-formed client waited ${ms.toFixed(0)} ms`);
      rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
    }
  }
  c.ws.terminate();
  const growthMb = (rssPeak - rss0) / 1024 / 1024;
  console.log(
    `fuzz: ${cases} cases in ${((Date.now() - started) / 1000).toFixed(1)} s; slowest well-formed round trip ${slowest.toFixed(0)} ms; RSS +${growthMb.toFixed(0)} MB; replies ${JSON.stringify(Object.fromEntries(seen))}; mean ms per case ${JSON.stringify(Object.fromEntries([...time].map(([k, [ms, n]]) => [k, Math.round(ms / n)])))}`,
  );
  assert.ok(cases >= 300, `only ${cases} cases ran`);
  assert.ok(growthMb < 200, `memory grew by ${growthMb.toFixed(0)} MB`);
  assert.deepEqual(
    daemonLog.filter((l) => l.includes('bug')),
    [],
  );
  // Still up, still serving.
  const end = await VidpriorClient.connect(d.url);
  assert.ok((await end.listJobs()).length >= 1);
  await end.close();
});
