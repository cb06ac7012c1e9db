/**
 * The inference UNet (src/models/inference-unet.ts, unet-variants.ts) on the CPU provider: variants built once
 * beside the model (or in the cache dir), keyed by variant, optimizer version, onnxruntime version and content;
 * checked once against the plain graph; the plain graph as the fallback, with a one-line note, when a kernel
 * is missing, when the variant disagrees, when its float32 sibling fails, or when it cannot be written.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModelFolder } from '../../src/models/builder/folder.js';
import {
  DEFAULT_WEBGPU_UNET_VARIANT,
  type InferenceUnetOptions,
  float32Sibling,
  inferenceUnetVariant,
  openInferenceUnet,
} from '../../src/models/inference-unet.js';
import {
  OPTIMIZER_VERSION,
  type VariantMeta,
  isUnetVariant,
  prepareUnetVariant,
  unetContentHash,
} from '../../src/models/unet-variants.js';
import { type Runtime, openRuntime } from '../../src/runtime/index.js';

let root: string;
let runtime: Runtime;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'vidprior-inference-unet-'));
  runtime = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
});
after(async () => {
  await runtime?.close();
  rmSync(root, { recursive: true, force: true });
});

/** A fresh tiny model folder (seed picks the weights) and cache dir; returns its UNet path. */
async function freshModel(name: string, seed = 0): Promise<{ unet: string; cacheDir: string; dir: string }> {
  const dir = join(root, name);
  await createModelFolder(dir, 'tiny', { seed, opset: 17 });
  return { unet: join(dir, 'unet', 'model.onnx'), cacheDir: join(root, `${name}-cache`), dir };
}

async function open(unet: string, opts: InferenceUnetOptions) {
  const notes: string[] = [];
  const r = await openInferenceUnet(runtime, unet, { ...opts, onNote: (l) => notes.push(l) });
  await r.session.release();
  return { ...r, notes };
}

const entries = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith('.')) : []);
const meta = (dir: string): VariantMeta => JSON.parse(readFileSync(join(dir, 'variant.json'), 'utf8')) as VariantMeta;

test('the default WebGPU variant is a known one; other providers run the plain graph', () => {
  assert.ok(isUnetVariant(DEFAULT_WEBGPU_UNET_VARIANT));
  assert.equal(inferenceUnetVariant('webgpu'), DEFAULT_WEBGPU_UNET_VARIANT);
  assert.equal(inferenceUnetVariant('webgpu', 'fused'), 'fused');
  assert.equal(inferenceUnetVariant('cpu', 'fused'), 'original');
  assert.equal(inferenceUnetVariant('cuda', 'fused-geglu-fp16'), 'original');
  assert.equal(float32Sibling('fused-geglu-fp16'), 'fused-geglu');
  assert.equal(float32Sibling('fused-fp16'), 'fused');
  assert.equal(float32Sibling('fp16'), null);
  assert.equal(float32Sibling('fused'), null);
});

test('original opens the folder graph and writes nothing', async () => {
  const m = await freshModel('plain');
  const r = await open(m.unet, { variant: 'original', cacheDir: m.cacheDir });
  assert.equal(r.variant, 'original');
  assert.equal(r.fallback, null);
  assert.deepEqual(r.notes, []);
  assert.deepEqual(entries(join(m.dir, 'unet', 'vidprior-optimized')), []);
});

test('a variant is built once beside the model, keyed by variant, versions and content, and checked once', async () => {
  const m = await freshModel('keyed');
  const cacheRoot = join(m.dir, 'unet', 'vidprior-optimized');
  const first = await open(m.unet, { variant: 'fused', cacheDir: m.cacheDir });
  assert.equal(first.variant, 'fused');
  assert.equal(first.fallback, null);
  assert.match(first.notes[0]!, /^unet: building the fused graph/);
  assert.match(
    first.notes[1]!,
    /^unet: the fused graph agrees with the plain one on cpu \(max abs diff .* ≤ .* probe\)$/,
  );
  assert.equal(first.notes.at(-1), 'unet: running the fused graph');
  const [name] = entries(cacheRoot);
  const hash = await unetContentHash(join(m.dir, 'unet'), m.cacheDir);
  assert.equal(name, `fused-v${OPTIMIZER_VERSION}-ort${runtime.ortVersion}-${hash.slice(0, 16)}`);
  const built = meta(join(cacheRoot, name!));
  assert.equal(built.checks.cpu?.ok, true);
  assert.equal(built.source.sha256, hash);
  assert.match(built.report, /attention: 8 fused/);

  // Second use: found and trusted, nothing built or checked.
  const second = await open(m.unet, { variant: 'fused', cacheDir: m.cacheDir });
  assert.equal(second.variant, 'fused');
  assert.equal(second.buildSeconds, 0);
  assert.equal(second.checkSeconds, 0);
  assert.deepEqual(second.notes, ['unet: running the fused graph']);

  // Another onnxruntime version is another entry.
  const other = await prepareUnetVariant(m.unet, 'fused', { ortVersion: '0.0.0-test', cacheDir: m.cacheDir });
  assert.equal(other.built, true);
  assert.match(other.dir, /fused-v\d+-ort0\.0\.0-test-/);

  // Other weights: a new key; the entries made from the old weights of this folder are removed.
  const seed1 = await freshModel('keyed-seed1', 1);
  copyFileSync(seed1.unet, m.unet);
  const third = await open(m.unet, { variant: 'fused', cacheDir: m.cacheDir });
  assert.equal(third.variant, 'fused');
  assert.ok(third.buildSeconds > 0);
  const after = entries(cacheRoot);
  assert.equal(after.length, 1);
  assert.notEqual(after[0], name);
  assert.equal(
    after[0],
    `fused-v${OPTIMIZER_VERSION}-ort${runtime.ortVersion}-${(await unetContentHash(join(m.dir, 'unet'), m.cacheDir)).slice(0, 16)}`,
  );
});

