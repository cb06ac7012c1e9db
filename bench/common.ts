/**
 * Shared pieces of the benchmarks: the context every bench module gets, the model it measures (built by the
 * project's builder on the machine that runs the bench, never carried: SD 1.5 is 3.4 GB), and timing helpers.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createModelFolder } from '../src/models/builder/folder.js';
import { loadModelFolder } from '../src/models/loader.js';
import type { StableDiffusionModel } from '../src/models/types.js';
import type { ExecutionProviderChoice, Runtime } from '../src/runtime/types.js';

export interface BenchContext {
  /** Execution provider asked for (--ep). */
  ep: ExecutionProviderChoice;
  /** Builder preset of the measured model (--preset): tiny on CPU, sd15 on a GPU machine. */
  preset: string;
  /** Float type of the built model (--dtype). */
  dtype: 'float32' | 'float16';
  /** WebGPU only: the layout ORT uses for Conv and friends in the UNet (--layout NCHW|NHWC). */
  layout?: 'NCHW' | 'NHWC';
  /** Fewer repetitions and frames (--quick), for a smoke run. */
  quick: boolean;
  /** Where built models are cached between runs. */
  modelsDir: string;
  log(line: string): void;
}

/** One benchmark: a name (its results go to bench/results/<name>.json) and a run returning JSON-able data. */
export interface BenchModule {
  name: string;
  describe: string;
  run(ctx: BenchContext): Promise<unknown>;
}

export function hostInfo(): { cpu: string; node: string; platform: string } {
  return {
    cpu: `${cpus()[0]?.model ?? 'unknown'} ×${cpus().length}`,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

/** The preset's model folder, built (seed 0, opset 17) on first use; sd15 with external data (> 2 GB). */
export async function benchModelDir(ctx: BenchContext): Promise<string> {
  const dir = resolve(join(ctx.modelsDir, `${ctx.preset}-${ctx.dtype}`));
  if (existsSync(join(dir, 'vidprior-model.json'))) return dir;
  await mkdir(ctx.modelsDir, { recursive: true });
  ctx.log(`building the ${ctx.preset} (${ctx.dtype}) model in ${dir}…`);
  const built = await createModelFolder(dir, ctx.preset, {
    seed: 0,
    opset: 17,
    dtype: ctx.dtype,
    externalData: ctx.preset === 'sd15' ? true : 'auto',
    overwrite: existsSync(dir),
  });
  ctx.log(`built in ${built.seconds.toFixed(1)} s (UNet ${(built.parameters.unet / 1e6).toFixed(1)}M parameters)`);
  return dir;
}

/** Loads the bench model; `gpuResidentUnet` keeps the UNet's output on the GPU (WebGPU). */
export async function loadBenchModel(
  ctx: BenchContext,
  runtime: Runtime,
  gpuResidentUnet: boolean,
): Promise<StableDiffusionModel> {
  const dir = await benchModelDir(ctx);
  return loadModelFolder(dir, runtime, {
    sessionOptions: {
      unet: { keepOutputsOnGpu: gpuResidentUnet, ...(ctx.layout ? { preferredLayout: ctx.layout } : {}) },
    },
  });
}

/**
 * Times several alternatives round-robin (A B A B …) so that a busy machine slows each of them alike, and the
 * ratios between them, measured in the same run, stay meaningful. Returns seconds per call for each.
 */
export async function timeInterleaved<K extends string>(
  fns: Record<K, () => Promise<unknown>>,
  warmup: number,
  repeats: number,
): Promise<Record<K, { median: number; min: number; runs: number }>> {
  const keys = Object.keys(fns) as K[];
  for (let i = 0; i < warmup; i++) for (const k of keys) await fns[k]();
  const times = Object.fromEntries(keys.map((k) => [k, [] as number[]])) as Record<K, number[]>;
  for (let i = 0; i < repeats; i++) {
    for (const k of keys) {
      const t0 = performance.now();
      await fns[k]();
      times[k].push((performance.now() - t0) / 1000);
    }
  }
  const out = {} as Record<K, { median: number; min: number; runs: number }>;
  for (const k of keys) {
    const t = times[k].sort((a, b) => a - b);
    out[k] = { median: t[Math.floor(t.length / 2)]!, min: t[0]!, runs: repeats };
  }
  return out;
}

export function round(v: number, digits = 4): number {
  return Number(v.toPrecision(digits));
}

/**
 * The command-line entry of a bench module that also runs alone (`node dist/bench/<name>.js`): when `metaUrl`
 * is the script node was started with, runs `bench` on the CPU with `--quick`, `--frames a,b` and
 * `--resolutions x,y`, prints its JSON and fails the process when it says `ok: false`.
 */
export async function runStandalone(
  metaUrl: string,
  bench: (ctx: BenchContext, only: { counts?: number[]; resolutions?: string[] }) => Promise<unknown>,
): Promise<void> {
  if (!process.argv[1] || metaUrl !== pathToFileURL(process.argv[1]).href) return;
  const args = process.argv.slice(2);
  const list = (name: string) => {
    const k = args.indexOf(name);
    return k >= 0 ? args[k + 1]!.split(',') : undefined;
  };
  const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
  const result = await bench(
    {
      ep: 'cpu',
      preset: 'tiny',
      dtype: 'float32',
      quick: args.includes('--quick'),
      modelsDir: join('.cache', 'bench-models'),
      log,
    },
    { counts: list('--frames')?.map(Number), resolutions: list('--resolutions') },
  );
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  if ((result as { ok?: boolean }).ok === false) process.exitCode = 1;
}
