/**
 * The daemon's farm job. Without a Slurm target the kind is not offered (and refused, saying how to get one);
 * with one (a real one-node Slurm started by the test), a farm job of the example clip streams every frame and
 * finishes, the frames byte-identical to `vidprior run` of the same clip and settings; a farm job cancelled
 * leaves nothing on Slurm; a daemon restarted meanwhile follows the same Slurm jobs (nothing submitted twice).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Frame } from '../../../protocol/messages.js';
import { type SlurmCluster, slurmMissing, startSlurm } from '../../farm/slurm-cluster.js';
import { startTestDaemon } from '../helpers.js';
import { runCliSync } from '../../cli/run-cli.js';
import { CLIP, METHOD_ARGS, METHOD_PARAMS } from '../../farm/method-fixture.js';

const missing = slurmMissing();
let tmp: string;
let cluster: SlurmCluster | null = null;
const saved = { conf: process.env.SLURM_CONF, cache: process.env.VIDPRIOR_CACHE_DIR };

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'farm-daemon-'));
  if (missing) return;
  cluster = await startSlurm(2);
  // The daemon's sbatch finds this cluster, and the tasks (which inherit the environment) this cache.
  process.env.SLURM_CONF = cluster.env.SLURM_CONF;
  process.env.VIDPRIOR_CACHE_DIR = join(tmp, 'cache');
});

after(async () => {
  try {
    await cluster?.stop();
  } finally {
    for (const [k, v] of [
      ['SLURM_CONF', saved.conf],
      ['VIDPRIOR_CACHE_DIR', saved.cache],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(tmp, { recursive: true, force: true });
  }
});

const PARAMS = METHOD_PARAMS;

test('without --slurm the farm kind is not offered, and a farm job is refused saying why', async () => {
  const d = await startTestDaemon();
  try {
    const c = await d.connect();
    assert.ok(!c.welcome.capabilities.includes('kind:farm'));
    const png = readFileSync(join(CLIP, 'frame_001.png'));
    await assert.rejects(
      c.submit({ kind: 'farm', params: PARAMS, frames: [{ name: 'a.png', png }], edits: [{ frame: 0, png }] }),
      /no Slurm target.*serve --slurm/,
    );
  } finally {
    await d.close();
  }
});

test('a farm job goes through Slurm and streams the frames of `vidprior run`', {
  skip: missing ?? false,
  timeout: 600_000,
}, async () => {
  // 1. The reference, in one process.
  const ref = join(tmp, 'ref');
  const r = runCliSync(['run', ...METHOD_ARGS, '-o', ref], { timeoutMs: 300_000 });
  assert.equal(r.code, 0, r.stderr);

  // 2. The same as a farm job of a daemon with a Slurm target.
  const d = await startTestDaemon({
    slurm: { sharedDir: join(tmp, 'farm'), scheduler: {}, ep: 'cpu', pollSeconds: 0.5 },
  });
  try {
    const c = await d.connect();
    assert.ok(c.welcome.capabilities.includes('kind:farm'), c.welcome.capabilities.join());
    const names = readdirSync(CLIP).sort();
    const job = await c.submit({
      kind: 'farm',
      params: PARAMS,
      frames: names.map((name) => ({ name, png: readFileSync(join(CLIP, name)) })),
      edits: [{ frame: 2, png: readFileSync(join(CLIP, 'frame_001.png')) }],
    });
    const frames: Frame[] = [];
    const stages = new Set<string>();
    job.onFrame = (f) => frames.push(f);
    job.onProgress = (p) => stages.add(p.stage);
    const done = await job.done;
    assert.deepEqual(done.outputs.names, names);
    assert.deepEqual(
      frames.map((f) => f.index).sort((a, b) => a - b),
      [...names.keys()],
    );
    for (const f of frames)
      assert.ok(Buffer.from(f.png).equals(readFileSync(join(ref, f.name))), `${f.name} differs from vidprior run`);
    assert.ok(stages.has('training') || stages.has('stylizing'), [...stages].join());

    // 3. Cancelling a farm job cancels its Slurm jobs.
    const second = await c.submit({
      kind: 'farm',
      params: { ...PARAMS, iters: 400 },
      frames: names.map((name) => ({ name, png: readFileSync(join(CLIP, name)) })),
      edits: [{ frame: 2, png: readFileSync(join(CLIP, 'frame_001.png')) }],
    });
    await new Promise<void>((training) => {
      second.onProgress = (p) => {
        if (p.stage === 'training') training();
      };
    });
    await c.cancel(second.id);
    await assert.rejects(second.done, (e: { code?: string }) => e.code === 'E_CANCELLED');
    for (let i = 0; ; i++) {
      const q = spawnSync('squeue', ['-h'], { encoding: 'utf8', env: process.env });
      if (q.stdout.trim() === '') break;
      assert.ok(i < 100, `Slurm still has the cancelled farm job: ${q.stdout}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await d.close();
  }
});

test('a daemon restarted while its farm job runs on Slurm follows the same Slurm jobs to the end', {
  skip: missing ?? false,
  timeout: 600_000,
}, async () => {
  const dataDir = join(tmp, 'restart-data');
  const slurm = { sharedDir: join(tmp, 'farm-restart'), scheduler: {}, ep: 'cpu', pollSeconds: 0.5 };
  const names = readdirSync(CLIP).sort();
  let d = await startTestDaemon({ dataDir, slurm });
  let jobId: string;
  try {
    const c = await d.connect();
    const job = await c.submit({
      kind: 'farm',
      params: { ...PARAMS, iters: 150 },
      frames: names.map((name) => ({ name, png: readFileSync(join(CLIP, name)) })),
      edits: [{ frame: 2, png: readFileSync(join(CLIP, 'frame_001.png')) }],
    });
    jobId = job.id;
    await new Promise<void>((training) => {
      job.onProgress = (p) => {
        if (p.stage === 'training') training();
      };
    });
  } finally {
    await d.close(); // the Slurm jobs go on meanwhile
  }
  const queued = spawnSync('squeue', ['-h'], { encoding: 'utf8', env: process.env }).stdout;
  assert.notEqual(queued.trim(), '', 'stopping the daemon leaves the farm job on Slurm');
  d = await startTestDaemon({ dataDir, slurm });
  try {
    const c = await d.connect();
    const job = await c.attach(jobId, { replay: true });
    const frames = new Set<number>();
    job.onFrame = (f) => frames.add(f.index);
    const done = await job.done;
    assert.deepEqual(done.outputs.names, names);
    assert.equal(frames.size, names.length);
    const specs = readdirSync(slurm.sharedDir);
    assert.equal(specs.length, 1, 'submitted once');
    const state = JSON.parse(readFileSync(join(slurm.sharedDir, specs[0]!, 'state.json'), 'utf8'));
    assert.equal(state.submissions.length, 1, 'not submitted again after the restart');
  } finally {
    await d.close();
  }
});
