/**
 * `npm run bench [-- options]`: runs the benchmark modules in BENCHMARKS, writes each one's JSON to
 * bench/results/<name>.json and prints it. Speeds are reported with ratios to baselines measured in the same
 * run (never against numbers from another machine).
 *
 *   npm run bench                                   # CPU, tiny model, every module
 *   npm run bench -- --only unet,stylize --quick    # a smoke run
 *   npm run bench -- --ep webgpu --preset sd15      # the GPU machine: SD 1.5-sized model built there
 *   options: --ep auto|cuda|webgpu|cpu  --preset tiny|sd15  --dtype float32|float16  --layout NCHW|NHWC (WebGPU)
 *            --only a,b  --quick  --out <dir>  --models <dir>
 *
 * A new benchmark is a module in bench/ exporting a BenchModule (common.ts), listed below.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PRESETS } from '../src/models/builder/presets.js';
import type { ExecutionProviderChoice } from '../src/runtime/types.js';
import { type BenchContext, type BenchModule, benchModelDir } from './common.js';
import { benchMetrics } from './metrics.js';
import { stylizeBench } from './stylize.js';
import { protocolBench } from './protocol.js';
import { unetBench } from './unet.js';
import { trainingBench } from './training.js';
import { runOptimizeBench } from './optimize.js';
import { deflickerBench } from './deflicker.js';
import { checkpointBench } from './checkpoint.js';
import { loraMergeBench } from './lora.js';
import { farmBench } from './farm.js';
import { daemonRssBench } from './daemon-rss.js';
import { blenderStripRssBench } from './blender-strip-rss.js';

export const BENCHMARKS: BenchModule[] = [
  unetBench,
  stylizeBench,
  trainingBench,
  protocolBench,
  loraMergeBench,
  {
    name: 'optimize',
    describe: 'UNet graph variants (attention fused, BiasSplitGelu, float16): steps/s and agreement with the original',
    run: async (ctx) =>
      runOptimizeBench({
        ep: ctx.ep === 'webgpu' ? 'webgpu' : 'cpu',
        modelDir: await benchModelDir({ ...ctx, dtype: 'float32' }),
        batch: 2,
        repeats: ctx.quick ? 2 : undefined,
        log: ctx.log,
      }),
  },
  checkpointBench,
  {
    name: 'metrics',
    describe: 'temporal-consistency metrics on CPU, seconds per 512×512 frame pair',
    run: () => benchMetrics(),
  },
  deflickerBench,
  farmBench,
  daemonRssBench,
  blenderStripRssBench,
];

function option(args: string[], name: string): string | undefined {
  const k = args.indexOf(name);
  return k >= 0 ? args[k + 1] : undefined;
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

export async function main(args: string[]): Promise<void> {
  const ep = (option(args, '--ep') ?? 'cpu') as ExecutionProviderChoice;
  if (!['auto', 'cuda', 'webgpu', 'cpu'].includes(ep)) fail(`--ep must be auto, cuda, webgpu or cpu, got ${ep}`);
  const preset = option(args, '--preset') ?? 'tiny';
  if (!PRESETS[preset]) fail(`--preset must be one of ${Object.keys(PRESETS).join(', ')}, got ${preset}`);
  const dtype = (option(args, '--dtype') ?? 'float32') as BenchContext['dtype'];
  if (dtype !== 'float32' && dtype !== 'float16') fail(`--dtype must be float32 or float16, got ${dtype}`);
  const layout = option(args, '--layout') as BenchContext['layout'];
  if (layout !== undefined && layout !== 'NCHW' && layout !== 'NHWC')
    fail(`--layout must be NCHW or NHWC, got ${layout}`);
  const only = option(args, '--only')
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = only?.filter((n) => !BENCHMARKS.some((b) => b.name === n));
  if (unknown?.length)
    fail(`unknown benchmark ${unknown.join(', ')}; known: ${BENCHMARKS.map((b) => b.name).join(', ')}`);
  const outDir = option(args, '--out') ?? join('bench', 'results');
  const ctx: BenchContext = {
    ep,
    preset,
    dtype,
    layout,
    quick: args.includes('--quick'),
    modelsDir: option(args, '--models') ?? join('.cache', 'bench-models'),
    log: (line) => process.stderr.write(`bench: ${line}\n`),
  };
  await mkdir(outDir, { recursive: true });
  let failed = 0;
  for (const bench of BENCHMARKS.filter((b) => !only || only.includes(b.name))) {
    ctx.log(`${bench.name}: ${bench.describe}`);
    const started = new Date();
    try {
      const result = await bench.run(ctx);
      const record = {
        name: bench.name,
        date: started.toISOString(),
        seconds: (Date.now() - started.getTime()) / 1000,
        options: { ep, preset, dtype, layout: layout ?? null, quick: ctx.quick },
        result,
      };
      const text = `${JSON.stringify(record, null, 2)}\n`;
      await writeFile(join(outDir, `${bench.name}.json`), text);
      process.stdout.write(text);
    } catch (err) {
      failed++;
      ctx.log(`${bench.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }
  if (failed) process.exitCode = 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
