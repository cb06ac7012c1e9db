/**
 * Farm benchmark: the stylize stage as a Slurm job array on a one-node Slurm (test/farm/slurm-cluster.ts, 2
 * CPUs: two tasks of one CPU and one ONNX Runtime thread each) against one `vidprior stylize` process (ORT's
 * default threads), same frames, same adapter. Reports both wall times and their ratio, and checks the farm's
 * frames are byte-identical to the single process's. The farm time runs from the submission to the last frame
 * written, so it includes Slurm's scheduling and each task's start (Node, model load): on 2 cores little speed-up
 * is expected; the point is the plumbing and correctness.
 *
 *   node dist/bench/farm.js [--quick]       (the bench runner calls `farmBench`; skipped without Slurm)
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { slurmMissing, startSlurm } from '../test/farm/slurm-cluster.js';
import { type BenchContext, type BenchModule, benchModelDir, hostInfo, round } from './common.js';

const CLI = resolve('dist/cli/main.js');

function vidprior(args: string[], env: NodeJS.ProcessEnv): { seconds: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 1_800_000 });
  if (r.status !== 0) throw new Error(`vidprior ${args[0]} failed: ${r.stderr.slice(-2000)}`);
  return { seconds: (performance.now() - t0) / 1000, stdout: r.stdout };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runFarmBench(ctx: BenchContext): Promise<Record<string, unknown>> {
  const missing = slurmMissing();
  if (missing) return { skipped: missing };
  const work = mkdtempSync(join(tmpdir(), 'vidprior-bench-farm-'));
  const cluster = await startSlurm(2);
  try {
    // 1. The clip (the sample frames, repeated), the model, an adapter.
    const frames = ctx.quick ? 12 : 48;
    const clip = join(work, 'clip');
    mkdirSync(clip);
    const sample = readdirSync('examples/clip').sort();
    for (let i = 0; i < frames; i++)
      copyFileSync(join('examples/clip', sample[i % sample.length]!), join(clip, `f${String(i).padStart(4, '0')}.png`));
    const model = await benchModelDir({ ...ctx, preset: 'tiny', dtype: 'float32' });
    const env = { ...cluster.env, VIDPRIOR_DATA_DIR: join(work, 'data'), NO_COLOR: '1' };
    const common = ['-p', 'a watercolor', '--model', model, '--ep', 'cpu', '--seed', '1'];
    const adapter = join(work, 'adapter.safetensors');
    vidprior(['finetune', '-i', clip, '--iters', '2', '--frames', '2', ...common, '-o', adapter], env);
    const stylize = ['--steps', ctx.quick ? '10' : '50', '--strength', '0.45', '--adapter', adapter];

    // 2. One process; and one process making one frame (what each task pays before its first frame).
    const oneFrame = vidprior(
      ['stylize', '-i', clip, '-o', join(work, 'one'), ...common, ...stylize, '--frame-range', '0-0'],
      env,
    );
    const single = vidprior(['stylize', '-i', clip, '-o', join(work, 'single'), ...common, ...stylize], env);
    ctx.log(`farm: one process stylized ${frames} frames in ${single.seconds.toFixed(1)} s`);

    // 3. The farm: 2 tasks of half the clip, one CPU and one ORT thread each, from the submission to the last frame.
    const out = join(work, 'farm-out');
    const t0 = performance.now();
    vidprior(['farm', 'slurm', 'submit', '-i', clip, '-o', out, ...common, ...stylize, '--chunk', String(frames / 2)], {
      ...env,
      VIDPRIOR_CPU_THREADS: '1',
    });
    const framesDir = join(`${out}.farm`, 'frames');
    const expected = readdirSync(join(work, 'single'));
    while (!expected.every((n) => existsSync(join(framesDir, n)))) {
      if (performance.now() - t0 > 1_800_000) throw new Error('the farm did not finish in 30 minutes');
      await sleep(100);
    }
    const farmSeconds = (performance.now() - t0) / 1000;
    while (!existsSync(join(`${out}.farm`, 'summary.json'))) await sleep(200);
    const identical = expected.every((n) =>
      readFileSync(join(framesDir, n)).equals(readFileSync(join(work, 'single', n))),
    );
    ctx.log(`farm: the 2-task array stylized them in ${farmSeconds.toFixed(1)} s (identical: ${identical})`);
    return {
      host: hostInfo(),
      frames,
      size: '160x120',
      model: 'tiny',
      steps: Number(stylize[1]),
      singleProcessSeconds: round(single.seconds, 2),
      /** One process making one frame: the start-up (Node, model load) every task pays. */
      oneFrameProcessSeconds: round(oneFrame.seconds, 2),
      farmStylizeSeconds: round(farmSeconds, 2),
      /** farm ÷ single: < 1 is a speed-up. */
      ratio: round(farmSeconds / single.seconds, 3),
      tasks: 2,
      cpusPerTask: 1,
      byteIdentical: identical,
    };
  } finally {
    await cluster.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

export const farmBench: BenchModule = {
  name: 'farm',
  describe: 'stylize stage as a 2-task Slurm job array on one 2-CPU node vs one process (wall time ratio)',
  run: (ctx) => runFarmBench(ctx),
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const quick = process.argv.includes('--quick');
  const result = await runFarmBench({
    ep: 'cpu',
    preset: 'tiny',
    dtype: 'float32',
    quick,
    modelsDir: join('.cache', 'bench-models'),
    log: (line) => process.stderr.write(`bench: ${line}\n`),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
