/**
 * `models pull` against a local stand-in for the hub (hub-server.ts): into an empty cache in huggingface_hub's
 * layout (blobs by hash, relative snapshot links, refs/main), only the files a pipeline needs (ONNX export or
 * diffusers folder, the fp16 variant when asked), nothing fetched twice; an interrupted download resumes with
 * a Range request; offline answers come from the cache alone; a bad repo id, a wrong hash, a gated repo
 * without a token and an unreachable hub each fail with a clear error and leave nothing bad in the cache.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createModelFolder } from '../../../src/models/builder/folder.js';
import { findSnapshot } from '../../../src/models/hf-cache.js';
import { type PullOptions, pullModel } from '../../../src/models/hub/pull.js';
import { loadModelFolder } from '../../../src/models/loader.js';
import { openRuntime } from '../../../src/runtime/index.js';
import { HubServer } from './hub-server.js';

const MODEL_D = '../shared/fixtures/sd1-checkpoint-d/diffusers';
let tmp: string;
let server: HubServer;
let onnxCommit: string;

async function filesOf(dir: string, base = dir): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) for (const [k, v] of await filesOf(p, base)) out.set(k, v);
    else out.set(relative(base, p), await readFile(p));
  }
  return out;
}

/** A small diffusers-layout repo: model D's folder when ../shared is there, else fake weights of the same names. */
async function diffusersFiles(): Promise<Map<string, Buffer>> {
  if (existsSync(MODEL_D)) return filesOf(MODEL_D);
  const files = new Map<string, Buffer>([
    ['model_index.json', Buffer.from('{"_class_name":"StableDiffusionPipeline"}')],
  ]);
  for (const c of ['unet', 'vae', 'text_encoder']) {
    const w = c === 'text_encoder' ? 'model' : 'diffusion_pytorch_model';
    files.set(`${c}/config.json`, Buffer.from(`{"c":"${c}"}`));
    files.set(`${c}/${w}.safetensors`, Buffer.alloc(30_000, c.length));
    files.set(`${c}/${w}.fp16.safetensors`, Buffer.alloc(15_000, c.length + 1));
  }
  for (const f of ['tokenizer/vocab.json', 'tokenizer/merges.txt', 'scheduler/scheduler_config.json'])
    files.set(f, Buffer.from(`{"f":"${f}"}`));
  return files;
}

const junk = (files: Map<string, Buffer>) => {
  files.set('README.md', Buffer.from('# a model card\n'));
  files.set('v1-5-pruned-emaonly.ckpt', Buffer.alloc(20_000, 7));
  files.set('safety_checker/model.safetensors', Buffer.alloc(12_000, 8));
  files.set('unet/diffusion_pytorch_model.bin', Buffer.alloc(12_000, 9));
  return files;
};

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'hub-pull-'));
  server = new HubServer();
  const onnx = await createModelFolder(join(tmp, 'onnx-src'), 'tiny', { seed: 2 });
  onnxCommit = server.add({ id: 'tiny/sd-onnx', files: junk(await filesOf(onnx.dir)) });
  server.add({ id: 'ref/model-d', files: junk(await diffusersFiles()) });
  server.add({ id: 'ref/gated', files: await diffusersFiles(), gatedToken: 'hf_open_sesame' });
  const tampered = await diffusersFiles();
  const victim = [...tampered.keys()].find(
    (k) => k.startsWith('vae/') && k.endsWith('.safetensors') && !k.includes('fp16'),
  )!;
  const wrong = Buffer.from(tampered.get(victim)!);
  wrong[wrong.length - 1] ^= 0xff;
  server.add({ id: 'ref/tampered', files: tampered, tamper: new Map([[victim, wrong]]) });
  await server.start();
});

