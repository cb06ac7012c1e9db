/**
 * What the GPU graph optimizations buy: UNet steps/s of the original graph, attention-fused (± GEGLU as
 * BiasSplitGelu, WebGPU only), float16 and fused+float16 (src/onnx/optimize), each with ORT's default NCHW
 * and with preferredLayout 'NHWC', each with
 * host feeds/outputs (a round trip per step) and with feeds uploaded once and outputs left on the GPU. Every
 * speed is also given as a ratio to the original graph (NCHW, round trip) measured in the same run, and every
 * variant's output is compared with the original's.
 *
 * ## On the GPU machine (H100, WebGPU): one call, at most 10 minutes
 *
 * Here, first:  npm run build && bash ../shared/gpu/bundle.sh
 * Then the device tool's `run` with carry [".gpu", "dist"] and timeout_s 600:
 *
 *   source .gpu/prelude.sh && node dist/bench/optimize.js --ep webgpu --preset sd15 --batch 2 \
 *     --variants original,fused,fused-geglu,fp16,fused-geglu-fp16 --nhwc original,fused-geglu-fp16 \
 *     --deadline 540 --work /tmp/optimize-bench --out "$OUT" 2>&1 | tail -c 11000
 *
 * The SD 1.5-sized UNet (860M parameters, seeded random weights) is built there in memory (~40 s) and its
 * variants are written to --work (external data, 3.4 GB per float32 variant, 1.7 GB per float16 one); weights
 * are never carried. 7 sessions: five graphs in NCHW, two of them in NHWC too. Measured here on a 2-core CPU,
 * the same code path (sd15, 2 variants) took 150 s, 30–40 s of it per session creation; --deadline skips
 * sessions that would start too late and cuts the repeats so that the JSON is written in time (both listed
 * under "notes"). Results land in $OUT/optimize-webgpu-sd15.json. Check maxAbsDiffVsOriginal before believing
 * a speed-up: on lavapipe the WebGPU MultiHeadAttention kernel is wrong past 16 query tokens
 * (test/onnx/optimize/webgpu.test.ts); fused-fp16 (no BiasSplitGelu) is also available via --variants.
 *
 * ## Here
 *
 *   npm run build && node dist/bench/optimize.js --ep cpu --preset tiny            # CPU: not GPU numbers
 *   VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json XDG_RUNTIME_DIR=/tmp \
 *     node dist/bench/optimize.js --ep webgpu --preset tiny --size 32                # lavapipe: software Vulkan
 *
 * options: --ep cpu|webgpu  --preset tiny|sd15  --batch 2  --size <latent side, default the config's>
 *          --repeats N  --chain <resident steps per timed call, 4>  --variants a,b  --layouts NCHW,NHWC
 *          --nhwc <variants also run NHWC, default all>  --deadline <seconds for the whole run>  --work <dir>
 *          --out <dir, default bench/results>
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { buildComponent, preset as presetConfig } from '../src/models/builder/index.js';
import { saveModel } from '../src/onnx/external-data.js';
import { summarize } from '../src/onnx/graph.js';
import type { Model } from '../src/onnx/ir.js';
import { formatReports, optimizeForGpu } from '../src/onnx/optimize/index.js';
import { Rng } from '../src/random.js';
import { openRuntime } from '../src/runtime/index.js';
import { type ExecutionProvider, type Feed, type Session, isGpuTensor } from '../src/runtime/types.js';
import { type Tensor, asFloat32, float32, int64 } from '../src/tensor.js';
import { hostInfo, round, timeInterleaved } from './common.js';

/** The graphs compared: which passes of optimizeForGpu each gets (LayerNorm fusion is a no-op at opset 17). */
const VARIANT_PASSES = {
  original: null,
  fused: { attention: true, biasSplitGelu: false, float16: false },
  'fused-geglu': { attention: true, biasSplitGelu: true, float16: false },
  fp16: { attention: false, biasSplitGelu: false, float16: true },
  'fused-fp16': { attention: true, biasSplitGelu: false, float16: true },
  'fused-geglu-fp16': { attention: true, biasSplitGelu: true, float16: true },
} as const;
export type GraphVariant = keyof typeof VARIANT_PASSES;
export const GRAPH_VARIANTS = Object.keys(VARIANT_PASSES) as GraphVariant[];
/** BiasSplitGelu has no CPU kernel in ORT. */
const GPU_ONLY = new Set<GraphVariant>(['fused-geglu', 'fused-geglu-fp16']);
type Layout = 'NCHW' | 'NHWC';

