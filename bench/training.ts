/**
 * Training speed and memory.
 *
 * As a module of `npm run bench`: steps/s of the LoRA fine-tuning step (UNet + LoRA forward, backward, AdamW in
 * one ONNX graph) at batch 1 on 512×512-frame latents, beside the UNet's forward step/s at batch 1 measured in
 * the same run (the ratio says what the backward pass costs), and the process's peak resident memory.
 *
 * Run directly (`node dist/bench/training.js …`), it compares the kinds of training and the memory levers,
 * each a "part" (training-parts.ts: LoRA attention rank 4, LoRA + convs, full UNet, full with recompute /
 * float16 / gradient accumulation):
 *   (default)      CPU, tiny preset: each part in its own process, peak RSS and steps/s, ratios to LoRA
 *   --gpu          the GPU machine, in one call: parts in this process within --budget-s seconds (default 170),
 *                  peak GPU memory from nvidia-smi, one JSON line per part in <out>/training-gpu.jsonl as it
 *                  finishes, then a summary with ratios to PyTorch's training row (--baseline <the JSON that
 *                  ../shared/gpu/torch-baseline/baseline.py writes>)
 *   --build-only   graph construction only (structure, LoRA/deltas, loss, autodiff, AdamW; no session): seconds
 *                  and peak RSS per part, each in its own process (for SD 1.5 size on a CPU machine)
 * options: --preset tiny|sd15  --ep cpu|webgpu|cuda|auto  --model-dir <built folder>  --models <cache dir>
 *          --out <dir>  --parts a,b  --steps N  --baseline <file>  --budget-s N  --latent-side N (dry runs)
 *   node dist/bench/training.js --gpu --preset sd15 --ep webgpu --out <dir> [--model-dir <dir>] [--baseline <f>]
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Rng } from '../src/random.js';
import type { ExecutionProviderChoice } from '../src/runtime/types.js';
import { openRuntime } from '../src/runtime/index.js';
import { isGpuTensor } from '../src/runtime/types.js';
import { float32 } from '../src/tensor.js';
import { castFloat } from '../src/tensor.js';
import { timestepTensor } from '../src/pipelines/denoise.js';
import { finetune } from '../src/training/finetune.js';
import {
  type BenchContext,
  type BenchModule,
  benchModelDir,
  hostInfo,
  loadBenchModel,
  round,
  timeInterleaved,
} from './common.js';
import { GpuMemoryPoller } from './gpu-memory.js';
import { PARTS, type PartResult, type PartSpec, readTrainTarget, runPart } from './training-parts.js';
import { buildStepGraph } from '../src/training/step-session.js';

async function runTrainingBench(ctx: BenchContext): Promise<unknown> {
  const runtime = await openRuntime({ ep: ctx.ep });
  ctx.log(`training: ${runtime.decision.ep} (${runtime.decision.reason})`);
  const model = await loadBenchModel(ctx, runtime, false);
  const { facts, io } = model;
  try {
    if (facts.unetType !== 'float32') {
      return { skipped: `training needs a float32 UNet; this bench model is ${facts.unetType} (use --dtype float32)` };
    }
    const side = Math.round(512 / facts.vaeScaleFactor);
    const pixels = side * facts.vaeScaleFactor;
    const rng = new Rng(0);
    const iterations = ctx.quick ? 4 : runtime.decision.ep === 'cpu' ? 12 : 40;

    // 1. Baseline: the UNet's forward step at batch 1, same latents.
    const sample = float32([1, facts.latentChannels, side, side], rng.normalArray(facts.latentChannels * side * side));
    const text = castFloat(
      float32([1, facts.textLength, facts.textWidth], rng.normalArray(facts.textLength * facts.textWidth, 0.5)),
      facts.unetTextType,
    );
    const t = timestepTensor(model, 300);
    const forward = await timeInterleaved(
      {
        forward: async () => {
          const out = await model.unet.run({ [io.unetSample]: sample, [io.unetTimestep]: t, [io.unetText]: text }, [
            io.unetOut,
          ]);
          const y = out[io.unetOut]!;
          if (isGpuTensor(y)) {
            await runtime.read(y);
            await runtime.dispose(y);
          }
        },
      },
      1,
      ctx.quick ? 2 : 4,
    );

    // 2. Training steps: finetune() on two synthetic frames, peak RSS sampled meanwhile (the worker's ORT
    //    allocations are in this process's RSS).
    const frames = [0, 1].map(() =>
      float32(
        [3, pixels, pixels],
        rng.normalArray(3 * pixels * pixels, 0.5).map((v) => Math.max(-1, Math.min(1, v))),
      ),
    );
    let peak = process.memoryUsage().rss;
    const before = peak;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);
    let result: Awaited<ReturnType<typeof finetune>>;
    try {
      result = await finetune(
        runtime,
        model,
        { frames, edits: [{ original: frames[0]!, edited: frames[1]! }] },
        {
          prompt: 'a watercolor painting',
          iterations,
          lr: 1e-4,
          rank: 4,
          maxTimestep: 500,
          conditionalShare: 0.25,
          seed: 0,
          checkpointEvery: 0,
          onProgress: (p) => {
            if (p.stage !== 'training') ctx.log(`training: ${p.message ?? p.stage}`);
          },
        },
      );
    } finally {
      clearInterval(sampler);
    }
    // The first iterations include ORT's first-run planning: report the steady rate from the later half too.
    const stepSeconds = result.secondsPerIteration;
    const forwardSeconds = forward.forward.median;
    return {
      host: hostInfo(),
      ep: runtime.decision.ep,
      preset: ctx.preset,
      latent: [1, facts.latentChannels, side, side],
      iterations,
      lora: { rank: 4, layers: 'weights' in result.adapter ? result.adapter.weights.size : 0 },
      trainingStepsPerSecond: round(1 / stepSeconds),
      forwardStepsPerSecond: round(1 / forwardSeconds),
      trainingStepVsForward: round(stepSeconds / forwardSeconds),
      peakRssMiB: Math.round(peak / 2 ** 20),
      rssBeforeTrainingMiB: Math.round(before / 2 ** 20),
      validationLoss: { before: round(result.validationBefore), after: round(result.validationAfter) },
      note: 'steps/s include the host work per step (noising, feeds, reading the loss); peak RSS is the whole process (model sessions included)',
    };
  } finally {
    await model.release();
    await runtime.close();
  }
}

export const trainingBench: BenchModule = {
  name: 'training',
  describe:
    'fine-tuning step (UNet+LoRA forward, backward, AdamW) steps/s and peak memory, vs the forward step in the same run',
  run: runTrainingBench,
};

// ---- Run directly: parts, levers, the GPU call ----

interface Args {
  gpu: boolean;
  buildOnly: boolean;
  part?: string;
  preset: string;
  ep: ExecutionProviderChoice;
  modelDir?: string;
  models: string;
  out: string;
  parts: PartSpec[];
  steps: number;
  baseline?: string;
  budget: number;
  latentSide?: number;
}

function parseArgs(argv: string[]): Args {
  const opt = (name: string): string | undefined => {
    const k = argv.indexOf(name);
    return k >= 0 ? argv[k + 1] : undefined;
  };
  const gpu = argv.includes('--gpu');
  const names =
    opt('--parts')?.split(',') ??
    (gpu
      ? ['lora', 'full', 'lora-convs', 'full-recompute', 'full-float16', 'full-accumulate4']
      : [
          'lora',
          'lora-convs',
          'full',
          'full-recompute',
          'full-float16',
          'full-accumulate4',
          'lora-recompute',
          'lora-float16',
        ]);
  const parts = names.map((n) => {
    const p = PARTS.find((x) => x.name === n);
    if (!p) throw new Error(`unknown part ${n}; known: ${PARTS.map((x) => x.name).join(', ')}`);
    return p;
  });
  return {
    gpu,
    buildOnly: argv.includes('--build-only'),
    part: opt('--part'),
    preset: opt('--preset') ?? 'tiny',
    ep: (opt('--ep') ?? (gpu ? 'webgpu' : 'cpu')) as ExecutionProviderChoice,
    modelDir: opt('--model-dir'),
    models: opt('--models') ?? join('.cache', 'bench-models'),
    out: opt('--out') ?? join('bench', 'results'),
    parts,
    steps: Number(opt('--steps') ?? (gpu ? 10 : 4)),
    baseline: opt('--baseline'),
    budget: Number(opt('--budget-s') ?? 170),
    latentSide: opt('--latent-side') ? Number(opt('--latent-side')) : undefined,
  };
}

const log = (line: string): void => {
  process.stderr.write(`training: ${line}\n`);
};

async function modelDirFor(a: Args): Promise<string> {
  if (a.modelDir) return a.modelDir;
  const t0 = performance.now();
  const dir = await benchModelDir({
    ep: a.ep,
    preset: a.preset,
    dtype: 'float32',
    quick: false,
    modelsDir: a.models,
    log,
  });
  log(`model folder ${dir} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  return dir;
}

const peakRssMiB = (): number => Math.round(process.resourceUsage().maxRSS / 1024);

/** One part in this process (a child of the CPU lever comparison), printed as one JSON line. */
async function childPart(a: Args): Promise<void> {
  const spec = PARTS.find((p) => p.name === a.part);
  if (!spec) throw new Error(`unknown part ${a.part}`);
  const dir = await modelDirFor(a);
  const target = await readTrainTarget(dir);
  const side = Math.round(512 / target.facts.vaeScaleFactor);
  if (a.buildOnly) {
    const built = await buildStepGraph(
      target,
      [spec.batch ?? 1, target.facts.latentChannels, side, side],
      [spec.batch ?? 1, target.facts.textLength, target.facts.textWidth],
      {
        full: spec.mode === 'full',
        rank: 4,
        alpha: 4,
        convs: spec.mode === 'lora-convs',
        accumulate: (spec.accumulate ?? 1) > 1,
        precision: spec.precision ?? 'float32',
        recompute: !!spec.recompute,
      },
    );
    process.stdout.write(
      `${JSON.stringify({
        part: spec.name,
        buildSeconds: round(built.buildSeconds),
        nodes: built.graph.graph.nodes.length,
        estimatedMemoryGiB: round(built.memory.total / 2 ** 30),
        savedActivationGiB: round(built.step.savedActivationBytes / 2 ** 30),
        peakRssMiB: peakRssMiB(),
      })}\n`,
    );
    return;
  }
  const runtime = await openRuntime({ ep: a.ep });
  try {
    const rssBefore = peakRssMiB();
    const r = await runPart(runtime, target, spec, {
      warmup: 1,
      steps: a.steps,
      maxSeconds: 120,
      log,
      latentSide: a.latentSide,
    });
    process.stdout.write(
      `${JSON.stringify({ ...r, ep: runtime.decision.ep, rssBeforeMiB: rssBefore, peakRssMiB: peakRssMiB() })}\n`,
    );
  } finally {
    await runtime.close();
  }
}

