/**
 * The Blender add-on: its wire code (plain Python, outside Blender), its zips, and — where Blender is
 * installed — the add-on inside `blender -b` against a real daemon with the embedded default model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';

const ROOT = resolve('.');
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

test('wire code passes its unit tests against the protocol examples (plain python3)', { skip: has('python3') ? false : 'python3 not installed' }, () => {
  const r = spawnSync('python3', ['-m', 'unittest', 'discover', '-s', 'blender_addon/tests', '-p', 'test_wire*.py'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stderr, /OK/);
});

test('build.py writes a legacy add-on zip and an extension zip', { skip: has('python3') ? false : 'python3 not installed' }, () => {
  const out = mkdtempSync(join(tmpdir(), 'addon-zip-'));
  const r = spawnSync('python3', ['blender_addon/build.py', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const list = (zip: string): string[] => spawnSync('python3', ['-c', `import zipfile,sys;print("\\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))`, zip], { encoding: 'utf8' }).stdout.trim().split('\n');
  const legacy = list(join(out, 'vidprior-blender-addon.zip'));
  assert.ok(legacy.includes('vidprior/__init__.py') && legacy.includes('vidprior/wire/msgpack.py'), legacy.join());
  assert.ok(!legacy.some((f) => f.includes('__pycache__') || f.includes('tests/')));
  const extension = list(join(out, 'vidprior-blender-extension.zip'));
  assert.ok(extension.includes('blender_manifest.toml') && extension.includes('__init__.py'), extension.join());
});

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const port = (s.address() as { port: number }).port; s.close(() => res(port)); });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((res) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); res(true); });
      c.once('error', () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`daemon did not listen on ${port} within ${timeoutMs} ms`);
}

const blenderSkip = !has('blender') ? 'blender not installed (CI installs Debian\'s)' : !has('ffmpeg') ? 'ffmpeg not installed' : false;

test('inside blender -b: stylize movie and image strips, cancel, daemon down', { skip: blenderSkip, timeout: 15 * 60_000 }, async () => {
  const work = mkdtempSync(join(tmpdir(), 'addon-blender-'));
  // 1. Test data: a 6-frame clip and 5 PNG frames, 64×48 (not a multiple of 64: the daemon resizes and back).
  const ff = spawnSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=24', '-frames:v', '6', '-pix_fmt', 'yuv420p', join(work, 'clip.mp4')]);
  assert.equal(ff.status, 0, String(ff.stderr));
  mkdirSync(join(work, 'frames'));
  for (let i = 0; i < 5; i++) {
    await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 40 * i, g: 120, b: 200 - 30 * i } } })
      .png().toFile(join(work, 'frames', `f${String(i + 1).padStart(4, '0')}.png`));
  }
  const zips = spawnSync('python3', ['blender_addon/build.py', join(work, 'zips')], { encoding: 'utf8' });
  assert.equal(zips.status, 0, zips.stderr);

  // 2. A real daemon with the embedded default model, on a free port.
  const port = await freePort();
  const env = { ...process.env, VIDPRIOR_CACHE_DIR: process.env.VIDPRIOR_CACHE_DIR ?? join(tmpdir(), 'vidprior-test-cache') };
  const daemon = spawn(process.execPath, ['dist/daemon/cli.js', 'serve', '--port', String(port), '--data-dir', join(work, 'data'), '--ep', 'cpu'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let daemonLog = '';
  daemon.stdout!.on('data', (d) => { daemonLog += d; });
  daemon.stderr!.on('data', (d) => { daemonLog += d; });
  try {
    await waitForPort(port, daemon, 120_000);
    // 3. Blender, isolated from the user's configuration.
    const home = join(work, 'blender-home');
    mkdirSync(home);
    const benv = { ...process.env, BLENDER_USER_CONFIG: join(home, 'config'), BLENDER_USER_SCRIPTS: join(home, 'scripts'), BLENDER_USER_EXTENSIONS: join(home, 'extensions'), TMPDIR: home };
    const r = spawnSync('blender', ['-b', '--factory-startup', '--python-exit-code', '1', '--python', join(ROOT, 'blender_addon/tests/blender/run_tests.py'), '--',
      join(work, 'zips', 'vidprior-blender-addon.zip'), String(port), work], { env: benv, encoding: 'utf8', timeout: 14 * 60_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, `${out.slice(-6000)}\n--- daemon ---\n${daemonLog.slice(-3000)}`);
    assert.match(out, /\d+ passed, 0 failed/);
  } finally {
    daemon.kill('SIGTERM');
  }
});