export interface OptimizeBenchOptions {
  ep: ExecutionProvider;
  preset: string;
  batch: number;
  /** Latent side (default the config's sample_size). */
  size?: number;
  repeats?: number;
  /** Steps chained per timed call in the resident mode (default 4). */
  chain?: number;
  variants?: readonly GraphVariant[];
  layouts?: readonly Layout[];
  /** Variants also measured with preferredLayout 'NHWC' when layouts include it (default: all of them). */
  nhwcVariants?: readonly GraphVariant[];
  /**
   * Seconds the whole run may take (the device tool stops a command at 600 s): sessions that would start
   * late are skipped and the repeats are cut to fit, both reported. Default: none.
   */
  deadlineSeconds?: number;
  /** Where the variants' model files go (removed afterwards). */
  workDir?: string;
  log?: (line: string) => void;
}

/** Builds the UNet with the project's builder, derives the variants, times them; returns JSON-able results. */
export async function runOptimizeBench(o: OptimizeBenchOptions): Promise<Record<string, unknown>> {
  const startedAt = performance.now();
  const elapsed = (): number => (performance.now() - startedAt) / 1000;
  const deadline = o.deadlineSeconds ?? Infinity;
  const notes: string[] = [];
  const log = o.log ?? ((line: string) => process.stderr.write(`optimize: ${line}\n`));
  const variants = (o.variants ?? GRAPH_VARIANTS).filter((v) => o.ep === 'webgpu' || !GPU_ONLY.has(v));
  const layouts: readonly Layout[] = o.ep === 'webgpu' ? (o.layouts ?? ['NCHW', 'NHWC']) : ['NCHW'];
  const cfg = presetConfig(o.preset);
  const side = o.size ?? cfg.unet.sample_size;
  const work = resolve(o.workDir ?? join(tmpdir(), `vidprior-optimize-${process.pid}`));

  // 1. The UNet (seeded random weights, opset 17 like current exports) and its variants, written to disk.
  let t0 = performance.now();
  const { model: original } = buildComponent('unet', cfg, { opset: 17, seed: 0 });
  log(
    `built the ${o.preset} UNet (${(summarize(original).parameters.count / 1e6).toFixed(1)}M parameters) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const reports: Record<string, string> = {};
  const models: Partial<Record<GraphVariant, Model>> = {};
  for (const v of variants) {
    const passes = VARIANT_PASSES[v];
    if (!passes) {
      models[v] = original;
      continue;
    }
    const r = optimizeForGpu(original, passes);
    models[v] = r.model;
    reports[v] = formatReports(r.reports);
    log(`${v}: ${reports[v]!.replace(/\n/g, ' | ')}`);
  }
  await mkdir(work, { recursive: true });
  const paths: Partial<Record<GraphVariant, string>> = {};
  t0 = performance.now();
  for (const v of variants) {
    await mkdir(join(work, v), { recursive: true });
    paths[v] = join(work, v, 'model.onnx');
    await saveModel(models[v]!, paths[v]!, { externalData: 'auto' });
    delete models[v];
  }
  log(`wrote ${variants.length} variants to ${work} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // 2. Sessions: every variant × layout, outputs kept on the GPU (read back for the round-trip timing).
  const runtime = await openRuntime({ ep: o.ep });
  log(`runtime: ${runtime.decision.ep} (${runtime.decision.reason})`);
  const sessions = new Map<string, Session>();
  try {
    for (const layout of layouts) {
      for (const v of variants) {
        if (layout === 'NHWC' && o.nhwcVariants && !o.nhwcVariants.includes(v)) continue;
        if (elapsed() > 0.6 * deadline) {
          notes.push(`session ${v}/${layout} skipped: ${elapsed().toFixed(0)} s of the ${deadline} s deadline used`);
          log(notes.at(-1)!);
          continue;
        }
        t0 = performance.now();
        sessions.set(
          `${v}/${layout}`,
          await runtime.createSession(paths[v]!, {
            label: `${v}-${layout}`,
            keepOutputsOnGpu: true,
            preferredLayout: layout,
          }),
        );
        log(`session ${v}/${layout} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      }
    }

    // 3. Feeds: latents and text at the UNet batch (2 = one frame with classifier-free guidance).
    const rng = new Rng(0);
    const sample = float32(
      [o.batch, cfg.unet.in_channels, side, side],
      rng.normalArray(o.batch * cfg.unet.in_channels * side * side),
    );
    const text = float32(
      [o.batch, 77, cfg.unet.cross_attention_dim],
      rng.normalArray(o.batch * 77 * cfg.unet.cross_attention_dim, 0.5),
    );
    const timestep = int64([1], [500]);
    const host: Record<string, Tensor> = { sample, timestep, encoder_hidden_states: text };
    const onGpu: Record<string, Feed> = {
      sample: await runtime.upload(sample),
      timestep,
      encoder_hidden_states: await runtime.upload(text),
    };

    // 4. Agreement with the original (first layout), on this provider.
    const outputs = new Map<string, Float32Array>();
    const firstRun = new Map<string, number>();
    for (const [key, s] of sessions) {
      const t1 = performance.now();
      const y = (await s.run(host)).out_sample!;
      firstRun.set(key, (performance.now() - t1) / 1000);
      outputs.set(key, asFloat32(await runtime.read(y)).data);
      if (isGpuTensor(y)) await runtime.dispose(y);
    }
    const ref = outputs.get(`original/${layouts[0]}`) ?? outputs.values().next().value!;
    const agreement: Record<string, number | string> = {};
    for (const [key, y] of outputs) {
      let d = 0;
      for (let i = 0; i < y.length; i++) d = Math.max(d, Math.abs(y[i]! - ref[i]!));
      agreement[key] = y.every(Number.isFinite) ? round(d, 3) : 'non-finite output';
    }
    let refMax = 0;
    for (const x of ref) refMax = Math.max(refMax, Math.abs(x));

    // 5. Timing, round-robin over everything so that a busy machine slows all alike. Resident: a chain of
    //    steps feeding each output back as the next sample (as the denoising loop does on the GPU), read back
    //    once at the end — without that read the time would only measure queueing, not the GPU's work.
    const chain = o.chain ?? 4;
    const fns: Record<string, () => Promise<unknown>> = {};
    const stepsPerCall: Record<string, number> = {};
    for (const [key, s] of sessions) {
      fns[`${key}/roundTrip`] = async () => {
        const y = (await s.run(host)).out_sample!;
        if (isGpuTensor(y)) {
          await runtime.read(y);
          await runtime.dispose(y);
        }
      };
      stepsPerCall[`${key}/roundTrip`] = 1;
      if (o.ep !== 'webgpu') continue;
      fns[`${key}/resident`] = async () => {
        let x: Feed = onGpu.sample!;
        for (let i = 0; i < chain; i++) {
          const y: Feed = (await s.run({ ...onGpu, sample: x })).out_sample!;
          if (i > 0) await runtime.dispose(x);
          x = y;
        }
        await runtime.read(x);
        await runtime.dispose(x);
      };
      stepsPerCall[`${key}/resident`] = chain;
    }
    let repeats = o.repeats ?? (o.ep === 'cpu' ? 3 : 5);
    if (Number.isFinite(deadline)) {
      // One round costs about Σ first-run times (an upper bound: first runs compile shaders) × steps per call.
      const perRound = Object.keys(fns).reduce(
        (t, k) => t + firstRun.get(k.slice(0, k.lastIndexOf('/')))! * stepsPerCall[k]!,
        0,
      );
      const fit = Math.floor((deadline - elapsed() - 20) / perRound) - 1;
      if (fit < repeats) {
        notes.push(
          `repeats cut from ${repeats} to ${Math.max(1, fit)} to fit the deadline (≈ ${perRound.toFixed(1)} s per round)`,
        );
        log(notes.at(-1)!);
        repeats = Math.max(1, fit);
      }
    }
    log(
      `timing ${Object.keys(fns).length} configurations × ${repeats} (after 1 warm-up each; resident = ${chain} chained steps)…`,
    );
    const times = await timeInterleaved(fns, 1, repeats);
    const baseKey = `original/NCHW/roundTrip`;
    const perStep = (k: string): number => times[k]!.median / stepsPerCall[k]!;
    const base = times[baseKey] ? perStep(baseKey) : undefined;
    const results: Record<string, unknown> = {};
    for (const [k, t] of Object.entries(times)) {
      const sec = perStep(k);
      results[k] = {
        stepsPerSecond: round(1 / sec),
        secondsPerStep: round(sec),
        secondsMinPerStep: round(t.min / stepsPerCall[k]!),
        vsOriginal: base ? round(base / sec, 3) : null,
      };
      log(`${k.padEnd(32)} ${(1 / sec).toFixed(3)} steps/s${base ? `  ×${(base / sec).toFixed(2)}` : ''}`);
    }
    for (const f of Object.values(onGpu)) if (isGpuTensor(f)) await runtime.dispose(f);
    return {
      ep: runtime.decision.ep,
      epReason: runtime.decision.reason,
      preset: o.preset,
      batch: o.batch,
      latent: [cfg.unet.in_channels, side, side],
      timestep: 500,
      repeats,
      residentChain: chain,
      host: hostInfo(),
      baseline: baseKey,
      fusion: reports,
      notes,
      secondsBeforeTiming: round(elapsed()),
      maxAbsDiffVsOriginal: agreement,
      originalMaxAbs: round(refMax, 3),
      results,
    };
  } finally {
    for (const s of sessions.values()) await s.release().catch(() => undefined);
    await runtime.close();
    await rm(work, { recursive: true, force: true });
  }
}

function option(args: string[], name: string): string | undefined {
  const k = args.indexOf(name);
  return k >= 0 ? args[k + 1] : undefined;
}

export async function main(args: string[]): Promise<void> {
  const ep = (option(args, '--ep') ?? 'cpu') as ExecutionProvider;
  if (ep !== 'cpu' && ep !== 'webgpu') throw new Error(`--ep must be cpu or webgpu, got ${ep}`);
  const preset = option(args, '--preset') ?? 'tiny';
  const batch = Number(option(args, '--batch') ?? 2);
  if (!Number.isInteger(batch) || batch < 1)
    throw new Error(`--batch must be a positive integer, got ${option(args, '--batch')}`);
  const size = option(args, '--size') ? Number(option(args, '--size')) : undefined;
  const repeats = option(args, '--repeats') ? Number(option(args, '--repeats')) : undefined;
  const chain = option(args, '--chain') ? Number(option(args, '--chain')) : undefined;
  const variants = option(args, '--variants')?.split(',') as GraphVariant[] | undefined;
  const bad = variants?.filter((v) => !GRAPH_VARIANTS.includes(v));
  if (bad?.length) throw new Error(`unknown variant ${bad.join(', ')}; known: ${GRAPH_VARIANTS.join(', ')}`);
  const layouts = option(args, '--layouts')?.split(',') as Layout[] | undefined;
  const nhwcVariants = option(args, '--nhwc')?.split(',') as GraphVariant[] | undefined;
  const deadlineSeconds = option(args, '--deadline') ? Number(option(args, '--deadline')) : undefined;
  const outDir = option(args, '--out') ?? join('bench', 'results');
  const started = new Date();
  const result = await runOptimizeBench({
    ep,
    preset,
    batch,
    size,
    repeats,
    chain,
    variants,
    layouts,
    nhwcVariants,
    deadlineSeconds,
    workDir: option(args, '--work'),
  });
  const record = {
    name: 'optimize',
    date: started.toISOString(),
    seconds: (Date.now() - started.getTime()) / 1000,
    result,
  };
  await mkdir(outDir, { recursive: true });
  const file = join(outDir, `optimize-${ep}-${preset}.json`);
  await writeFile(file, `${JSON.stringify(record, null, 2)}\n`);
  process.stderr.write(`optimize: wrote ${file}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
