/**
 * The UNet session inference runs: on WebGPU an optimized graph (unet-variants.ts), checked once against the
 * plain graph on a small probe, with the plain graph as the fallback — when the variant cannot be built, when
 * its session cannot be created (a kernel missing on this provider), or when it disagrees with the plain graph
 * (a kernel wrong on this device). Each fallback is said in one line. Training never comes here: it builds its
 * graph from the plain UNet (src/training).
 */
import { VidpriorError, asVidpriorError } from '../errors.js';
import { Rng } from '../random.js';
import type { ExecutionProvider, IoMeta, Runtime, Session, SessionOptions } from '../runtime/types.js';
import { type DType, type Tensor, asFloat32, castFloat, filledTensor, float32 } from '../tensor.js';
import {
  type CachedVariant,
  type UnetVariant,
  type VariantCheck,
  UNET_VARIANTS,
  isFloat16Variant,
  prepareUnetVariant,
  recordVariantCheck,
} from './unet-variants.js';

/**
 * THE graph `--ep webgpu` (and `auto` when it picks WebGPU) runs for inference. It must be the fastest variant
 * that agrees with the plain graph on a real GPU, as measured by bench/gpu/session.sh (phase b's table in its
 * summary.md). Until that measurement exists it is the plain graph: on lavapipe the WebGPU MultiHeadAttention
 * kernel is wrong past 16 query tokens (test/onnx/optimize/webgpu.test.ts), and no variant has run on a GPU.
 */
export const DEFAULT_WEBGPU_UNET_VARIANT: UnetVariant = 'original';

/**
 * The variant inference uses on `ep`: the default (or `override`, e.g. VIDPRIOR_UNET_VARIANT) on WebGPU, the
 * plain graph elsewhere (the CPU provider has no BiasSplitGelu and gains nothing from fusion; CUDA is unmeasured).
 */
export function inferenceUnetVariant(ep: ExecutionProvider, override?: UnetVariant): UnetVariant {
  return ep === 'webgpu' ? (override ?? DEFAULT_WEBGPU_UNET_VARIANT) : 'original';
}

/**
 * The largest difference from the plain graph accepted, relative to max(1, max |plain output|). float32: a
 * correct fusion moves the tiny model's output by ~1e-6 (CPU), lavapipe's broken MultiHeadAttention by 5e-3
 * of it. float16 moves it by ~1e-2 whatever the fusion, so a float16 check only catches gross errors: the
 * float32 sibling's check (bench/gpu/session.sh measures both) is what vouches for the fused kernels.
 */
export function variantTolerance(v: UnetVariant): number {
  return isFloat16Variant(v) ? 5e-2 : 1e-3;
}

export interface InferenceUnetOptions {
  variant: UnetVariant;
  /** The user's cache dir (config().cacheDir): where variants go when the model folder is read-only. */
  cacheDir: string;
  /** Options of the session that is returned (keepOutputsOnGpu, label…). */
  sessionOptions?: SessionOptions;
  /** Tolerance override (relative, see variantTolerance). */
  tolerance?: number;
  /** One line per thing worth saying: the graph that runs, or why the plain one runs instead. */
  onNote?: (line: string) => void;
}

export interface InferenceUnet {
  session: Session;
  /** The graph that runs: the variant asked for, or 'original' after a fallback. */
  variant: UnetVariant;
  /** Why the plain graph runs instead of the variant asked for (the note's text), else null. */
  fallback: string | null;
  /** Seconds spent building the variant (0 when cached) and checking it (0 when checked before). */
  buildSeconds: number;
  checkSeconds: number;
}

/**
 * Opens the UNet at `unetModelPath` for inference as `opts.variant`, falling back to the plain graph. A float16
 * variant with fused kernels also needs its float32 sibling to pass (float16's own error would hide theirs).
 */