after(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const options = (hubCache: string, extra: Partial<PullOptions> = {}): PullOptions => ({
  hubCache,
  endpoint: server.url,
  ...extra,
});
const freshCache = () => mkdtempSync(join(tmp, 'cache-'));
const sha256 = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

test('an ONNX export into an empty cache: the pipeline files only, in huggingface_hub layout, loadable', async () => {
  const hub = freshCache();
  const r = await pullModel('tiny/sd-onnx', options(hub));
  assert.equal(r.format, 'onnx');
  assert.equal(r.commit, onnxCommit);
  const root = join(hub, 'models--tiny--sd-onnx');
  assert.equal(r.dir, join(root, 'snapshots', onnxCommit));
  assert.equal(readFileSync(join(root, 'refs', 'main'), 'utf8'), onnxCommit);
  const paths = r.files.map((f) => f.path).sort();
  assert.ok(
    paths.includes('unet/model.onnx') && paths.includes('tokenizer/vocab.json') && paths.includes('model_index.json'),
  );
  for (const p of [
    'README.md',
    'v1-5-pruned-emaonly.ckpt',
    'safety_checker/model.safetensors',
    'unet/diffusion_pytorch_model.bin',
  ])
    assert.ok(!paths.includes(p), `${p} is not needed`);
  // Snapshot entries are relative links into blobs/, named by sha256 (LFS) or git blob id.
  const unet = join(r.dir, 'unet', 'model.onnx');
  assert.ok(lstatSync(unet).isSymbolicLink());
  assert.match(readlinkSync(unet), /^\.\.\/\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/);
  assert.equal(readlinkSync(unet).split('/').pop(), sha256(unet));
  assert.match(readlinkSync(join(r.dir, 'model_index.json')), /blobs\/[0-9a-f]{40}$/);
  assert.ok(!readdirSync(join(root, 'blobs')).some((b) => b.endsWith('.incomplete')));
  assert.equal(findSnapshot({ repo: 'tiny/sd-onnx', revision: 'main' }, hub), r.dir);
  const runtime = await openRuntime({ ep: 'cpu' });
  try {
    const model = await loadModelFolder(r.dir, runtime);
    assert.equal(model.facts.latentChannels, 4);
    await model.release();
  } finally {
    await runtime.close();
  }
});

test('a diffusers repo: the fp16 variant when asked, the plain weights otherwise; nothing is fetched twice', async () => {
  const hub = freshCache();
  const fp16 = await pullModel('ref/model-d', options(hub, { variant: 'fp16' }));
  assert.equal(fp16.format, 'diffusers');
  const weights = fp16.files
    .map((f) => f.path)
    .filter((p) => p.endsWith('.safetensors'))
    .sort();
  assert.deepEqual(weights, [
    'text_encoder/model.fp16.safetensors',
    'unet/diffusion_pytorch_model.fp16.safetensors',
    'vae/diffusion_pytorch_model.fp16.safetensors',
  ]);
  const plain = await pullModel('ref/model-d', options(hub));
  assert.deepEqual(
    plain.files
      .map((f) => f.path)
      .filter((p) => p.endsWith('.safetensors'))
      .sort(),
    [
      'text_encoder/model.safetensors',
      'unet/diffusion_pytorch_model.safetensors',
      'vae/diffusion_pytorch_model.safetensors',
    ],
  );
  const before = server.requests.length;
  const again = await pullModel('ref/model-d', options(hub));
  assert.equal(again.downloaded, 0);
  assert.ok(again.files.every((f) => f.cached));
  assert.ok(!server.requests.slice(before).some((q) => /\/resolve\/|\/cdn\//.test(q.url)), 'no file is fetched again');
});

test('an interrupted download resumes where it stopped (HTTP Range)', async () => {
  const hub = freshCache();
  const size = (await filesOf(join(tmp, 'onnx-src'))).get('unet/model.onnx')!.length;
  const cut = Math.floor(size * 0.4);
  server.cutOnce.set('unet/model.onnx', cut);
  await assert.rejects(pullModel('tiny/sd-onnx', options(hub)), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'E_DOWNLOAD');
    assert.match(
      e.message,
      /unet\/model\.onnx: the download was interrupted at \d+ of \d+ bytes .*run the same pull again to resume/,
    );
    return true;
  });
  const blobs = join(hub, 'models--tiny--sd-onnx', 'blobs');
  const part = readdirSync(blobs).find((b) => b.endsWith('.incomplete'))!;
  const kept = lstatSync(join(blobs, part)).size;
  assert.ok(kept > 0 && kept <= cut, `${kept} bytes kept`);
  assert.ok(!existsSync(join(hub, 'models--tiny--sd-onnx', 'refs', 'main')), 'no ref to a half-fetched snapshot');
  const mark = server.requests.length;
  const r = await pullModel('tiny/sd-onnx', options(hub));
  assert.ok(
    server.requests.slice(mark).some((q) => q.url.startsWith('/cdn/') && q.range === `bytes=${kept}-${size - 1}`),
    'the rest was asked for with a Range',
  );
  const unet = join(r.dir, 'unet', 'model.onnx');
  assert.equal(readlinkSync(unet).split('/').pop(), sha256(unet));
  assert.ok(!readdirSync(blobs).some((b) => b.endsWith('.incomplete')));
});

test('a server that answers the resumed range in full makes the download start over', async () => {
  const hub = freshCache();
  server.cutOnce.set('unet/model.onnx', 5000);
  await assert.rejects(pullModel('tiny/sd-onnx', options(hub)), /interrupted/);
  server.ignoreRangeOnce.add('unet/model.onnx');
  const r = await pullModel('tiny/sd-onnx', options(hub));
  const unet = join(r.dir, 'unet', 'model.onnx');
  assert.equal(readlinkSync(unet).split('/').pop(), sha256(unet));
  assert.equal(server.ignoreRangeOnce.size, 0, 'the range was ignored once');
});

test('offline: the cached snapshot without a single request; an uncached repo is named', async () => {
  const hub = freshCache();
  const online = await pullModel('tiny/sd-onnx', options(hub));
  const mark = server.requests.length;
  const offline = await pullModel('tiny/sd-onnx', options(hub, { offline: true, endpoint: 'http://127.0.0.1:9' }));
  assert.equal(offline.dir, online.dir);
  assert.equal(offline.format, 'onnx');
  assert.equal(server.requests.length, mark);
  await assert.rejects(
    pullModel('ref/model-d', options(hub, { offline: true })),
    (e: Error & { code?: string }) =>
      e.code === 'E_NOT_FOUND' && /HF_HUB_OFFLINE is set and ref\/model-d is not in the hub cache/.test(e.message),
  );
});

test('a bad repo id, a missing revision and a malformed id are named', async () => {
  const hub = freshCache();
  await assert.rejects(pullModel('nobody/nothing', options(hub)), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'E_NOT_FOUND');
    assert.match(e.message, /no model nobody\/nothing on http:\/\/127\.0\.0\.1:\d+ \(if it is private, set HF_TOKEN\)/);
    return true;
  });
  await assert.rejects(
    pullModel('tiny/sd-onnx', options(hub, { revision: 'v9' })),
    (e: Error & { code?: string }) => e.code === 'E_NOT_FOUND' && /tiny\/sd-onnx has no revision v9/.test(e.message),
  );
  await assert.rejects(
    pullModel('not a repo', options(hub)),
    (e: Error & { code?: string }) =>
      e.code === 'E_BAD_REQUEST' && /"not a repo" is not a Hugging Face model id/.test(e.message),
  );
  assert.deepEqual(readdirSync(hub), []);
});