/** Each part in its own process (peak RSS is per process), ratios to the first part. */
async function cpuComparison(a: Args): Promise<void> {
  const dir = await modelDirFor(a);
  await mkdir(a.out, { recursive: true });
  const rows: Record<string, unknown>[] = [];
  for (const spec of a.parts) {
    const args = [
      process.argv[1]!,
      '--part',
      spec.name,
      '--preset',
      a.preset,
      '--ep',
      a.ep,
      '--model-dir',
      dir,
      '--steps',
      String(a.steps),
    ];
    if (a.buildOnly) args.push('--build-only');
    if (a.latentSide) args.push('--latent-side', String(a.latentSide));
    const child = spawnSync(process.execPath, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 1 << 24,
    });
    const line = child.stdout.trim().split('\n').pop() ?? '';
    try {
      rows.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      rows.push({ part: spec.name, error: `exit ${child.status}` });
    }
    log(JSON.stringify(rows[rows.length - 1]));
  }
  const first = rows[0]!;
  const ratio = (r: Record<string, unknown>, k: string) =>
    typeof r[k] === 'number' && typeof first[k] === 'number' ? round((r[k] as number) / (first[k] as number)) : null;
  const result = {
    name: a.buildOnly ? 'training-build' : 'training-levers',
    date: new Date().toISOString(),
    host: hostInfo(),
    note: '2-core CPU, shared: ratios to the first part measured in the same run; peak RSS is per process (model folder read, graph built, session, steps)',
    preset: a.preset,
    parts: rows.map((r) => ({ ...r, rssVsFirst: ratio(r, 'peakRssMiB'), speedVsFirst: ratio(r, 'stepsPerSecond') })),
  };
  const text = `${JSON.stringify(result, null, 2)}\n`;
  await writeFile(join(a.out, `${result.name}-${a.preset}.json`), text);
  process.stdout.write(text);
}

