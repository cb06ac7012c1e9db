/**
 * The UNet graph variants for GPU inference (src/onnx/optimize applied to the model's own UNet) and their
 * cache on disk. Building one costs a load of the UNet, the passes and a write (SD 1.5: 3.4 GB in float32),
 * so it is done once and kept:
 *
 *   <model>/unet/vidprior-optimized/<variant>-v<N>-ort<version>-<content hash>/model.onnx (+ .data, variant.json)
 *
 * or, when the model folder cannot be written, the same under <cache dir>/unet-variants/. The name is the key:
 * the variant, the optimizer's version (bumped when a pass changes what it writes), the onnxruntime version
 * (a kernel missing or wrong in one version may be there in the next) and a SHA-256 of the UNet folder's files
 * (any change to the weights makes a new entry). `variant.json` records how it was built and, per execution
 * provider, whether it agreed with the plain graph (inference-unet.ts checks that once and stores it here).
 *
 * Hashing 3.4 GB takes seconds, so the hash is remembered per folder with each file's size and mtime
 * (<cache dir>/unet-variants/sources.json) and recomputed only when one of those changes.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { VidpriorError } from '../errors.js';
import { writeJsonAtomic } from '../io/atomic-write.js';
import { loadModel, saveModel } from '../onnx/external-data.js';
import type { Model } from '../onnx/ir.js';
import { type GpuOptimizeOptions, formatReports, optimizeForGpu } from '../onnx/optimize/index.js';

/** Which passes of optimizeForGpu each variant gets (null: the plain graph as exported). */
export const UNET_VARIANTS = {
  original: null,
  fused: { attention: true, biasSplitGelu: false, float16: false },
  'fused-geglu': { attention: true, biasSplitGelu: true, float16: false },
  fp16: { attention: false, biasSplitGelu: false, float16: true },
  'fused-fp16': { attention: true, biasSplitGelu: false, float16: true },
  'fused-geglu-fp16': { attention: true, biasSplitGelu: true, float16: true },
} as const satisfies Record<string, GpuOptimizeOptions | null>;
export type UnetVariant = keyof typeof UNET_VARIANTS;
export const UNET_VARIANT_NAMES = Object.keys(UNET_VARIANTS) as UnetVariant[];

/** Bump when a pass changes the graphs it writes: older cache entries are then rebuilt. */
export const OPTIMIZER_VERSION = 1;

export function isUnetVariant(name: string): name is UnetVariant {
  return Object.hasOwn(UNET_VARIANTS, name);
}

/** Variants that use BiasSplitGelu, which ORT has on WebGPU and CUDA only (not on the CPU provider). */
export function isGpuOnlyVariant(v: UnetVariant): boolean {
  return UNET_VARIANTS[v]?.biasSplitGelu === true;
}

export function isFloat16Variant(v: UnetVariant): boolean {
  return UNET_VARIANTS[v]?.float16 === true;
}

/** How a variant fared against the plain graph on one execution provider. */
export interface VariantCheck {
  ok: boolean;
  /** Largest |variant − plain| over the probe's output (null when it could not be compared). */
  maxAbsDiff: number | null;
  /** The largest difference accepted (already scaled by the plain output's size). */
  tolerance: number;
  /** The probe's latent dims. */
  probe: number[];
  /** Why it failed (missing kernel, non-finite output, too large a difference). */
  reason?: string;
  /** ISO date of the check. */
  at: string;
}

/** variant.json: what a cache entry holds and how it was made. */
export interface VariantMeta {
  variant: UnetVariant;
  optimizerVersion: number;
  ortVersion: string;
  source: { dir: string; sha256: string };
  /** One line per pass (formatReports). */
  report: string;
  builtAt: string;
  buildSeconds: number;
  checks: Record<string, VariantCheck>;
}

export interface CachedVariant {
  variant: UnetVariant;
  /** The variant's model.onnx. */
  path: string;
  dir: string;
  meta: VariantMeta;
  /** True when this call built it (false: found in the cache). */
  built: boolean;
  /** Seconds spent hashing the source folder and building (0 when cached). */
  hashSeconds: number;
  buildSeconds: number;
}

export interface VariantCacheOptions {
  /** onnxruntime's version (Runtime.ortVersion): part of the key. */
  ortVersion: string;
  /** The user's cache dir: used when the model folder cannot be written, and for the hash stamps. */
  cacheDir: string;
  /** The UNet already loaded, or how to load it once (saves reading it again for several variants in a row). */
  source?: Model | (() => Promise<Model>);
  /** Called with one line while a variant is being built (it can take a minute for SD 1.5). */
  onNote?: (line: string) => void;
}

const ENTRY_FILE = 'variant.json';

/** The cache roots, in order: beside the model, then the user's cache dir. */
function cacheRoots(unetDir: string, cacheDir: string): string[] {
  return [join(unetDir, 'vidprior-optimized'), join(resolve(cacheDir), 'unet-variants')];
}

function entryName(variant: UnetVariant, ortVersion: string, sha256: string): string {
  return `${variant}-v${OPTIMIZER_VERSION}-ort${ortVersion}-${sha256.slice(0, 16)}`;
}

async function readMeta(dir: string): Promise<VariantMeta | null> {
  try {
    return JSON.parse(await readFile(join(dir, ENTRY_FILE), 'utf8')) as VariantMeta;
  } catch {
    return null;
  }
}

/**
 * The cached graph of `variant` for the UNet at `unetModelPath` (…/unet/model.onnx), built now if missing.
 * Throws E_IO when neither cache root can be written, or what loading and optimizing the model throws.
 */
