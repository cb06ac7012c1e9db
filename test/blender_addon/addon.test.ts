/**
 * The Blender add-on: its wire code (plain Python, outside Blender), its zips, and — where Blender is
 * installed — the add-on inside `blender -b` against a real daemon with the embedded default model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BLENDER_TEST_ARGS,
  ROOT,
  blenderFailure,
  blenderHomeEnv,
  checkUiRun,
  has,
  runBlender,
  startDaemon,
  startRemoteDaemon,
  uiTestArgs,
  writeTestData,
} from './harness.js';

test('wire code passes its unit tests against the protocol examples (plain python3)', {
  skip: has('python3') ? false : 'python3 not installed',
}, () => {
  const r = spawnSync('python3', ['-m', 'unittest', 'discover', '-s', 'blender_addon/tests', '-p', 'test_wire*.py'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stderr, /OK/);
});

test('build.py writes a legacy add-on zip and an extension zip', {
  skip: has('python3') ? false : 'python3 not installed',
}, (t) => {
  const out = mkdtempSync(join(tmpdir(), 'addon-zip-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const r = spawnSync('python3', ['blender_addon/build.py', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const list = (zip: string): string[] =>
    spawnSync('python3', ['-c', `import zipfile,sys;print("\\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))`, zip], {
      encoding: 'utf8',
    })
      .stdout.trim()
      .split('\n');
  const legacy = list(join(out, 'vidprior-blender-addon.zip'));
  assert.ok(legacy.includes('vidprior/__init__.py') && legacy.includes('vidprior/wire/msgpack.py'), legacy.join());
  assert.ok(!legacy.some((f) => f.includes('__pycache__') || f.includes('tests/')));
  const extension = list(join(out, 'vidprior-blender-extension.zip'));
  assert.ok(extension.includes('blender_manifest.toml') && extension.includes('__init__.py'), extension.join());
});

const blenderSkip = !has('blender')
  ? "blender not installed (CI installs Debian's)"
  : !has('ffmpeg')
    ? 'ffmpeg not installed'
    : false;

test('inside blender -b: stylize movie and image strips, cancel, daemon down', {
  skip: blenderSkip,
  timeout: 15 * 60_000,
}, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'addon-blender-'));
  // 1. Test data: a movie clip, PNG frames and the add-on zips.
  assert.equal(await writeTestData(work), null);
  // 2. A real daemon with the embedded default model, on a free port; and one the add-on treats as remote.
  const daemon = await startDaemon(join(work, 'data'));
  const remote = await startRemoteDaemon(join(work, 'remote-data'), work).catch(async (err) => {
    await daemon.stop();
    throw err;
  });
  try {
    // 3. Blender, isolated from the user's configuration, installs the legacy zip with addon_install.
    const home = join(work, 'blender-home');
    mkdirSync(home);
    const r = await runBlender(
      'blender',
      [
        ...BLENDER_TEST_ARGS,
        '--python',
        join(ROOT, 'blender_addon/tests/blender/run_tests.py'),
        '--',
        join(work, 'zips', 'vidprior-blender-addon.zip'),
        String(daemon.port),
        work,
      ],
      { ...process.env, ...blenderHomeEnv(home) },
      14 * 60_000,
    );
    assert.equal(r.status, 0, blenderFailure(r, daemon));
    const out = `${r.stdout}\n${r.stderr}`;
    assert.match(out, /\d+ passed, 0 failed/);
    t.diagnostic(`Blender 3.4: ${out.match(/\d+ passed, 0 failed.*/)?.[0]}`);
  } finally {
    await daemon.stop();
    await remote.stop();
    rmSync(work, { recursive: true, force: true });
  }
});

const uiSkip = blenderSkip || (has('xvfb-run') ? false : "xvfb-run not installed (CI installs Debian's xvfb)");

test('Blender 3.4 UI under Xvfb: the operator returns, the timer follows the job, panel and preferences draw', {
  skip: uiSkip,
  timeout: 6 * 60_000,
}, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'addon-ui-'));
  assert.equal(await writeTestData(work), null);
  const daemon = await startDaemon(join(work, 'data'));
  try {
    const home = join(work, 'blender-home');
    mkdirSync(home);
    const env = { ...process.env, ...blenderHomeEnv(home) };
    // 1. Install the legacy zip into this isolated user folder, and save a .blend to open (no splash screen).
    const blend = join(work, 'ui.blend');
    const setup = await runBlender(
      'blender',
      [
        '-b',
        '--factory-startup',
        '--python-exit-code',
        '1',
        '--python-expr',
        `import bpy; bpy.ops.preferences.addon_install(filepath=${JSON.stringify(join(work, 'zips', 'vidprior-blender-addon.zip'))}); bpy.ops.wm.save_as_mainfile(filepath=${JSON.stringify(blend)})`,
      ],
      env,
      120_000,
    );
    assert.equal(setup.status, 0, blenderFailure(setup, daemon));
    // 2. The real UI, on a virtual display.
    const r = await runBlender(
      'xvfb-run',
      uiTestArgs(blend, join(ROOT, 'blender_addon/tests/blender/ui_test.py'), 'vidprior', daemon.port, work),
      env,
      5 * 60_000,
    );
    t.diagnostic(checkUiRun(r, daemon));
  } finally {
    await daemon.stop();
    rmSync(work, { recursive: true, force: true });
  }
});