/** The GPU call: every part in this process, within the time budget, results written as they come. */
async function gpuRun(a: Args): Promise<void> {
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  await mkdir(a.out, { recursive: true });
  const file = join(a.out, 'training-gpu.jsonl');
  const emit = async (o: Record<string, unknown>) => {
    await appendFile(file, `${JSON.stringify(o)}\n`);
    process.stdout.write(`${JSON.stringify(o)}\n`);
  };
  const poller = new GpuMemoryPoller();
  poller.start();
  const dir = await modelDirFor(a);
  const runtime = await openRuntime({ ep: a.ep });
  await new Promise((r) => setTimeout(r, 300));
  await emit({
    event: 'start',
    date: new Date().toISOString(),
    host: hostInfo(),
    ep: runtime.decision.ep,
    reason: runtime.decision.reason,
    preset: a.preset,
    modelDir: dir,
    gpuMemoryIdleMiB: poller.current(),
    nvidiaSmi: poller.unavailable ?? 'ok',
    modelSeconds: round(elapsed()),
  });
  const results: (PartResult & { peakGpuMiB: number | null })[] = [];
  let lastCost = 0;
  try {
    for (const spec of a.parts) {
      const left = a.budget - elapsed();
      if (lastCost > left) {
        await emit({
          event: 'skipped',
          part: spec.name,
          reason: `${left.toFixed(0)} s of the budget left, the last part took ${lastCost.toFixed(0)} s`,
        });
        continue;
      }
      poller.reset();
      const t0 = performance.now();
      try {
        const r = await runPart(runtime, await readTrainTarget(dir), spec, {
          warmup: 2,
          steps: a.steps,
          maxSeconds: Math.min(15, Math.max(3, left / 6)),
          log,
          latentSide: a.latentSide,
        });
        await new Promise((res) => setTimeout(res, 250)); // one more reading
        const row = { ...r, peakGpuMiB: poller.peak(), gpuMiBAfterRelease: null as number | null, seconds: 0 };
        row.seconds = round((performance.now() - t0) / 1000);
        results.push(row);
        await emit({ event: 'part', ...row, ep: runtime.decision.ep });
      } catch (err) {
        await emit({ event: 'error', part: spec.name, message: err instanceof Error ? err.message : String(err) });
      }
      lastCost = (performance.now() - t0) / 1000;
    }
  } finally {
    poller.stop();
    await runtime.close();
  }
  // Summary, with PyTorch's training row (attention projections, bf16 autocast, batch 1) when given.
  type Baseline = { train_attn_steps_per_s_bf16?: number; train_peak_GB?: number };
  let baseline = null as Baseline | null;
  if (a.baseline) {
    try {
      const text = (await readFile(a.baseline, 'utf8'))
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .pop()!;
      baseline = JSON.parse(text) as Baseline;
    } catch (err) {
      log(`baseline ${a.baseline} unreadable: ${(err as Error).message}`);
    }
  }
  const torchSteps = baseline?.train_attn_steps_per_s_bf16;
  const summary = results.map((r) => ({
    part: r.part,
    stepsPerSecond: r.stepsPerSecond,
    peakGpuGiB: r.peakGpuMiB === null ? null : round(r.peakGpuMiB / 1024),
    vsPytorchSpeed: torchSteps ? round(r.stepsPerSecond / torchSteps) : null,
    vsPytorchMemory:
      baseline?.train_peak_GB && r.peakGpuMiB !== null
        ? round((r.peakGpuMiB * 2 ** 20) / 1e9 / baseline.train_peak_GB)
        : null,
    minutesFor1000: round(1000 / r.stepsPerSecond / 60),
    graphSeconds: r.buildSeconds,
    sessionSeconds: r.sessionSeconds,
  }));
  await emit({ event: 'summary', seconds: round(elapsed()), pytorch: baseline, parts: summary });
  for (const s of summary)
    log(
      `${s.part.padEnd(18)} ${String(s.stepsPerSecond).padStart(7)} steps/s  peak ${s.peakGpuGiB ?? '?'} GiB` +
        (s.vsPytorchSpeed !== null ? `  ${s.vsPytorchSpeed}× PyTorch` : '') +
        `  1000 iterations: ${s.minutesFor1000} min`,
    );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const a = parseArgs(process.argv.slice(2));
  const run = a.part ? childPart(a) : a.gpu ? gpuRun(a) : cpuComparison(a);
  await run.catch((err: unknown) => {
    log(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exitCode = 1;
  });
}
