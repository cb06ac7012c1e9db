/**
 * Deflicker benchmark: quality on real footage with flicker made for the purpose, and speed on the CPU.
 *
 * 1. Quality: real clips (the sample clip; camera moves over real photographs, deflicker-clips.ts) get three
 *    kinds of flicker (src/deflicker/flicker-cases.ts: colour/brightness jitter, per-frame random style, a
 *    two-mode colour flip). Each pair is deflickered (the flip with and without IRT) and measured: PSNR of the
 *    result to the processed frames (the look kept), and E_warp (Lai et al., src/metrics) of the original, the
 *    processed and the result, on the original's flow. The acceptance: result E_warp ≤ 0.6 × processed.
 * 2. Speed: a 24-frame 854×480 pair deflickered at a reduced working size, in a child process (its peak RSS is
 *    its own): wall and CPU seconds, per frame and per megapixel, peak RSS, the load average around it, and the
 *    ratio to a baseline measured in the same child (one forward pass of the network at 854×480).
 *
 *   node dist/bench/deflicker.js [--quick] [--only quality|speed] [--ep cpu] [--working-size 240]
 *                                [--clips sample-clip,coffee-pan,chelsea-push] [--size 320x180] [--frames 24]
 *                                [--cases jitter,style,flip,flip-irt]
 *                                [--speed-case [--epochs N] [--no-measure]]   (the speed case alone)
 * The bench runner calls `deflickerBench`.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DEFLICKER_DEFAULTS, type DeflickerOptions, deflicker } from '../src/deflicker/deflicker.js';
import { type FlickerKind, flickerFrame } from '../src/deflicker/flicker-cases.js';
import { writeFramePng } from '../src/io/frames.js';
import { measureConsistency } from '../src/metrics/consistency.js';
import { DisWorkerPool } from '../src/metrics/flow-worker.js';
import { openSequence } from '../src/metrics/frames.js';
import { openRuntime } from '../src/runtime/index.js';
import type { ExecutionProviderChoice, Runtime } from '../src/runtime/types.js';
import type { Tensor } from '../src/tensor.js';
import type { BenchContext, BenchModule } from './common.js';
import { hostInfo, round } from './common.js';
import { MOVES, cameraClip, folderClip } from './deflicker-clips.js';
import { DeflickerApplier } from '../src/deflicker/apply.js';
import { buildDvpNet } from '../src/deflicker/network.js';

const PHOTOS = join('bench', 'fixtures', 'photos');

interface ClipSpec {
  name: string;
  make: () => Promise<Tensor<'float32'>[]>;
}

export interface QualityRow {
  clip: string;
  flicker: FlickerKind;
  irt: boolean;
  frames: number;
  size: string;
  trainSize: string;
  epochs: number;
  psnrToProcessed: number;
  ewarp: { original: number; processed: number; result: number };
  /** result ÷ processed (acceptance: ≤ 0.6). */
  ratio: number;
  seconds: number;
}

/** The settings the benchmark runs deflicker with (the CLI's defaults unless said here). */
export function benchOptions(quick: boolean): Omit<DeflickerOptions, 'irt'> {
  return { ...DEFLICKER_DEFAULTS, ...(quick ? { width: 8, scales: 4, epochs: 4 } : {}) };
}

async function writeFrames(dir: string, frames: Tensor<'float32'>[]): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  for (const [i, f] of frames.entries()) {
    const p = join(dir, `f${String(i).padStart(4, '0')}.png`);
    await writeFramePng(p, f);
    paths.push(p);
  }
  return paths;
}

