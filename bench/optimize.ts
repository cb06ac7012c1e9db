/**
 * What the GPU graph variants buy: UNet steps/s of a model folder's UNet as each inference variant
 * (src/models/unet-variants.ts: attention fused, + BiasSplitGelu, float16), at the guidance batch of one frame,
 * with host feeds and outputs (a round trip per step) and GPU-resident (feeds uploaded once, each output fed
 * back as the next sample, as the denoising loop does). Every variant's output is compared with the original
 * graph's on the same inputs: one that disagrees is marked incorrect and never counts as a speed-up. Variants
 * are built through the same cache as inference (prepareUnetVariant) and their agreement is recorded there,
 * so a later `vidprior stylize` on the folder starts without building or checking again.
 *
 * Variants are measured one after the other and each result is handed to `onRecord` (a JSON line) as soon as
 * it is known; with a deadline, variants that would not fit are skipped (listed in notes). Then, if time is
 * left: the original graph on the CPU provider (same inputs), and an ORT profile of the fastest correct
 * variant summarised as its top kernels (GPU time per op on WebGPU).
 *
 * The GPU session runs this as phase b of bench/gpu/session.sh. Here:
 *   node dist/bench/optimize.js --ep cpu --preset tiny
 *   VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json XDG_RUNTIME_DIR=$(mktemp -d) \
 *     node dist/bench/optimize.js --ep webgpu --preset tiny --size 32                 # lavapipe
 * options: --ep cpu|webgpu|cuda  --preset tiny|sd15 (built into .cache/bench-models) | --model <folder>
 *          --batch 2  --size <latent side>  --repeats N  --chain <resident steps per timed call, 4>
 *          --variants a,b  --deadline <seconds>  --cpu-check  --profile  --jsonl <file>  --out <dir>
 */
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { compareUnets, float32Sibling, variantTolerance } from '../src/models/inference-unet.js';
import {
  UNET_VARIANT_NAMES,
  type UnetVariant,
  isGpuOnlyVariant,
  isUnetVariant,
  prepareUnetVariant,
  recordVariantCheck,
} from '../src/models/unet-variants.js';
import { loadModel } from '../src/onnx/external-data.js';
import type { Model } from '../src/onnx/ir.js';
import { Rng } from '../src/random.js';
import { openRuntime } from '../src/runtime/index.js';
import {
  type ExecutionProvider,
  type Feed,
  type GpuTensor,
  type Runtime,
  type Session,
  isGpuTensor,
} from '../src/runtime/types.js';
import { type Tensor, asFloat32, float32, int64 } from '../src/tensor.js';
import { benchModelDir, hostInfo, round, timeInterleaved } from './common.js';
import { summarizeProfile } from './profile.js';

export interface OptimizeBenchOptions {
  ep: ExecutionProvider;
  /** The model folder whose unet/model.onnx is measured. */
  modelDir: string;
  batch: number;
  /** Latent side (default the UNet's static one, else 64). */
  size?: number;
  repeats?: number;
  /** Steps chained per timed call in the resident mode (default 4). */
  chain?: number;
  /** In the order they are measured; 'original' is always measured first. */
  variants?: readonly UnetVariant[];
  /** Seconds the whole run may take: variants that would not fit are skipped. */
  deadlineSeconds?: number;
  /** Also run the original graph on the CPU provider and compare (when time is left). */
  cpuCheck?: boolean;
  /** Profile the fastest correct variant (when time is left). */
  profile?: boolean;
  /** Where variants go when the model folder is read-only, and hash stamps (default: a temporary folder). */
  cacheDir?: string;
  log?: (line: string) => void;
  /** Each result as soon as it is known. */
  onRecord?: (record: Record<string, unknown>) => Promise<void> | void;
}

/** One session's timing: steps/s with host feeds and GPU-resident (WebGPU), its first output and run time. */
interface Timed {
  roundTrip: number;
  resident?: number;
  y: Float32Array;
  firstRunSeconds: number;
  repeats: number;
}

interface Measured {
  variant: UnetVariant;
  correct: boolean;
  roundTrip: number;
  resident?: number;
}

/** float32 siblings first: they vouch for the fused kernels of the float16 variants after them. */
const MEASURE_ORDER: readonly UnetVariant[] = ['fused', 'fused-geglu', 'fused-geglu-fp16', 'fused-fp16', 'fp16'];