test('the content hash is remembered by size and mtime, and recomputed when a file changes', async () => {
  const m = await freshModel('stamp');
  const unetDir = join(m.dir, 'unet');
  const h1 = await unetContentHash(unetDir, m.cacheDir);
  const stamps = JSON.parse(readFileSync(join(m.cacheDir, 'unet-variants', 'sources.json'), 'utf8'));
  assert.equal(stamps[unetDir].sha256, h1);
  assert.equal(await unetContentHash(unetDir, m.cacheDir), h1);
  writeFileSync(join(unetDir, 'config.json'), '{"changed": true}\n');
  assert.notEqual(await unetContentHash(unetDir, m.cacheDir), h1);
});

test('a model folder that cannot be written: the variant goes to the cache dir; neither: the plain graph', async () => {
  const m = await freshModel('readonly');
  // A file where the folder would go stands for a read-only model folder (tests run as root, where modes do not).
  writeFileSync(join(m.dir, 'unet', 'vidprior-optimized'), 'not a folder');
  const r = await open(m.unet, { variant: 'fused', cacheDir: m.cacheDir });
  assert.equal(r.variant, 'fused');
  assert.equal(entries(join(m.cacheDir, 'unet-variants')).filter((n) => n.startsWith('fused-')).length, 1);

  const n = await freshModel('nowhere');
  writeFileSync(join(n.dir, 'unet', 'vidprior-optimized'), 'not a folder');
  mkdirSync(n.cacheDir, { recursive: true });
  writeFileSync(join(n.cacheDir, 'unet-variants'), 'not a folder either');
  const fallback = await open(n.unet, { variant: 'fused', cacheDir: n.cacheDir });
  assert.equal(fallback.variant, 'original');
  assert.match(fallback.fallback!, /^could not be built \(cannot write the fused UNet graph anywhere/);
  assert.match(fallback.notes.at(-1)!, /^unet: running the plain graph: the fused graph could not be built/);
});

test('a kernel missing on the provider: the plain graph, a one-line note, remembered for next time', async () => {
  const m = await freshModel('missing-kernel');
  const r = await open(m.unet, { variant: 'fused-geglu', cacheDir: m.cacheDir });
  assert.equal(r.variant, 'original');
  const note = r.notes.at(-1)!;
  assert.match(
    note,
    /^unet: running the plain graph: the fused-geglu graph cannot run on cpu \(Could not find an implementation for BiasSplitGelu/,
  );
  assert.ok(!note.includes('\n'));
  const [name] = entries(join(m.dir, 'unet', 'vidprior-optimized'));
  assert.equal(meta(join(m.dir, 'unet', 'vidprior-optimized', name!)).checks.cpu?.ok, false);
  const again = await open(m.unet, { variant: 'fused-geglu', cacheDir: m.cacheDir });
  assert.equal(again.variant, 'original');
  assert.match(again.notes.at(-1)!, /the fused-geglu graph failed on cpu before: cannot run on cpu/);

  // A float16 variant whose fused kernels are those of a failing float32 sibling is not tried.
  const fp16 = await open(m.unet, { variant: 'fused-geglu-fp16', cacheDir: m.cacheDir });
  assert.equal(fp16.variant, 'original');
  assert.match(
    fp16.notes.at(-1)!,
    /^unet: running the plain graph: the fused-geglu-fp16 graph uses the kernels of the fused-geglu graph, which failed on cpu before/,
  );
});

test('a variant that disagrees with the plain graph: the plain graph, with the difference in the note', async () => {
  const m = await freshModel('disagrees');
  const r = await open(m.unet, { variant: 'fp16', cacheDir: m.cacheDir, tolerance: 0 });
  assert.equal(r.variant, 'original');
  assert.match(
    r.notes.at(-1)!,
    /^unet: running the plain graph: the fp16 graph disagrees with the plain graph \(max abs diff [0-9.e-]+ > 0 on a \[1,4,16,16\] probe\)$/,
  );
  const [name] = entries(join(m.dir, 'unet', 'vidprior-optimized'));
  const check = meta(join(m.dir, 'unet', 'vidprior-optimized', name!)).checks.cpu!;
  assert.equal(check.ok, false);
  assert.ok(check.maxAbsDiff! > 0);
  // The verdict stands (per onnxruntime version) even with the default tolerance.
  const again = await open(m.unet, { variant: 'fp16', cacheDir: m.cacheDir });
  assert.equal(again.variant, 'original');
  assert.match(again.notes.at(-1)!, /the fp16 graph failed on cpu before: max abs diff/);
});

test('a float16 fused variant runs when its float32 sibling and itself agree', async () => {
  const m = await freshModel('fp16-ok');
  const r = await open(m.unet, { variant: 'fused-fp16', cacheDir: m.cacheDir });
  assert.equal(r.variant, 'fused-fp16');
  assert.ok(r.notes.some((n) => n.startsWith('unet: the fused graph agrees with the plain one on cpu')));
  assert.ok(r.notes.some((n) => n.startsWith('unet: the fused-fp16 graph agrees with the plain one on cpu')));
  assert.deepEqual(
    entries(join(m.dir, 'unet', 'vidprior-optimized'))
      .map((n) => n.split('-v')[0])
      .sort(),
    ['fused', 'fused-fp16'],
  );
});