export async function openInferenceUnet(
  runtime: Runtime,
  unetModelPath: string,
  opts: InferenceUnetOptions,
): Promise<InferenceUnet> {
  const ep = runtime.decision.ep;
  const options = { label: 'unet', ...opts.sessionOptions };
  const spent = { build: 0, check: 0 };
  const plainUnet = async (why: string | null): Promise<InferenceUnet> => {
    if (why) opts.onNote?.(`unet: running the plain graph: the ${opts.variant} graph ${why}`);
    const session = await runtime.createSession(unetModelPath, options);
    return { session, variant: 'original', fallback: why, buildSeconds: spent.build, checkSeconds: spent.check };
  };
  if (opts.variant === 'original') return plainUnet(null);

  let plain: Session | null = null; // made when a check needs it
  /** The variant's verdict on this provider (checked now if never before); with `keep`, its session. */
  const verdict = async (v: UnetVariant, keep: boolean): Promise<{ why: string } | { session: Session | null }> => {
    // 1. The graph, from the cache or built now.
    let entry: CachedVariant;
    try {
      entry = await prepareUnetVariant(unetModelPath, v, {
        ortVersion: runtime.ortVersion,
        cacheDir: opts.cacheDir,
        onNote: opts.onNote,
      });
    } catch (err) {
      return { why: `could not be built (${oneLine(asVidpriorError(err).message)})` };
    }
    spent.build += entry.buildSeconds;
    const known = entry.meta.checks[ep];
    if (known && !known.ok) return { why: `failed on ${ep} before: ${checkText(known)}` };
    if (known && !keep) return { session: null };
    // 2. Its session: a kernel missing on this provider fails here.
    let session: Session;
    try {
      session = await runtime.createSession(entry.path, { ...options, label: `${options.label}-${v}` });
    } catch (err) {
      const message = asVidpriorError(err).message.replace(/^.*?could not create the session on \w+: /, '');
      const why = `cannot run on ${ep} (${oneLine(message)})`;
      // A missing kernel stays missing in this onnxruntime version (part of the key): remember it. Anything
      // else (memory, a driver hiccup) may pass next time.
      if (MISSING_KERNEL.test(why)) await recordVariantCheck(entry, ep, failedCheck(why));
      return { why };
    }
    if (known) return { session };
    // 3. First use on this provider: compare with the plain graph on a small probe, once.
    const t0 = performance.now();
    let check: VariantCheck;
    try {
      plain ??= await runtime.createSession(unetModelPath, { label: `${options.label}-plain-check` });
      check = await compareUnets(runtime, session, plain, opts.tolerance ?? variantTolerance(v));
    } catch (err) {
      check = failedCheck(`could not be compared with the plain one (${oneLine(asVidpriorError(err).message)})`);
    }
    spent.check += (performance.now() - t0) / 1000;
    if (check.maxAbsDiff !== null || check.reason === NON_FINITE) await recordVariantCheck(entry, ep, check);
    if (!check.ok || !keep) await session.release().catch(() => {});
    if (!check.ok)
      return {
        why: check.maxAbsDiff === null ? check.reason! : `disagrees with the plain graph (${checkText(check)})`,
      };
    opts.onNote?.(`unet: the ${v} graph agrees with the plain one on ${ep} (${checkText(check)})`);
    return { session: keep ? session : null };
  };

  try {
    const sibling = float32Sibling(opts.variant);
    if (sibling) {
      const s = await verdict(sibling, false);
      if ('why' in s) return await plainUnet(`uses the kernels of the ${sibling} graph, which ${s.why}`);
    }
    const v = await verdict(opts.variant, true);
    if ('why' in v) return await plainUnet(v.why);
    opts.onNote?.(`unet: running the ${opts.variant} graph`);
    return {
      session: v.session!,
      variant: opts.variant,
      fallback: null,
      buildSeconds: spent.build,
      checkSeconds: spent.check,
    };
  } finally {
    await (plain as Session | null)?.release().catch(() => {});
  }
}

/** The float32 variant with the same fused kernels as a float16 one (null when it fuses nothing). */
export function float32Sibling(v: UnetVariant): UnetVariant | null {
  const passes = UNET_VARIANTS[v];
  if (!passes?.float16 || !passes.attention) return null;
  return passes.biasSplitGelu ? 'fused-geglu' : 'fused';
}

