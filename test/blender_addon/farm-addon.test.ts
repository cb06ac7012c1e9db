/**
 * Render on Farm in Blender 3.4 (-b): a daemon started with `serve --slurm` (its sbatch a stand-in that runs the
 * tasks at once, test/farm/fake-slurm.ts: the real Slurm path is tested in test/farm and test/daemon/jobs)
 * offers kind:farm; the add-on's farm operator sends the strip as a farm job and adds the result strip.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeFakeSlurm } from '../farm/fake-slurm.js';
import { BLENDER_TEST_ARGS, ROOT, blenderHomeEnv, has, runBlender, writeTestData } from './harness.js';

const skip = !has('blender')
  ? "blender not installed (CI installs Debian's)"
  : !has('ffmpeg')
    ? 'ffmpeg not installed'
    : false;

/** `vidprior serve --slurm` on a free port; resolves with its port once it listens. */
function serve(
  work: string,
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; port: number; log: () => string }> {
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'dist/cli/main.js'),
      'serve',
      '--port',
      '0',
      '--json',
      '--data-dir',
      join(work, 'data'),
      '--ep',
      'cpu',
    ].concat(['--slurm', '--slurm-ep', 'cpu', '--slurm-poll-s', '0.2']),
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  return new Promise((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`the daemon did not start:\n${log}`)), 120_000);
    child.stderr!.on('data', (d) => {
      log += d;
    });
    child.stdout!.on('data', (d) => {
      log += d;
      const m = /"event":"listening".*"port":(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolvePort({ child, port: Number(m[1]), log: () => log });
      }
    });
    child.once('exit', (code) => reject(new Error(`the daemon exited (${code}):\n${log}`)));
  });
}

test('Blender 3.4: Render on Farm through a daemon with a Slurm target', { skip, timeout: 10 * 60_000 }, async () => {
  const work = mkdtempSync(join(tmpdir(), 'addon-farm-'));
  let daemon: Awaited<ReturnType<typeof serve>> | null = null;
  try {
    assert.equal(await writeTestData(work), null);
    writeFakeSlurm(join(work, 'slurm-bin'));
    const env = {
      ...process.env,
      PATH: `${join(work, 'slurm-bin')}:${process.env.PATH}`,
      VIDPRIOR_CACHE_DIR: join(work, 'cache'),
    };
    daemon = await serve(work, env);
    const home = join(work, 'blender-home');
    mkdirSync(home);
    const r = await runBlender(
      'blender',
      [
        ...BLENDER_TEST_ARGS,
        '--python',
        join(ROOT, 'blender_addon/tests/blender/farm_in_blender.py'),
        '--',
        join(work, 'zips', 'vidprior-blender-addon.zip'),
        String(daemon.port),
        work,
      ],
      { ...process.env, ...blenderHomeEnv(home) },
      8 * 60_000,
    );
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, `${out.slice(-6000)}\n--- daemon ---\n${daemon.log().slice(-3000)}`);
    assert.match(out, /render on farm: ok \(5 frames/);
  } finally {
    if (daemon && daemon.child.exitCode === null) {
      const exited = new Promise((done) => daemon!.child.once('exit', done));
      daemon.child.kill('SIGTERM');
      await exited;
    }
    rmSync(work, { recursive: true, force: true });
  }
});