/** Deflickers one (clip, flicker) pair and measures it. */
async function qualityRow(
  runtime: Runtime,
  work: string,
  clip: string,
  frames: Tensor<'float32'>[],
  kind: FlickerKind,
  irt: boolean,
  options: Omit<DeflickerOptions, 'irt'>,
  log: (line: string) => void,
): Promise<QualityRow> {
  const dir = join(work, `${clip}-${kind}${irt ? '-irt' : ''}`);
  const [h, w] = frames[0]!.dims.slice(1) as [number, number];
  const originals = await writeFrames(join(dir, 'original'), frames);
  const processed = await writeFrames(
    join(dir, 'processed'),
    frames.map((f, i) => flickerFrame(kind, f, i, 0)),
  );
  const outDir = join(dir, 'result');
  mkdirSync(outDir);
  const t0 = performance.now();
  const r = await deflicker(runtime, { originals, processed, width: w, height: h }, { ...options, irt }, (i, f) =>
    writeFramePng(join(outDir, `f${String(i).padStart(4, '0')}.png`), f),
  );
  const seconds = (performance.now() - t0) / 1000;
  const seqs = [];
  for (const d of ['original', 'processed', 'result']) seqs.push(await openSequence(join(dir, d)));
  const flow = new DisWorkerPool(2);
  try {
    const m = await measureConsistency(seqs[0]!, seqs.slice(1), { flow, labels: ['processed', 'result'] });
    const [p, res] = [m.stylized[0]!.warpError, m.stylized[1]!.warpError];
    const row: QualityRow = {
      clip,
      flicker: kind,
      irt,
      frames: frames.length,
      size: `${w}x${h}`,
      trainSize: `${r.trainSize.width}x${r.trainSize.height}`,
      epochs: r.training.epochsRun,
      psnrToProcessed: round(r.psnrToProcessed),
      ewarp: { original: round(m.original.warpError), processed: round(p), result: round(res) },
      ratio: round(res / p, 3),
      seconds: round(seconds),
    };
    log(`deflicker: ${JSON.stringify(row)}`);
    return row;
  } finally {
    await flow.close();
    for (const s of seqs) await s.close();
  }
}

