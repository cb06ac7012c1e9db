/**
 * Issue 10's acceptance run, end to end as a user does it: a movie strip in real Blender (`blender -b`, the add-on
 * installed from its zip) stylized through a real daemon (`vidprior serve`, embedded default model, CPU) with the
 * add-on's Stylize Strip operator. Blender renders the strip's frames, sends them by path (loopback), the daemon
 * streams them through the pipeline and writes the results, the add-on places the result strip. Measured per
 * resolution × strip length: the daemon's peak RSS (VmHWM, a fresh daemon per run), Blender's peak RSS, the
 * operator's wall time and the daemon job's own time. The daemon's peak must stay under 4 GiB and flat as the
 * strip grows (the longest strip within 15% of the shortest).
 *
 *   node dist/bench/blender-strip-rss.js [--quick] [--frames 30,300] [--resolutions 1080p,720p]
 *   (also part of `npm run bench`, as `blender-strip-rss`; skipped where blender or ffmpeg is missing)
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { VidpriorClient } from '../protocol/client.js';
import { type BenchContext, type BenchModule, hostInfo, round, runStandalone } from './common.js';
import { peakRss, startDaemon } from './daemon-rss.js';

const MiB = 2 ** 20;
const LIMIT_MIB = 4 * 1024;
const FLAT_TOLERANCE = 0.15;

const RESOLUTIONS = [
  { name: '1080p', width: 1920, height: 1080 },
  { name: '720p', width: 1280, height: 720 },
];

export interface StripRow {
  resolution: string;
  frames: number;
  daemonPeakRssMiB: number;
  blenderPeakRssMiB: number;
  /** The operator's wall time: Blender rendering the strip, the job, placing the result strip. */
  operatorSeconds: number;
  /** The daemon's job from its start to its end (its own timestamps). */
  jobSeconds: number;
  resultFrames: number;
}