const seconds = (t0: number): number => round((performance.now() - t0) / 1000, 3);

function maxAbs(a: Float32Array, b?: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i]! - (b ? b[i]! : 0));
    if (!(e <= d)) d = e;
  }
  return d;
}

export async function runOptimizeBench(o: OptimizeBenchOptions): Promise<Record<string, unknown>> {
  const started = performance.now();
  const elapsed = (): number => (performance.now() - started) / 1000;
  const deadline = o.deadlineSeconds ?? Infinity;
  const log = o.log ?? ((line: string) => process.stderr.write(`optimize: ${line}\n`));
  const notes: string[] = [];
  const note = (line: string): void => {
    notes.push(line);
    log(line);
  };
  const emit = async (r: Record<string, unknown>): Promise<void> => {
    await o.onRecord?.({ phase: 'unet', ep: o.ep, elapsed: round(elapsed(), 3), ...r });
  };
  const unetPath = join(resolve(o.modelDir), 'unet', 'model.onnx');
  const ownCache = o.cacheDir ? null : await mkdtemp(join(tmpdir(), 'vidprior-optimize-'));
  const cacheDir = o.cacheDir ?? ownCache!;
  const runtime = await openRuntime({ ep: o.ep });
  log(`runtime: ${runtime.decision.ep} (${runtime.decision.reason}), onnxruntime ${runtime.ortVersion}`);
  const variants = (o.variants ?? MEASURE_ORDER).filter((v) => v !== 'original');
  const skippedGpuOnly = o.ep === 'webgpu' ? [] : variants.filter(isGpuOnlyVariant);
  if (skippedGpuOnly.length) note(`${skippedGpuOnly.join(', ')}: BiasSplitGelu has no CPU kernel, not measured`);
  let source: Promise<Model> | undefined; // the UNet in memory, read once when a variant must be built
  const loadSource = (): Promise<Model> => {
    source ??= loadModel(unetPath);
    return source;
  };
  const measured: Measured[] = [];
  const chain = o.chain ?? 4;
  const repeats = o.repeats ?? (o.ep === 'cpu' ? 2 : 5);

  try {
    // 1. The original graph: the reference output and the baseline speed.
    let t0 = performance.now();
    const original = await runtime.createSession(unetPath, { label: 'original', keepOutputsOnGpu: true });
    const originalSessionSeconds = seconds(t0);
    const side = o.size ?? staticSide(original) ?? 64;
    const feeds = makeFeeds(original, o.batch, side);
    const onGpu: Record<string, Feed> = {
      ...feeds,
      sample: await runtime.upload(feeds.sample!),
      encoder_hidden_states: await runtime.upload(feeds.encoder_hidden_states!),
    };
    const resident = o.ep === 'webgpu';
    /** First run (output, shader compilation), one warm step, then as many timed calls as fit `slice` s. */
    const timeOne = async (s: Session, slice: number): Promise<Timed> => {
      t0 = performance.now();
      const y = asFloat32(await readBack(runtime, (await s.run(feeds)).out_sample!)).data;
      const firstRunSeconds = seconds(t0);
      t0 = performance.now();
      await readBack(runtime, (await s.run(feeds)).out_sample!);
      const step = (performance.now() - t0) / 1000;
      const perRound = step * (1 + (resident ? chain : 0));
      const n = Math.max(1, Math.min(repeats, Math.floor(slice / perRound) - 1));
      const timed = await timeSteps(runtime, s, feeds, onGpu, chain, n, resident);
      return { ...timed, y, firstRunSeconds, repeats: n };
    };
    /** The time one measurement may take: what is left, shared by those still to come (extras count as one). */
    const slice = (left: number): number => (deadline - elapsed()) / (left + (o.cpuCheck || o.profile ? 2 : 1));
    const base = await timeOne(original, slice(variants.length + 1));
    const ref = base.y;
    const refMax = maxAbs(ref);
    measured.push({ variant: 'original', correct: true, roundTrip: base.roundTrip, resident: base.resident });
    const perVariantSeconds = elapsed();
    await emit({
      variant: 'original',
      correct: true,
      maxAbsDiff: 0,
      outputMaxAbs: round(refMax, 4),
      sessionSeconds: originalSessionSeconds,
      firstRunSeconds: base.firstRunSeconds,
      repeats: base.repeats,
      ...speeds(base),
      latent: [o.batch, ...feeds.sample!.dims.slice(1)],
    });
    log(`original: ${fmtSpeed(base)} (session ${originalSessionSeconds} s, first run ${base.firstRunSeconds} s)`);

    // 2. Each variant: prepared through the inference cache, checked against the original, timed.
    let lastBuild = 0;
    for (const variant of variants) {
      if (skippedGpuOnly.includes(variant)) continue;
      const need = perVariantSeconds + lastBuild;
      if (elapsed() + need > deadline) {
        note(
          `${variant} skipped: ${elapsed().toFixed(0)} s used, ~${need.toFixed(0)} s needed, deadline ${deadline} s`,
        );
        await emit({ variant, skipped: 'deadline' });
        continue;
      }
      const record: Record<string, unknown> = { variant };
      t0 = performance.now();
      try {
        const entry = await prepareUnetVariant(unetPath, variant, {
          ortVersion: runtime.ortVersion,
          cacheDir,
          source: loadSource,
          onNote: log,
        });
        record.prepareSeconds = seconds(t0);
        record.built = entry.built;
        record.fusion = entry.meta.report.replace(/\n/g, ' | ');
        lastBuild = entry.built ? (performance.now() - t0) / 1000 : lastBuild;
        t0 = performance.now();
        const session = await runtime.createSession(entry.path, { label: variant, keepOutputsOnGpu: true });
        record.sessionSeconds = seconds(t0);
        const probe = await compareUnets(runtime, session, original, variantTolerance(variant));
        await recordVariantCheck(entry, runtime.decision.ep, probe);
        record.probeCheck = { ok: probe.ok, maxAbsDiff: probe.maxAbsDiff, tolerance: probe.tolerance };
        const m = await timeOne(session, slice(variants.length - variants.indexOf(variant)));
        await session.release(); // one variant on the GPU at a time (beside the original)
        const diff = maxAbs(m.y, ref);
        const tolerance = variantTolerance(variant) * Math.max(1, refMax);
        // float16's own error can hide a wrong fused kernel: its float32 sibling, when measured, vouches for it.
        const sibling = float32Sibling(variant);
        const siblingOk = sibling ? measured.find((x) => x.variant === sibling)?.correct : undefined;
        const correct = probe.ok && Number.isFinite(diff) && diff <= tolerance && siblingOk !== false;
        if (sibling)
          record.vouchedBy = `${sibling} (${siblingOk === undefined ? 'not measured' : siblingOk ? 'correct' : 'INCORRECT'})`;
        Object.assign(record, {
          correct,
          maxAbsDiff: Number.isFinite(diff) ? round(diff, 3) : 'non-finite',
          tolerance: round(tolerance, 3),
          firstRunSeconds: m.firstRunSeconds,
          repeats: m.repeats,
          ...speeds(m),
          vsOriginalResident: m.resident && base.resident ? round(m.resident / base.resident, 3) : null,
        });
        measured.push({ variant, correct, roundTrip: m.roundTrip, resident: m.resident });
        log(`${variant}: ${fmtSpeed(m)}, max abs diff ${record.maxAbsDiff}${correct ? '' : ' — INCORRECT'}`);
      } catch (err) {
        record.error = (err as Error).message.replace(/\s+/g, ' ').slice(0, 400);
        record.correct = false;
        log(`${variant}: failed: ${record.error}`);
      }
      await emit(record);
    }
    for (const f of [onGpu.sample!, onGpu.encoder_hidden_states!]) await runtime.dispose(f);
    source = undefined;

    // 3. The original graph on the CPU provider, same inputs (when time is left: SD 1.5 takes a while on CPUs).
    const result: Record<string, unknown> = { notes };
    if (o.cpuCheck && o.ep !== 'cpu') {
      const need = 3 * originalSessionSeconds + 20;
      if (elapsed() + need > deadline) note(`CPU-provider check skipped: ~${need.toFixed(0)} s needed`);
      else {
        t0 = performance.now();
        const cpu = await openRuntime({ ep: 'cpu' });
        try {
          const s = await cpu.createSession(unetPath, { label: 'original-cpu' });
          const y = asFloat32(await readBack(cpu, (await s.run(feeds)).out_sample!)).data;
          const diff = maxAbs(y, ref);
          result.cpuCheck = { maxAbsDiff: round(diff, 3), seconds: seconds(t0) };
          await o.onRecord?.({
            phase: 'cpu-check',
            variant: 'original',
            maxAbsDiff: round(diff, 3),
            seconds: seconds(t0),
          });
          log(`original on the CPU provider vs ${o.ep}: max abs diff ${round(diff, 3)} (${seconds(t0)} s)`);
        } finally {
          await cpu.close();
        }
      }
    }

    // 4. A profile of the fastest correct variant.
    const speed = (m: Measured): number => m.resident ?? m.roundTrip;
    const best = measured.filter((m) => m.correct).sort((a, b) => speed(b) - speed(a))[0];
    result.best = best?.variant ?? null;
    if (o.profile && best) {
      const need = perVariantSeconds + lastBuild;
      if (elapsed() + need > deadline) note(`profile skipped: ~${need.toFixed(0)} s needed`);
      else result.profile = await profileVariant(runtime, best.variant, unetPath, cacheDir, feeds, o, emit);
    }
    await original.release();
    return {
      ep: runtime.decision.ep,
      onnxruntime: runtime.ortVersion,
      modelDir: resolve(o.modelDir),
      batch: o.batch,
      latent: [...feeds.sample!.dims],
      timestep: 500,
      repeats,
      residentChain: chain,
      host: hostInfo(),
      seconds: round(elapsed(), 3),
      ...result,
    };
  } finally {
    await runtime.close();
    if (ownCache) await rm(ownCache, { recursive: true, force: true });
  }

  /** Round trip and resident timing of one session: `repeats` calls after one warm-up each. */
  async function timeSteps(
    rt: Runtime,
    s: Session,
    host: Record<string, Tensor>,
    gpu: Record<string, Feed>,
    steps: number,
    n: number,
    resident: boolean,
  ): Promise<{ roundTrip: number; resident?: number }> {
    const fns: Record<string, () => Promise<unknown>> = {
      roundTrip: async () => readBack(rt, (await s.run(host)).out_sample!),
    };
    if (resident) {
      fns.resident = async () => {
        let x: Feed = gpu.sample!;
        for (let i = 0; i < steps; i++) {
          const y: Feed = (await s.run({ ...gpu, sample: x })).out_sample!;
          if (i > 0) await rt.dispose(x);
          x = y;
        }
        await readBack(rt, x);
      };
    }
    const t = await timeInterleaved(fns, resident ? 1 : 0, n); // the round trip is warm already
    return { roundTrip: 1 / t.roundTrip!.median, ...(t.resident ? { resident: steps / t.resident.median } : {}) };
  }
}

