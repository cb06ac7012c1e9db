/**
 * Benchmark of the temporal-consistency metrics on CPU: seconds per 512×512 frame pair for everything
 * `vidprior metrics` does per pair (DIS flow forward and backward on the original, occlusion mask, warping
 * error and flicker of the original and one stylized version), at flow level 0 (full resolution) and 1.
 * The baseline, measured in the same run, is one bilinear warp of a 512×512 RGB frame: speeds are also
 * reported as multiples of it, so numbers from different machines compare.
 *
 * Run alone: `node dist/bench/metrics.js [--size 512] [--pairs 3]` (prints JSON); the bench runner calls
 * `benchMetrics()`.
 */
import { pathToFileURL } from 'node:url';
import { disFlow } from '../src/metrics/flow-dis.js';
import { DisWorkerPool } from '../src/metrics/flow-worker.js';
import { disEstimator, measureConsistency, memorySequence, type FlowEstimator } from '../src/metrics/consistency.js';
import { makeFlow, rgbToGray, warpRgb, type RgbImage } from '../src/metrics/image.js';
import { consistentStyle, renderShifted, smoothTexture } from '../src/metrics/synthetic.js';

export interface MetricsBenchOptions {
  size?: number;
  /** Frame pairs per measured clip. */
  pairs?: number;
}

export interface MetricsBenchResult {
  name: 'metrics';
  size: number;
  pairs: number;
  /** Baseline: one bilinear warp of an RGB frame of this size, in seconds (median): wall and CPU time. */
  baselineWarpSeconds: number;
  baselineWarpCpuSeconds: number;
  /** Wall seconds per frame pair (flow both ways + mask + E_warp and flicker of original and one version). */
  secondsPerPair: { level0: number; level1: number; level0TwoThreads: number };
  /** CPU seconds per pair on one thread: steadier than wall time on a shared machine. */
  cpuSecondsPerPair: { level0: number; level1: number };
  /** secondsPerPair ÷ baselineWarpSeconds (wall), and CPU time ÷ the baseline's CPU time. */
  ratioToWarp: { level0: number; level1: number; level0TwoThreads: number };
  cpuRatioToWarp: { level0: number; level1: number };
  /** One DIS flow at full resolution, seconds, and its mean end-point error on a known translation. */
  flowSeconds: number;
  flowMeanEpePx: number;
  cpu: string;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median wall seconds and median CPU seconds (this thread's process, user + system) of `fn`. */
function timeIt(fn: () => void, repeats: number): { wall: number; cpu: number } {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    wall.push((performance.now() - t0) / 1000);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1e6);
  }
  return { wall: median(wall), cpu: median(cpu) };
}

export async function benchMetrics(options: MetricsBenchOptions = {}): Promise<MetricsBenchResult> {
  const size = options.size ?? 512;
  const pairs = options.pairs ?? 3;
  // 1. A clip with content at every scale moving by a known sub-pixel amount per frame.
  const tex = smoothTexture(2024, 4, size / 2, 48);
  const [dx, dy] = [3.3, -1.7];
  const original: RgbImage[] = Array.from({ length: pairs + 1 }, (_, t) =>
    renderShifted(tex, size, size, dx * t, dy * t),
  );
  const stylized = original.map(consistentStyle);

  // 2. Baseline: one bilinear warp of an RGB frame.
  const flow = makeFlow(size, size);
  flow.u.fill(dx);
  flow.v.fill(dy);
  warpRgb(original[1], flow); // warm-up
  const baseline = timeIt(() => warpRgb(original[1], flow), 7);

  // 3. One flow, with its accuracy against the known translation (interior, 16 px margin).
  const g0 = rgbToGray(original[0]);
  const g1 = rgbToGray(original[1]);
  let f = disFlow(g0, g1);
  const flowSeconds = timeIt(() => {
    f = disFlow(g0, g1);
  }, 3).wall;
  let epe = 0;
  let n = 0;
  for (let y = 16; y < size - 16; y++) {
    for (let x = 16; x < size - 16; x++) {
      const i = y * size + x;
      epe += Math.hypot(f.u[i] - dx, f.v[i] - dy);
      n++;
    }
  }

  // 4. The whole per-pair work of `vidprior metrics`, at flow level 0 and 1.
  const perPair = async (flow: FlowEstimator): Promise<{ wall: number; cpu: number }> => {
    const c0 = process.cpuUsage();
    const r = await measureConsistency(memorySequence('original', original), [memorySequence('stylized', stylized)], {
      flow,
    });
    const c = process.cpuUsage(c0);
    return { wall: r.seconds / pairs, cpu: (c.user + c.system) / 1e6 / pairs };
  };
  const level0 = await perPair(disEstimator({ finestLevel: 0 }));
  const level1 = await perPair(disEstimator({ finestLevel: 1 }));
  // With the CLI's default of two flow threads (forward and backward flow of a pair in parallel); the
  // pool's threads are warmed up first so the figure is the steady state.
  const pool = new DisWorkerPool(2);
  let level0TwoThreads: number;
  try {
    for (let k = 0; k < 3; k++) await Promise.all([pool.flow(g0, g1), pool.flow(g1, g0)]); // V8 tiers up over a few calls
    level0TwoThreads = (await perPair(pool)).wall;
  } finally {
    await pool.close();
  }
  const { cpus } = await import('node:os');
  return {
    name: 'metrics',
    size,
    pairs,
    baselineWarpSeconds: baseline.wall,
    baselineWarpCpuSeconds: baseline.cpu,
    secondsPerPair: { level0: level0.wall, level1: level1.wall, level0TwoThreads },
    cpuSecondsPerPair: { level0: level0.cpu, level1: level1.cpu },
    ratioToWarp: {
      level0: level0.wall / baseline.wall,
      level1: level1.wall / baseline.wall,
      level0TwoThreads: level0TwoThreads / baseline.wall,
    },
    cpuRatioToWarp: { level0: level0.cpu / baseline.cpu, level1: level1.cpu / baseline.cpu },
    flowSeconds,
    flowMeanEpePx: epe / n,
    cpu: `${cpus()[0]?.model ?? 'unknown'} ×${cpus().length}`,
  };
}

function argValue(name: string): number | undefined {
  const k = process.argv.indexOf(name);
  return k >= 0 ? Number(process.argv[k + 1]) : undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await benchMetrics({ size: argValue('--size'), pairs: argValue('--pairs') });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