interface BlenderResult {
  outcome: string[];
  seconds: number;
  result_frames: number;
  blender_peak_rss_mib: number;
  blender: string;
  leftover_render_dirs: string[];
}

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** A test-pattern movie (moving, with a timer: every frame differs), H.264 as cameras and editors deliver. */
function writeMovie(path: string, width: number, height: number, frames: number): void {
  const r = spawnSync(
    'ffmpeg',
    [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=${width}x${height}:rate=24`,
      '-frames:v',
      String(frames),
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-pix_fmt',
      'yuv420p',
      path,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`ffmpeg could not write ${path}: ${r.stderr}`);
}

function runBlender(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn('blender', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer) => {
      output = (output + d.toString()).slice(-8000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.once('close', (status) => done({ status, output }));
  });
}

/** One strip through a fresh daemon, driven by Blender. */
async function measure(
  ctx: BenchContext,
  work: string,
  zip: string,
  movie: string,
  resolution: string,
  frames: number,
): Promise<StripRow> {
  const dataDir = await mkdtemp(join(work, 'data-'));
  const outDir = join(work, `out-${resolution}-${frames}`);
  const home = join(work, `blender-home-${resolution}-${frames}`);
  await mkdir(outDir, { recursive: true });
  await mkdir(home, { recursive: true });
  const daemon = await startDaemon(dataDir, work, ctx.ep === 'auto' ? 'cpu' : ctx.ep);
  try {
    const port = new URL(daemon.url).port;
    const resultPath = join(work, `result-${resolution}-${frames}.json`);
    const env = {
      ...process.env,
      BLENDER_USER_CONFIG: join(home, 'config'),
      BLENDER_USER_SCRIPTS: join(home, 'scripts'),
      TMPDIR: home,
    };
    const script = resolve('bench', 'blender', 'stylize_strip.py');
    const run = await runBlender(
      ['-b', '--factory-startup', '--python-exit-code', '1', '--python', script, '--'].concat([
        zip,
        port,
        movie,
        String(frames),
        outDir,
        resultPath,
      ]),
      env,
    );
    if (run.status !== 0) throw new Error(`blender failed (${run.status}):\n${run.output}`);
    const result = JSON.parse(await readFile(resultPath, 'utf8')) as BlenderResult;
    if (!result.outcome.includes('FINISHED')) throw new Error(`Stylize Strip ended ${result.outcome}:\n${run.output}`);
    if (result.result_frames !== frames)
      throw new Error(`the result strip has ${result.result_frames} of ${frames} frames`);
    if (result.leftover_render_dirs.length)
      throw new Error(`render folders left behind: ${result.leftover_render_dirs.join(', ')}`);
    const peak = await peakRss(daemon.child.pid!);
    const client = await VidpriorClient.connect(daemon.url, { client: 'bench-blender-strip-rss' });
    let jobSeconds = Number.NaN;
    try {
      const [job] = await client.listJobs({ limit: 1 });
      if (job?.started_at && job.finished_at)
        jobSeconds = (Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000;
    } finally {
      await client.close();
    }
    const row: StripRow = {
      resolution,
      frames,
      daemonPeakRssMiB: Math.round(peak / MiB),
      blenderPeakRssMiB: Math.round(result.blender_peak_rss_mib),
      operatorSeconds: round(result.seconds, 4),
      jobSeconds: round(jobSeconds, 4),
      resultFrames: result.result_frames,
    };
    ctx.log(
      `blender-strip-rss: ${resolution} × ${frames} frames (Blender ${result.blender}): daemon peak RSS ${row.daemonPeakRssMiB} MiB, Blender ${row.blenderPeakRssMiB} MiB, operator ${row.operatorSeconds} s, job ${row.jobSeconds} s`,
    );
    return row;
  } finally {
    await daemon.stop();
    await rm(dataDir, { recursive: true, force: true });
    await rm(outDir, { recursive: true, force: true });
    await rm(home, { recursive: true, force: true });
  }
}

export async function benchBlenderStripRss(
  ctx: BenchContext,
  only: { counts?: number[]; resolutions?: string[] } = {},
): Promise<unknown> {
  if (!has('blender') || !has('ffmpeg')) {
    ctx.log('blender-strip-rss: skipped (needs blender and ffmpeg on PATH)');
    return { skipped: 'blender or ffmpeg not installed' };
  }
  const resolutions = RESOLUTIONS.filter((r) => !only.resolutions || only.resolutions.includes(r.name));
  const counts = only.counts ?? (ctx.quick ? [10, 30] : [30, 300]);
  const work = await mkdtemp(join(tmpdir(), 'vidprior-bench-blender-strip-'));
  const rows: StripRow[] = [];
  try {
    const zips = spawnSync('python3', [resolve('blender_addon', 'build.py'), join(work, 'zips')], { encoding: 'utf8' });
    if (zips.status !== 0) throw new Error(`build.py failed: ${zips.stderr}`);
    const zip = join(work, 'zips', 'vidprior-blender-addon.zip');
    for (const r of resolutions) {
      const movie = join(work, `${r.name}.mp4`);
      writeMovie(movie, r.width, r.height, Math.max(...counts));
      for (const n of counts) rows.push(await measure(ctx, work, zip, movie, r.name, n));
      await rm(movie, { force: true });
    }
    const left = (await readdir(work)).filter((f) => f !== 'zips' && !f.startsWith('result-'));
    if (left.length) throw new Error(`left behind in the bench folder: ${left.join(', ')}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const verdicts = resolutions.map((r) => {
    const mine = rows.filter((x) => x.resolution === r.name);
    const growth = mine.at(-1)!.daemonPeakRssMiB / mine[0]!.daemonPeakRssMiB - 1;
    return {
      resolution: r.name,
      underLimit: mine.every((x) => x.daemonPeakRssMiB < LIMIT_MIB),
      growth: round(growth, 3),
      flat: growth <= FLAT_TOLERANCE,
    };
  });
  const table = [
    '| resolution | frames | daemon peak RSS MiB | Blender peak RSS MiB | operator s | job s |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (x) =>
        `| ${x.resolution} | ${x.frames} | ${x.daemonPeakRssMiB} | ${x.blenderPeakRssMiB} | ${x.operatorSeconds} | ${x.jobSeconds} |`,
    ),
  ].join('\n');
  ctx.log(`blender-strip-rss:\n${table}`);
  for (const v of verdicts)
    ctx.log(
      `blender-strip-rss: ${v.resolution}: daemon ${v.underLimit ? 'under' : 'NOT under'} 4 GiB; ${counts.at(-1)} vs ${counts[0]} frames ${v.growth >= 0 ? '+' : ''}${(v.growth * 100).toFixed(1)}% (${v.flat ? 'flat' : 'NOT flat'})`,
    );
  return {
    host: hostInfo(),
    model: 'embedded-default',
    params: { steps: 4, strength: 0.5, batch: 1, workSize: 'default (native, 512)', transport: 'paths (loopback)' },
    rows,
    verdicts,
    ok: verdicts.every((v) => v.underLimit && v.flat),
    table,
  };
}

export const blenderStripRssBench: BenchModule = {
  name: 'blender-strip-rss',
  describe: 'a 1080p/720p movie strip of 30–300 frames stylized from real Blender through the daemon: peak RSS',
  run: benchBlenderStripRss,
};

await runStandalone(import.meta.url, benchBlenderStripRss);