/** The speed case, run in this process (the parent spawns it so peak RSS is the case's own). */
async function speedCase(
  ep: ExecutionProviderChoice,
  quick: boolean,
  workingSize: number,
  epochs?: number,
  measure = true,
): Promise<Record<string, unknown>> {
  const [w, h, n] = quick ? [214, 120, 6] : [854, 480, 24];
  const work = mkdtempSync(join(tmpdir(), 'vidprior-bench-deflicker-'));
  try {
    const frames = await cameraClip(join(PHOTOS, 'coffee.jpg'), MOVES.pan!, n, w, h);
    const originals = await writeFrames(join(work, 'o'), frames);
    const processed = await writeFrames(
      join(work, 'p'),
      frames.map((f, i) => flickerFrame('style', f, i, 0)),
    );
    const runtime = await openRuntime({ ep });
    const options = {
      ...benchOptions(quick),
      workingSize: quick ? 60 : workingSize,
      irt: false,
      ...(epochs ? { epochs, earlyStop: null } : {}),
    };
    try {
      // Baseline: one forward pass of the network over one frame at the output size (the apply step's unit).
      const multiple = 2 ** (options.scales - 1);
      const size = { height: Math.ceil(h / multiple) * multiple, width: Math.ceil(w / multiple) * multiple };
      const init = buildDvpNet({ ...options, outputs: 1 }, { batch: 1, ...size }).params;
      const applier = await DeflickerApplier.open(
        runtime,
        new Map(init.map((p) => [p.name, { dims: p.dims, data: p.init }])),
        { ...options, batch: 1 },
        size,
      );
      const probe = {
        type: 'float32' as const,
        dims: [3, size.height, size.width],
        data: new Float32Array(3 * size.height * size.width),
      };
      await applier.run([probe]);
      const b0 = performance.now();
      await applier.run([probe]);
      const baseline = (performance.now() - b0) / 1000;
      await applier.close();
      const load0 = loadavg();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const resultDir = join(work, 'r');
      mkdirSync(resultDir);
      const r = await deflicker(runtime, { originals, processed, width: w, height: h }, options, (i, f) =>
        writeFramePng(join(resultDir, `f${String(i).padStart(4, '0')}.png`), f),
      );
      const wall = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const peakRssMiB = Math.round(process.resourceUsage().maxRSS / 1024);
      const loadAfter = loadavg();
      // The result at full size, trained at the working size: E_warp of the three videos (not timed).
      let ewarp: Record<string, number> | undefined;
      if (measure) {
        const seqs = [];
        for (const d of ['o', 'p', 'r']) seqs.push(await openSequence(join(work, d)));
        const flow = new DisWorkerPool(2);
        const m = await measureConsistency(seqs[0]!, seqs.slice(1), { flow, labels: ['processed', 'result'] });
        await flow.close();
        for (const sq of seqs) await sq.close();
        ewarp = {
          original: round(m.original.warpError),
          processed: round(m.stylized[0]!.warpError),
          result: round(m.stylized[1]!.warpError),
        };
      }
      // A shortened schedule (--epochs) also says what the whole one costs: its steps × this run's cost per step.
      const cpuSeconds = (cpu.user + cpu.system) / 1e6;
      const cpuPerStep = cpuSeconds / Math.max(1, r.training.stepsRun);
      const fullSteps = benchOptions(quick).epochs * Math.ceil(n / options.batch);
      const megapixels = (n * w * h) / 1e6;
      return {
        frames: n,
        size: `${w}x${h}`,
        trainSize: `${r.trainSize.width}x${r.trainSize.height}`,
        width: options.width,
        scales: options.scales,
        epochsRun: r.training.epochsRun,
        stoppedEarly: r.training.stoppedEarly,
        steps: r.training.stepsRun,
        parameters: r.training.parameters,
        wallSeconds: round(wall),
        cpuSeconds: round((cpu.user + cpu.system) / 1e6),
        phases: {
          reading: round(r.seconds.reading),
          training: round(r.seconds.training),
          applying: round(r.seconds.applying),
        },
        secondsPerFrame: round(wall / n),
        secondsPerMegapixel: round(wall / megapixels),
        secondsPerTrainingStep: round(r.training.secondsPerStep),
        baselineForwardSeconds: round(baseline),
        wallInBaselineForwards: round(wall / baseline),
        peakRssMiB,
        loadAverage: { before: load0.map((l) => round(l, 3)), after: loadAfter.map((l) => round(l, 3)) },
        psnrToProcessed: round(r.psnrToProcessed),
        ewarp,
        cpuSecondsPerTrainingStep: round(cpuPerStep),
        fullSchedule: epochs
          ? {
              steps: fullSteps,
              projectedTrainingWallSeconds: round(r.training.secondsPerStep * fullSteps),
              projectedTrainingCpuSeconds: round(cpuPerStep * fullSteps),
            }
          : undefined,
        ep: runtime.decision.ep,
      };
    } finally {
      await runtime.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export interface DeflickerBenchOptions {
  ep: ExecutionProviderChoice;
  quick: boolean;
  only?: 'quality' | 'speed';
  /** Working size (short side) of the speed case. */
  workingSize?: number;
  /** Quality: which clips (default all), their size and frame count (default 320×180, 24 frames). */
  clips?: string[];
  size?: [number, number];
  frames?: number;
  /** Quality: which cases (`jitter`, `style`, `flip`, `flip-irt`; default all). */
  cases?: string[];
  log: (line: string) => void;
}

export async function runDeflickerBench(o: DeflickerBenchOptions): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = { host: hostInfo() };
  if (o.only !== 'quality') {
    // 1. Speed, in a child process.
    const self = fileURLToPath(import.meta.url);
    const args = [
      self,
      '--speed-case',
      '--ep',
      o.ep,
      '--working-size',
      String(o.workingSize ?? 240),
      ...(o.quick ? ['--quick'] : []),
    ];
    o.log(`deflicker: speed case (${o.quick ? 'quick' : '24 frames of 854×480'}) in a child process…`);
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`the speed case failed: ${r.stderr}`);
    out.speed = JSON.parse(r.stdout.trim().split('\n').pop()!);
    o.log(`deflicker: speed ${JSON.stringify(out.speed)}`);
  }
  if (o.only !== 'speed') {
    // 2. Quality on real clips.
    const [w, h] = o.size ?? (o.quick ? [96, 64] : [320, 180]);
    const n = o.frames ?? (o.quick ? 6 : 24);
    const clips: ClipSpec[] = [
      {
        name: 'sample-clip',
        make: async () => (await folderClip(join('examples', 'clip'))).slice(0, o.quick ? 6 : 12),
      },
      { name: 'coffee-pan', make: () => cameraClip(join(PHOTOS, 'coffee.jpg'), MOVES.pan!, n, w, h) },
      { name: 'chelsea-push', make: () => cameraClip(join(PHOTOS, 'chelsea.jpg'), MOVES.push!, n, w, h) },
    ];
    const cases: [FlickerKind, boolean][] = [
      ['jitter', false],
      ['style', false],
      ['flip', false],
      ['flip', true],
    ];
    const runtime = await openRuntime({ ep: o.ep });
    const work = mkdtempSync(join(tmpdir(), 'vidprior-bench-deflicker-'));
    const rows: QualityRow[] = [];
    try {
      const chosen = o.clips ? clips.filter((c) => o.clips!.includes(c.name)) : o.quick ? clips.slice(0, 2) : clips;
      for (const clip of chosen) {
        const frames = await clip.make();
        for (const [kind, irt] of cases.filter(([k, i]) => !o.cases || o.cases.includes(i ? `${k}-irt` : k)))
          rows.push(await qualityRow(runtime, work, clip.name, frames, kind, irt, benchOptions(o.quick), o.log));
      }
    } finally {
      await runtime.close();
      rmSync(work, { recursive: true, force: true });
    }
    out.quality = rows;
    out.qualityTable = [
      '| clip | flicker | IRT | frames | size | PSNR to processed (dB) | E_warp original | E_warp processed | E_warp result | result ÷ processed |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...rows.map(
        (r) =>
          `| ${r.clip} | ${r.flicker} | ${r.irt ? 'yes' : 'no'} | ${r.frames} | ${r.size} | ${r.psnrToProcessed.toFixed(2)} | ${r.ewarp.original.toExponential(2)} | ${r.ewarp.processed.toExponential(2)} | ${r.ewarp.result.toExponential(2)} | ${r.ratio.toFixed(3)} |`,
      ),
    ];
  }
  return out;
}