const MISSING_KERNEL = /kernel|could not find an implementation|not implemented|unsupported op/i;
const NON_FINITE = 'non-finite output';

function failedCheck(reason: string): VariantCheck {
  return { ok: false, maxAbsDiff: null, tolerance: 0, probe: [], reason, at: new Date().toISOString() };
}

/** The check as words: 'max abs diff 0.83 > 0.005 on a [1,4,16,16] probe'. */
function checkText(c: VariantCheck): string {
  if (c.reason && c.maxAbsDiff === null) return c.reason;
  const cmp = c.ok ? '≤' : '>';
  return `max abs diff ${fmt(c.maxAbsDiff!)} ${cmp} ${fmt(c.tolerance)} on a [${c.probe.join(',')}] probe${c.reason ? ` (${c.reason})` : ''}`;
}

const fmt = (x: number): string => (x === 0 ? '0' : Number(x.toPrecision(2)).toString());
const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim().slice(0, 300);

/**
 * Runs both UNets on one probe (a 16×16 latent, batch 1, timestep 500, seeded text) and compares: ok when the
 * outputs are finite and differ by at most `tolerance` × max(1, max |plain|). 16×16 latents give 256 query
 * tokens in the first attention blocks, past the length where a broken attention kernel shows.
 */
export async function compareUnets(
  runtime: Runtime,
  candidate: Session,
  plain: Session,
  tolerance: number,
  latentSide = 16,
): Promise<VariantCheck> {
  const feeds = probeFeeds(plain, latentSide);
  const run = async (s: Session): Promise<Float32Array> => {
    const input = (name: string): IoMeta => {
      const m = s.inputs.find((i) => i.name === name);
      if (!m) throw new VidpriorError('E_MODEL_INPUT', `${s.label} has no input "${name}"`, { input: name });
      return m;
    };
    const own: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      const type = input(name).type;
      own[name] = t.type === 'float32' && type === 'float16' ? castFloat(t as Tensor<'float32'>, type) : t;
    }
    const out = await s.run(own);
    const y = Object.values(out)[0]!;
    const host = await runtime.read(y);
    await runtime.dispose(y);
    return asFloat32(host).data;
  };
  const ref = await run(plain);
  const got = await run(candidate);
  let scale = 1;
  for (const v of ref) scale = Math.max(scale, Math.abs(v));
  const limit = tolerance * scale;
  const probe = feeds.sample!.dims as number[];
  const at = new Date().toISOString();
  if (got.length !== ref.length)
    return { ok: false, maxAbsDiff: null, tolerance: limit, probe, at, reason: 'outputs of different sizes' };
  let d = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(got[i]! - ref[i]!);
    if (!(e <= d)) d = e; // NaN propagates
  }
  if (!Number.isFinite(d)) return { ok: false, maxAbsDiff: null, tolerance: limit, probe, at, reason: NON_FINITE };
  return { ok: d <= limit, maxAbsDiff: d, tolerance: limit, probe, at };
}

/** sample [1,C,s,s], timestep 500, encoder_hidden_states [1,L,W] from the plain UNet's metadata (SD 1.x defaults). */
function probeFeeds(unet: Session, side: number): Record<string, Tensor> {
  const meta = (name: string): IoMeta | undefined => unet.inputs.find((i) => i.name === name);
  const dim = (m: IoMeta | undefined, axis: number, fallback: number): number => {
    const d = m?.dims[axis];
    return typeof d === 'number' && d > 0 ? d : fallback;
  };
  const sample = meta('sample');
  const text = meta('encoder_hidden_states');
  const timestep = meta('timestep');
  const channels = dim(sample, 1, 4);
  const [len, width] = [dim(text, 1, 77), dim(text, 2, 768)];
  const rng = new Rng(11);
  return {
    sample: float32([1, channels, side, side], rng.normalArray(channels * side * side)),
    timestep: filledTensor((timestep?.type ?? 'int64') as DType, timestep?.dims.length === 0 ? [] : [1], 500),
    encoder_hidden_states: float32([1, len, width], rng.normalArray(len * width, 0.5)),
  };
}