async function profileVariant(
  runtime: Runtime,
  variant: UnetVariant,
  unetPath: string,
  cacheDir: string,
  feeds: Record<string, Tensor>,
  o: OptimizeBenchOptions,
  emit: (r: Record<string, unknown>) => Promise<void>,
): Promise<unknown> {
  const dir = await mkdtemp(join(tmpdir(), 'vidprior-profile-'));
  try {
    const path =
      variant === 'original'
        ? unetPath
        : (await prepareUnetVariant(unetPath, variant, { ortVersion: runtime.ortVersion, cacheDir })).path;
    const s = await runtime.createSession(path, { label: `${variant}-profiled`, profilePrefix: join(dir, 'unet') });
    for (let i = 0; i < 3; i++) await readBack(runtime, (await s.run(feeds)).out_sample!);
    await s.release(); // writes the profile
    const file = (await readdir(dir)).find((f) => f.endsWith('.json'));
    if (!file) return { error: 'ORT wrote no profile' };
    const summary = summarizeProfile(JSON.parse(await readFile(join(dir, file), 'utf8')), 12);
    await emit({ phase: 'profile', variant, ...summary });
    o.log?.(
      `profile of ${variant}: ${summary.source}, top ops ${summary.byOp.map((k) => `${k.name} ${k.share}`).join(', ')}`,
    );
    return { variant, ...summary };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function readBack(runtime: Runtime, y: Tensor | GpuTensor): Promise<Tensor> {
  const host = await runtime.read(y);
  if (isGpuTensor(y)) await runtime.dispose(y);
  return host;
}

function staticSide(s: Session): number | undefined {
  const d = s.inputs.find((i) => i.name === 'sample')?.dims[2];
  return typeof d === 'number' && d > 0 ? d : undefined;
}

/** sample [B,C,s,s] ~ N(0,1), timestep 500 (int64 [1]), text [B,77,W] ~ N(0,0.25) (W from the model, else 768). */
function makeFeeds(s: Session, batch: number, side: number): Record<string, Tensor> {
  const meta = (n: string) => s.inputs.find((i) => i.name === n);
  const dim = (n: string, axis: number, fallback: number): number => {
    const d = meta(n)?.dims[axis];
    return typeof d === 'number' && d > 0 ? d : fallback;
  };
  const c = dim('sample', 1, 4);
  const [len, width] = [dim('encoder_hidden_states', 1, 77), dim('encoder_hidden_states', 2, 768)];
  const rng = new Rng(0);
  return {
    sample: float32([batch, c, side, side], rng.normalArray(batch * c * side * side)),
    timestep: int64([1], [500]),
    encoder_hidden_states: float32([batch, len, width], rng.normalArray(batch * len * width, 0.5)),
  };
}

function speeds(m: { roundTrip?: number; resident?: number }): Record<string, number | null> {
  return {
    stepsPerSecondRoundTrip: m.roundTrip ? round(m.roundTrip) : null,
    stepsPerSecondResident: m.resident ? round(m.resident) : null,
  };
}

function fmtSpeed(m: { roundTrip?: number; resident?: number }): string {
  const r = m.resident ? `, ${m.resident.toFixed(3)} resident` : '';
  return `${(m.roundTrip ?? 0).toFixed(3)} steps/s round trip${r}`;
}

function option(args: string[], name: string): string | undefined {
  const k = args.indexOf(name);
  return k >= 0 ? args[k + 1] : undefined;
}

export async function main(args: string[]): Promise<void> {
  const ep = (option(args, '--ep') ?? 'cpu') as ExecutionProvider;
  if (!['cpu', 'webgpu', 'cuda'].includes(ep)) throw new Error(`--ep must be cpu, webgpu or cuda, got ${ep}`);
  const preset = option(args, '--preset') ?? 'tiny';
  const batch = Number(option(args, '--batch') ?? 2);
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`--batch must be a positive integer, got ${batch}`);
  const num = (name: string): number | undefined => (option(args, name) ? Number(option(args, name)) : undefined);
  const variants = option(args, '--variants')?.split(',');
  const bad = variants?.filter((v) => !isUnetVariant(v));
  if (bad?.length) throw new Error(`unknown variant ${bad.join(', ')}; known: ${UNET_VARIANT_NAMES.join(', ')}`);
  const outDir = option(args, '--out') ?? join('bench', 'results');
  const jsonl = option(args, '--jsonl');
  const log = (line: string): void => {
    process.stderr.write(`optimize: ${line}\n`);
  };
  const modelDir =
    option(args, '--model') ??
    (await benchModelDir({
      ep,
      preset,
      dtype: 'float32',
      quick: false,
      modelsDir: join('.cache', 'bench-models'),
      log,
    }));
  const date = new Date();
  const result = await runOptimizeBench({
    ep,
    modelDir,
    batch,
    size: num('--size'),
    repeats: num('--repeats'),
    chain: num('--chain'),
    variants: variants as UnetVariant[] | undefined,
    deadlineSeconds: num('--deadline'),
    cpuCheck: args.includes('--cpu-check'),
    profile: args.includes('--profile'),
    cacheDir: option(args, '--cache'),
    log,
    onRecord: jsonl ? (r) => appendFile(jsonl, `${JSON.stringify(r)}\n`) : undefined,
  });
  await mkdir(outDir, { recursive: true });
  const file = join(outDir, `optimize-${ep}-${preset}.json`);
  await writeFile(file, `${JSON.stringify({ name: 'optimize', date: date.toISOString(), result }, null, 2)}\n`);
  log(`wrote ${file}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
