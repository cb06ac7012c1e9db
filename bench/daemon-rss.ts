/**
 * Peak memory of the real daemon (`node dist/cli/main.js serve`, a child process on a temporary data dir and a
 * free port, the embedded default model) stylizing synthetic HD clips sent by path with an output folder, as the
 * add-on does on the same machine: peak RSS (VmHWM of the daemon process, from /proc) per resolution × frame
 * count, and on the shortest clip at smaller working sizes. Frames stream through the pipeline a batch at a time at
 * the working size, so the peak follows the working size (attention scores grow with its square) and must stay
 * under 4 GiB and flat as the clip grows (the longest clip within 15% of the shortest).
 *
 *   node dist/bench/daemon-rss.js [--quick] [--frames 10,300] [--resolutions 1080p]
 *   (also part of `npm run bench`, as `daemon-rss`)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import sharp from 'sharp';
import { VidpriorClient } from '../protocol/client.js';
import { type BenchContext, type BenchModule, hostInfo, round, runStandalone } from './common.js';

const MiB = 2 ** 20;
const LIMIT_BYTES = 4 * 2 ** 30;
const NATIVE_WORK_SIZE = 512;
/** Smaller working sizes measured on the shortest clip: the peak follows the working size, not the frames. */
const SMALLER_WORK_SIZES = [256, 384];
const FLAT_TOLERANCE = 0.15;

export interface RssRow {
  resolution: string;
  frames: number;
  /** params.work_size (the short side frames are stylized at); 512, the embedded model's native size, by default. */
  workSize: number;
  peakRssMiB: number;
  seconds: number;
  secondsPerFrame: number;
}

/** A deterministic frame: gradients and a disc that moves with `index` (sharp encodes it; fast PNG level). */
async function syntheticFrame(width: number, height: number, index: number): Promise<Buffer> {
  const rgb = Buffer.alloc(width * height * 3);
  const cx = (index * 17) % width;
  const cy = height / 2 + (height / 4) * Math.sin(index / 7);
  const r2 = (height / 6) ** 2;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const inDisc = (x - cx) ** 2 + (y - cy) ** 2 < r2;
      rgb[i] = inDisc ? 230 : (x * 255) / width;
      rgb[i + 1] = inDisc ? 40 : (y * 255) / height;
      rgb[i + 2] = ((x + y + index * 5) >> 2) & 255;
    }
  }
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: 1 })
    .toBuffer();
}

async function writeFrames(dir: string, width: number, height: number, count: number): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    const p = join(dir, `frame_${String(i).padStart(4, '0')}.png`);
    await sharp(await syntheticFrame(width, height, i)).toFile(p);
    paths.push(p);
  }
  return paths;
}

/** VmHWM (peak resident set) of a process, in bytes. */
export async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmHWM:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

