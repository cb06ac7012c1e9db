/**
 * Shared by the add-on tests that run Blender against a real daemon (addon.test.ts on the host's Blender 3.4,
 * addon-blender4.test.ts in a Debian trixie chroot with Blender 4.3): test data, the add-on zips, the daemon.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import sharp from 'sharp';

export const ROOT = resolve('.');
export const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/**
 * Writes into `work`: a 6-frame clip (clip.mp4), 5 PNG frames (frames/f0001.png …), both 64×48 (not a multiple
 * of 64: the daemon resizes and back), 3 frames of seeded noise at 600×400 (noise/n0001.png …: they do not
 * compress, so together they exceed a 1 MiB message and each needs more than one upload chunk), and the add-on
 * zips (zips/vidprior-blender-{addon,extension}.zip). Returns an error message, or null when all went well.
 */
export async function writeTestData(work: string): Promise<string | null> {
  const ff = spawnSync('ffmpeg', [
    '-v',
    'error',
    '-f',
    'lavfi',
    '-i',
    'testsrc=size=64x48:rate=24',
    '-frames:v',
    '6',
    '-pix_fmt',
    'yuv420p',
    join(work, 'clip.mp4'),
  ]);
  if (ff.status !== 0) return `ffmpeg failed: ${String(ff.stderr)}`;
  mkdirSync(join(work, 'frames'));
  for (let i = 0; i < 5; i++) {
    await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 40 * i, g: 120, b: 200 - 30 * i } } })
      .png()
      .toFile(join(work, 'frames', `f${String(i + 1).padStart(4, '0')}.png`));
  }
  mkdirSync(join(work, 'noise'));
  let seed = 0x9e3779b9;
  for (let i = 0; i < 3; i++) {
    const pixels = Buffer.alloc(600 * 400 * 3);
    for (let p = 0; p < pixels.length; p++) {
      // xorshift32: deterministic noise
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      pixels[p] = seed & 0xff;
    }
    await sharp(pixels, { raw: { width: 600, height: 400, channels: 3 } })
      .png()
      .toFile(join(work, 'noise', `n${String(i + 1).padStart(4, '0')}.png`));
  }
  const zips = spawnSync('python3', [join(ROOT, 'blender_addon/build.py'), join(work, 'zips')], { encoding: 'utf8' });
  return zips.status === 0 ? null : `build.py failed: ${zips.stderr}`;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((res) => {
      const c = connect(port, host);
      c.once('connect', () => {
        c.destroy();
        res(true);
      });
      c.once('error', () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`daemon did not listen on ${port} within ${timeoutMs} ms`);
}

export interface Daemon {
  port: number;
  /** Everything the daemon printed so far. */
  log(): string;
  /** Stops the daemon and resolves once it has exited (so its data folder can be removed). */
  stop(): Promise<void>;
}

/** Where the add-on finds a daemon it treats as remote (see startRemoteDaemon). */
export interface RemoteDaemonOptions {
  host: string;
  token: string;
  maxMessageMb: number;
}

/** A real daemon (`vidprior serve`, CPU) with the embedded default model on a free loopback port. */
export async function startDaemon(dataDir: string, remote?: RemoteDaemonOptions): Promise<Daemon> {
  const port = await freePort();
  const env = {
    ...process.env,
    VIDPRIOR_CACHE_DIR: process.env.VIDPRIOR_CACHE_DIR ?? join(tmpdir(), 'vidprior-test-cache'),
  };
  const child = spawn(
    process.execPath,
    // The test's folder (around the data dir) is allowed, so a loopback add-on sends paths, not frame bytes.
    [
      join(ROOT, 'dist/cli/main.js'),
      'serve',
      '--port',
      String(port),
      '--data-dir',
      dataDir,
      '--ep',
      'cpu',
      '--allow-dir',
      dirname(dataDir),
      ...(remote
        ? ['--host', remote.host, '--token', remote.token, '--max-message-mb', String(remote.maxMessageMb)]
        : []),
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout!.on('data', (d) => {
    log += d;
  });
  child.stderr!.on('data', (d) => {
    log += d;
  });
  const daemon = {
    port,
    log: () => log,
    stop: () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  };
  try {
    await waitForPort(port, child, 120_000, remote?.host);
  } catch (err) {
    await daemon.stop();
    throw new Error(`${(err as Error).message}\n--- daemon ---\n${log.slice(-3000)}`);
  }
  return daemon;
}

/**
 * A second daemon that the add-on treats as remote: it listens on 127.0.0.2 (loopback to Linux, which routes all
 * of 127/8 to lo, but not a host the add-on sends paths to), needs a token, and takes messages of at most 1 MiB,
 * so the noise frames of writeTestData go as chunked uploads. Its address is written to `work`/remote.json,
 * where the in-Blender test_remote.py finds it (a chroot's Blender reaches it too: it shares the network).
 */
export async function startRemoteDaemon(dataDir: string, work: string): Promise<Daemon> {
  const remote = { host: '127.0.0.2', token: 'remote-test-token', maxMessageMb: 1 };
  const daemon = await startDaemon(dataDir, remote);
  writeFileSync(
    join(work, 'remote.json'),
    JSON.stringify({ host: remote.host, port: daemon.port, token: remote.token }),
  );
  return daemon;
}

/** Blender's user folders under `home` (as Blender will see the path), so no user configuration leaks in. */
export function blenderHomeEnv(home: string): Record<string, string> {
  return {
    BLENDER_USER_CONFIG: join(home, 'config'),
    BLENDER_USER_SCRIPTS: join(home, 'scripts'),
    BLENDER_USER_EXTENSIONS: join(home, 'extensions'),
    TMPDIR: home,
  };
}

/** The first arguments of every test run: background, factory settings, a failing script fails Blender. */
export const BLENDER_TEST_ARGS = ['-b', '--factory-startup', '--python-exit-code', '1'];

export interface BlenderRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs Blender (or `chroot DIR blender`) without blocking the event loop, so the daemon's output keeps draining
 * while Blender works. A run past `timeoutMs` is killed and reported with status null.
 */
export function runBlender(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<BlenderRun> {
  return new Promise((res) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => {
      stdout += d;
    });
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      res({ status: null, stdout, stderr: `${stderr}\n${err.message}` });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      res({ status: code, stdout, stderr });
    });
  });
}

/** The end of Blender's and the daemon's output, for an assertion message. */
export function blenderFailure(r: BlenderRun, daemon: Daemon): string {
  return `${`${r.stdout}\n${r.stderr}`.slice(-6000)}\n--- daemon ---\n${daemon.log().slice(-3000)}`;
}

/** Blender's UI on a virtual display running ui_test.py (the add-on `module` enabled, the daemon on `port`). */
export function uiTestArgs(blend: string, script: string, module: string, port: number, dataDir: string): string[] {
  return [
    '-a',
    '-s',
    '-screen 0 1280x800x24',
    'blender',
    '--factory-startup',
    blend,
    '--python-exit-code',
    '1',
    '--python',
    script,
    '--',
    module,
    String(port),
    dataDir,
  ];
}

/** ui_test.py passed, and no draw printed an error (a draw naming a missing property only prints it). */
export function checkUiRun(r: BlenderRun, daemon: Daemon): string {
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, blenderFailure(r, daemon));
  assert.match(out, /UI test passed/);
  assert.doesNotMatch(out, /Traceback|rna_uiItem|property not found/i, blenderFailure(r, daemon));
  return out.match(/UI test: job.*/)?.[0] ?? '';
}