export const deflickerBench: BenchModule = {
  name: 'deflicker',
  describe: 'Deep Video Prior deflicker: E_warp and PSNR on real clips with made flicker; 24×854×480 time and peak RSS',
  run: (ctx: BenchContext) => runDeflickerBench({ ep: ctx.ep, quick: ctx.quick, log: ctx.log }),
};

function option(args: string[], name: string): string | undefined {
  const k = args.indexOf(name);
  return k >= 0 ? args[k + 1] : undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const ep = (option(args, '--ep') ?? 'cpu') as ExecutionProviderChoice;
  const quick = args.includes('--quick');
  const workingSize = Number(option(args, '--working-size') ?? 240);
  if (args.includes('--speed-case')) {
    const epochs = option(args, '--epochs') ? Number(option(args, '--epochs')) : undefined;
    const result = await speedCase(ep, quick, workingSize, epochs, !args.includes('--no-measure'));
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    const only = option(args, '--only') as DeflickerBenchOptions['only'];
    const result = await runDeflickerBench({
      ep,
      quick,
      only,
      workingSize,
      size: option(args, '--size')?.split('x').map(Number) as [number, number] | undefined,
      frames: option(args, '--frames') ? Number(option(args, '--frames')) : undefined,
      clips: option(args, '--clips')?.split(','),
      cases: option(args, '--cases')?.split(','),
      log: (l) => process.stderr.write(`${l}\n`),
    });
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  }
}