export interface RunningDaemon {
  child: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

/** `vidprior serve` as a child process; resolves once it prints its listening URL (--json). */
export async function startDaemon(dataDir: string, allowDir: string, ep: string): Promise<RunningDaemon> {
  const main = resolve('dist', 'cli', 'main.js');
  const child = spawn(
    process.execPath,
    [main, 'serve', '--data-dir', dataDir, '--port', '0', '--json', '--ep', ep, '--allow-dir', allowDir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = await new Promise<string>((resolveUrl, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const m = JSON.parse(line) as { event?: string; url?: string };
        if (m.event === 'listening' && m.url) resolveUrl(m.url);
      } catch {
        /* a log line that is not JSON */
      }
    });
    child.once('exit', (code) => reject(new Error(`the daemon exited (${code}) before listening: ${stderr}`)));
  });
  return {
    child,
    url,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** One clip through a fresh daemon: its peak RSS and how long the job took. */
async function measure(
  ctx: BenchContext,
  work: string,
  frames: string[],
  resolution: string,
  workSize = NATIVE_WORK_SIZE,
): Promise<RssRow> {
  const dataDir = await mkdtemp(join(work, 'data-'));
  const outDir = join(work, `out-${resolution}-${frames.length}-${workSize}`);
  await mkdir(outDir, { recursive: true });
  const daemon = await startDaemon(dataDir, work, ctx.ep === 'auto' ? 'cpu' : ctx.ep);
  try {
    const client = await VidpriorClient.connect(daemon.url, { client: 'bench-daemon-rss' });
    try {
      const started = performance.now();
      const job = await client.submit({
        kind: 'stylize',
        params: { prompt: 'a watercolor painting', steps: 4, strength: 0.5, seed: 0, work_size: workSize },
        frames: frames.map((path) => ({ path })),
        output_dir: outDir,
      });
      await job.done;
      const seconds = (performance.now() - started) / 1000;
      const written = (await readdir(outDir)).length;
      if (written !== frames.length) throw new Error(`${written} of ${frames.length} frames written to ${outDir}`);
      const peak = await peakRss(daemon.child.pid!);
      ctx.log(
        `daemon-rss: ${resolution} × ${frames.length} frames at work size ${workSize}: peak RSS ${(peak / MiB).toFixed(0)} MiB, ${seconds.toFixed(1)} s`,
      );
      return {
        resolution,
        frames: frames.length,
        workSize,
        peakRssMiB: Math.round(peak / MiB),
        seconds: round(seconds, 2),
        secondsPerFrame: round(seconds / frames.length, 3),
      };
    } finally {
      await client.close();
    }
  } finally {
    await daemon.stop();
    await rm(dataDir, { recursive: true, force: true });
    await rm(outDir, { recursive: true, force: true });
  }
}

const RESOLUTIONS = [
  { name: '720p', width: 1280, height: 720 },
  { name: '1080p', width: 1920, height: 1080 },
];

export async function benchDaemonRss(
  ctx: BenchContext,
  only: { counts?: number[]; resolutions?: string[] } = {},
): Promise<unknown> {
  const resolutions = RESOLUTIONS.filter((r) => !only.resolutions || only.resolutions.includes(r.name));
  const counts = only.counts ?? (ctx.quick ? [10, 30] : [10, 100, 300]);
  const work = await mkdtemp(join(tmpdir(), 'vidprior-bench-daemon-rss-'));
  const rows: RssRow[] = [];
  try {
    for (const r of resolutions) {
      const paths = await writeFrames(join(work, r.name), r.width, r.height, Math.max(...counts));
      for (const n of counts) rows.push(await measure(ctx, work, paths.slice(0, n), r.name));
      if (!ctx.quick)
        for (const size of SMALLER_WORK_SIZES)
          rows.push(await measure(ctx, work, paths.slice(0, counts[0]), r.name, size));
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const verdicts = resolutions.map((r) => {
    const mine = rows.filter((x) => x.resolution === r.name && x.workSize === NATIVE_WORK_SIZE);
    const first = mine[0]!;
    const last = mine.at(-1)!;
    const growth = last.peakRssMiB / first.peakRssMiB - 1;
    return {
      resolution: r.name,
      underLimit: mine.every((x) => x.peakRssMiB * MiB < LIMIT_BYTES),
      growth: round(growth, 3),
      flat: growth <= FLAT_TOLERANCE,
    };
  });
  const table = [
    '| resolution | frames | work size | peak RSS MiB | s/frame |',
    '| --- | --- | --- | --- | --- |',
    ...rows.map((x) => `| ${x.resolution} | ${x.frames} | ${x.workSize} | ${x.peakRssMiB} | ${x.secondsPerFrame} |`),
  ].join('\n');
  ctx.log(`daemon-rss:\n${table}`);
  for (const v of verdicts)
    ctx.log(
      `daemon-rss: ${v.resolution}: ${v.underLimit ? 'under' : 'NOT under'} 4 GiB; ${counts.at(-1)} vs ${counts[0]} frames ${v.growth >= 0 ? '+' : ''}${(v.growth * 100).toFixed(1)}% (${v.flat ? 'flat' : 'NOT flat'}, tolerance ${FLAT_TOLERANCE * 100}%)`,
    );
  return {
    host: hostInfo(),
    model: 'embedded-default',
    params: { steps: 4, strength: 0.5, batch: 1, workSizes: [NATIVE_WORK_SIZE, ...SMALLER_WORK_SIZES] },
    rows,
    verdicts,
    ok: verdicts.every((v) => v.underLimit && v.flat),
    table,
  };
}

export const daemonRssBench: BenchModule = {
  name: 'daemon-rss',
  describe: 'peak RSS of `vidprior serve` stylizing 720p/1080p clips of 10–300 frames sent by path (must stay flat)',
  run: benchDaemonRss,
};

await runStandalone(import.meta.url, benchDaemonRss);