export async function prepareUnetVariant(
  unetModelPath: string,
  variant: UnetVariant,
  opts: VariantCacheOptions,
): Promise<CachedVariant> {
  const passes = UNET_VARIANTS[variant];
  if (!passes) throw new VidpriorError('E_INTERNAL', `the ${variant} UNet is the model's own graph: nothing to build`);
  const unetDir = dirname(resolve(unetModelPath));
  const t0 = performance.now();
  const sha256 = await unetContentHash(unetDir, opts.cacheDir);
  const hashSeconds = (performance.now() - t0) / 1000;
  const name = entryName(variant, opts.ortVersion, sha256);
  const roots = cacheRoots(unetDir, opts.cacheDir);

  // 1. Found in a cache root?
  for (const root of roots) {
    const dir = join(root, name);
    const meta = await readMeta(dir);
    if (meta) return { variant, path: join(dir, 'model.onnx'), dir, meta, built: false, hashSeconds, buildSeconds: 0 };
  }

  // 2. Build it into the first root that can be written (under a temporary name, renamed when complete).
  const t1 = performance.now();
  opts.onNote?.(`unet: building the ${variant} graph (once per model and onnxruntime version)…`);
  const source =
    typeof opts.source === 'function'
      ? await opts.source()
      : (opts.source ?? (await loadModel(resolve(unetModelPath))));
  const { model, reports } = optimizeForGpu(source, passes);
  const failures: string[] = [];
  for (const root of roots) {
    const dir = join(root, name);
    const tmp = join(root, `.${name}.${process.pid}.tmp`);
    try {
      await mkdir(tmp, { recursive: true });
    } catch (err) {
      failures.push(`${root}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      continue;
    }
    try {
      await saveModel(model, join(tmp, 'model.onnx'), { externalData: 'auto' });
      const meta: VariantMeta = {
        variant,
        optimizerVersion: OPTIMIZER_VERSION,
        ortVersion: opts.ortVersion,
        source: { dir: unetDir, sha256 },
        report: formatReports(reports),
        builtAt: new Date().toISOString(),
        buildSeconds: Math.round((performance.now() - t1) / 100) / 10,
        checks: {},
      };
      await writeJsonAtomic(join(tmp, ENTRY_FILE), meta, false);
      await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
        // Another process finished the same entry first: keep theirs.
        if (!(await readMeta(dir))) throw err;
        await rm(tmp, { recursive: true, force: true });
      });
      await removeStaleEntries(root, variant, name, unetDir);
      const buildSeconds = (performance.now() - t1) / 1000;
      return { variant, path: join(dir, 'model.onnx'), dir, meta, built: true, hashSeconds, buildSeconds };
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      failures.push(`${root}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  throw new VidpriorError('E_IO', `cannot write the ${variant} UNet graph anywhere (${failures.join('; ')})`, {
    variant,
    roots,
  });
}

/** Entries of the same variant made from the same folder under another key (older ORT, older weights). */
async function removeStaleEntries(root: string, variant: UnetVariant, keep: string, unetDir: string): Promise<void> {
  const names = await readdir(root).catch(() => [] as string[]);
  for (const n of names) {
    if (n === keep || !n.startsWith(`${variant}-v`)) continue;
    const meta = await readMeta(join(root, n));
    if (meta?.variant === variant && meta.source.dir === unetDir)
      await rm(join(root, n), { recursive: true, force: true }).catch(() => {});
  }
}

/** Stores how the variant fared on `ep` in its variant.json (best effort: a read-only cache keeps none). */
export async function recordVariantCheck(entry: CachedVariant, ep: string, check: VariantCheck): Promise<void> {
  entry.meta.checks[ep] = check;
  await writeJsonAtomic(join(entry.dir, ENTRY_FILE), entry.meta, false).catch(() => {});
}

// ---- the content hash ----------------------------------------------------------------------------------

type Stamp = { files: [string, number, number][]; sha256: string };

/**
 * SHA-256 over the regular files directly in `unetDir` (names, sizes and bytes, in name order): model.onnx
 * and its external data. Reused from <cacheDir>/unet-variants/sources.json while sizes and mtimes match.
 */
export async function unetContentHash(unetDir: string, cacheDir: string): Promise<string> {
  const dir = resolve(unetDir);
  const files: [string, number, number][] = [];
  for (const n of (await readdir(dir)).sort()) {
    const st = await stat(join(dir, n));
    if (st.isFile()) files.push([n, st.size, st.mtimeMs]);
  }
  const stampsPath = join(resolve(cacheDir), 'unet-variants', 'sources.json');
  const stamps = await readFile(stampsPath, 'utf8').then(
    (t) => JSON.parse(t) as Record<string, Stamp>,
    () => ({}) as Record<string, Stamp>,
  );
  const known = stamps[dir];
  if (known && JSON.stringify(known.files) === JSON.stringify(files)) return known.sha256;
  const hash = createHash('sha256');
  for (const [n, size] of files) {
    hash.update(`${n}\0${size}\0`);
    for await (const chunk of createReadStream(join(dir, n), { highWaterMark: 1 << 22 })) hash.update(chunk as Buffer);
  }
  const sha256 = hash.digest('hex');
  stamps[dir] = { files, sha256 };
  await writeJsonAtomic(stampsPath, stamps, false).catch(() => {}); // no stamp: hashed again next time
  return sha256;
}

/** The entry folder's name without the hash, for notes: e.g. 'fused-v1-ort1.30.0'. */
export function shortEntryName(entry: CachedVariant): string {
  return basename(entry.dir).replace(/-[0-9a-f]{16}$/, '');
}