test('a file whose bytes do not match the listed sha256 is discarded with a clear error', async () => {
  const hub = freshCache();
  await assert.rejects(pullModel('ref/tampered', options(hub)), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'E_DOWNLOAD');
    assert.match(
      e.message,
      /vae\/diffusion_pytorch_model\.safetensors: sha256 is [0-9a-f]{64}, the hub listed [0-9a-f]{64}; the file was discarded/,
    );
    return true;
  });
  const root = join(hub, 'models--ref--tampered');
  const blobs = readdirSync(join(root, 'blobs'));
  assert.ok(!blobs.some((b) => b.endsWith('.incomplete')), 'no partial file left');
  for (const b of blobs) {
    if (b.length === 64) assert.equal(sha256(join(root, 'blobs', b)), b, 'every blob left matches its name');
  }
  assert.ok(!existsSync(join(root, 'refs', 'main')));
  const snap = readdirSync(join(root, 'snapshots'))[0];
  if (snap) assert.ok(!existsSync(join(root, 'snapshots', snap, 'vae', 'diffusion_pytorch_model.safetensors')));
});

test('a gated repo without a token says to set HF_TOKEN; with the token it pulls', async () => {
  const hub = freshCache();
  await assert.rejects(pullModel('ref/gated', options(hub)), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'E_AUTH');
    assert.match(
      e.message,
      /ref\/gated is gated on .*: set HF_TOKEN to an access token of an account that may read it/,
    );
    return true;
  });
  await assert.rejects(
    pullModel('ref/gated', options(hub, { token: 'hf_wrong' })),
    (e: Error & { code?: string }) => e.code === 'E_AUTH' && /the token \(HF_TOKEN\) has no access/.test(e.message),
  );
  await assert.rejects(
    pullModel('ref/gated', options(hub, { token: 'sesame' })),
    (e: Error & { code?: string }) => e.code === 'E_AUTH' && /start with "hf_"/.test(e.message),
  );
  const r = await pullModel('ref/gated', options(hub, { token: 'hf_open_sesame' }));
  assert.ok(r.files.length > 5);
  assert.ok(server.requests.some((q) => q.auth === 'Bearer hf_open_sesame'));
});

test('an unreachable hub is E_DOWNLOAD naming it and HF_HUB_OFFLINE', async () => {
  await assert.rejects(
    pullModel('tiny/sd-onnx', options(freshCache(), { endpoint: 'http://127.0.0.1:9' })),
    (e: Error & { code?: string }) =>
      e.code === 'E_DOWNLOAD' &&
      /cannot reach http:\/\/127\.0\.0\.1:9 for tiny\/sd-onnx .*HF_HUB_OFFLINE=1/.test(e.message),
  );
});
