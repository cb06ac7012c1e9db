/**
 * The add-on as a Blender 4.2+ extension, on Blender 4.3 (Debian trixie) and 5.x (Debian sid), each in a chroot
 * that .ci/blender-chroot.sh builds (CI runs it before `npm test`). Blender installs the extension zip with its own command
 * (`blender -c extension install-file`), validates it, builds the same files from the package folder, and the
 * same in-Blender tests as on 3.4 run against a real daemon on the host (the chroot shares the host's network,
 * so Blender reaches it on 127.0.0.1). Then the UI path that `-b` never takes (timers, panel draw) under Xvfb.
 *
 * Nothing is mounted: the test writes its data, the zips and the in-Blender test scripts into the chroot's
 * /tmp and removes them afterwards. chroot needs root (CI has it); elsewhere the test skips, saying why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import {
  BLENDER_TEST_ARGS,
  checkUiRun,
  uiTestArgs,
  ROOT,
  blenderFailure,
  blenderHomeEnv,
  has,
  runBlender,
  startDaemon,
  startRemoteDaemon,
  writeTestData,
  type BlenderRun,
  type Daemon,
} from './harness.js';

const EXTENSION_MODULE = 'bl_ext.user_default.vidprior';
/** Debian suites with a newer Blender than the host's 3.4: trixie has 4.3, sid 5.x. */
const SUITES = ['trixie', 'sid'] as const;

function skipReason(CHROOT: string, suite: string): string | false {
  if (!existsSync(join(CHROOT, '.vidprior-ready-3'))) {
    const failed = `${CHROOT}.failed`;
    const why = existsSync(failed)
      ? `its setup failed: ${readFileSync(failed, 'utf8').trim()}`
      : `run \`bash .ci/blender-chroot.sh ${suite}\` (root) to build it`;
    return `no Blender chroot for Debian ${suite} at ${CHROOT}: ${why}`;
  }
  if (process.getuid?.() !== 0) return 'chroot needs root';
  if (!has('ffmpeg') || !has('python3')) return 'ffmpeg and python3 are needed for the test data';
  return false;
}

function zipNames(zip: string): string[] {
  const r = spawnSync(
    'python3',
    ['-c', 'import zipfile,sys;print("\\n".join(sorted(zipfile.ZipFile(sys.argv[1]).namelist())))', zip],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n');
}

/** A command inside the chroot (Blender, or xvfb-run blender), with a clean environment; paths are the chroot's. */
function inChroot(CHROOT: string, command: string[], home: string, timeoutMs: number): Promise<BlenderRun> {
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: home, LANG: 'C.UTF-8', ...blenderHomeEnv(home) };
  return runBlender('chroot', [CHROOT, ...command], env, timeoutMs);
}

interface ChrootWork {
  work: string;
  inner: string;
  home: string;
  zip: string;
}

/** A fresh folder in the chroot's /tmp: `work` on the host is `inner` inside. */
function chrootWork(CHROOT: string): ChrootWork {
  const work = mkdtempSync(join(CHROOT, 'tmp', 'vidprior-addon-'));
  const inner = `/tmp/${basename(work)}`;
  return { work, inner, home: `${inner}/blender-home`, zip: `${inner}/zips/vidprior-blender-extension.zip` };
}

/**
 * Test data, zips and the in-Blender test scripts into `w`, and the extension installed with Blender's own
 * command into the user_default repository of its Blender home.
 */
async function installInChroot(CHROOT: string, w: ChrootWork, daemon: Daemon): Promise<void> {
  const { work } = w;
  assert.equal(await writeTestData(work), null);
  cpSync(join(ROOT, 'blender_addon/tests/blender'), join(work, 'tests'), { recursive: true });
  const install = await inChroot(
    CHROOT,
    ['blender', '-b', '--factory-startup', '-c', 'extension', 'install-file', '-r', 'user_default', '-e', w.zip],
    w.home,
    120_000,
  );
  assert.equal(install.status, 0, blenderFailure(install, daemon));
  assert.ok(
    existsSync(join(work, 'blender-home/extensions/user_default/vidprior/blender_manifest.toml')),
    blenderFailure(install, daemon),
  );
}

for (const suite of SUITES) {
  const CHROOT = `/var/cache/vidprior-${suite}`;

  test(`Blender ${suite} extension: install-file, validate, build, stylize movie and image strips, cancel, daemon down`, {
    skip: skipReason(CHROOT, suite),
    timeout: 15 * 60_000,
  }, async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'addon-blender4-daemon-'));
    const daemon = await startDaemon(dataDir);
    const w = chrootWork(CHROOT);
    // A daemon the add-on treats as remote (127.0.0.2, 1 MiB messages): chunked uploads from the chroot's Blender.
    const remote = await startRemoteDaemon(join(dataDir, 'remote'), w.work).catch(async (err) => {
      await daemon.stop();
      rmSync(w.work, { recursive: true, force: true });
      rmSync(dataDir, { recursive: true, force: true });
      throw err;
    });
    try {
      // 1. Installed with Blender's own command (`blender -c extension install-file -r user_default`).
      await installInChroot(CHROOT, w, daemon);
      const { work, inner, home, zip } = w;

      // 2. Blender's own checks of the manifest and the zip.
      const valid = await inChroot(
        CHROOT,
        ['blender', '-b', '--factory-startup', '-c', 'extension', 'validate', zip],
        home,
        120_000,
      );
      assert.equal(valid.status, 0, blenderFailure(valid, daemon));

      // 3. Blender's own build of the package folder holds the same files as build.py's extension zip.
      cpSync(join(ROOT, 'blender_addon/vidprior'), join(work, 'source'), {
        recursive: true,
        filter: (p) => !p.includes('__pycache__'),
      });
      const built = await inChroot(
        CHROOT,
        [
          'blender',
          '-b',
          '--factory-startup',
          '-c',
          'extension',
          'build',
          '--source-dir',
          `${inner}/source`,
          '--output-filepath',
          `${inner}/built.zip`,
        ],
        home,
        120_000,
      );
      assert.equal(built.status, 0, blenderFailure(built, daemon));
      assert.deepEqual(zipNames(join(work, 'built.zip')), zipNames(join(work, 'zips/vidprior-blender-extension.zip')));

      // 4. The same in-Blender tests as on 3.4, on the installed extension.
      const r = await inChroot(
        CHROOT,
        [
          'blender',
          ...BLENDER_TEST_ARGS,
          '--python',
          `${inner}/tests/run_tests.py`,
          '--',
          '--extension',
          EXTENSION_MODULE,
          String(daemon.port),
          inner,
        ],
        home,
        14 * 60_000,
      );
      const out = `${r.stdout}\n${r.stderr}`;
      assert.equal(r.status, 0, blenderFailure(r, daemon));
      assert.match(
        out,
        new RegExp(
          `enabled as ${EXTENSION_MODULE.replace(/\./g, '\\.')} from .*/extensions/user_default/vidprior \\(Blender [45]\\.`,
        ),
      );
      assert.match(out, /\d+ passed, 0 failed/);
      assert.match(out, /disabled cleanly/);
      t.diagnostic(`${out.match(/Blender [45]\.[\d.]+/)?.[0]}: ${out.match(/\d+ passed, 0 failed.*/)?.[0]}`);
    } finally {
      await daemon.stop();
      await remote.stop();
      rmSync(w.work, { recursive: true, force: true });
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  const uiSkip =
    skipReason(CHROOT, suite) ||
    (existsSync(join(CHROOT, 'usr/bin/xvfb-run'))
      ? false
      : `no xvfb-run in ${CHROOT}: run .ci/blender-chroot.sh ${suite} again`);

  test(`Blender ${suite} UI under Xvfb: the operator returns, the timer follows the job, panel and preferences draw`, {
    skip: uiSkip,
    timeout: 5 * 60_000,
  }, async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'addon-blender4-ui-daemon-'));
    const daemon = await startDaemon(dataDir);
    const w = chrootWork(CHROOT);
    try {
      await installInChroot(CHROOT, w, daemon);
      const { inner, home } = w;
      // A .blend to open, so no splash screen waits for a click.
      const blend = `${inner}/ui.blend`;
      const save = await inChroot(
        CHROOT,
        [
          'blender',
          '-b',
          '--factory-startup',
          '--python-expr',
          `import bpy; bpy.ops.wm.save_as_mainfile(filepath=${JSON.stringify(blend)})`,
        ],
        home,
        120_000,
      );
      assert.equal(save.status, 0, blenderFailure(save, daemon));
      const r = await inChroot(
        CHROOT,
        ['xvfb-run', ...uiTestArgs(blend, `${inner}/tests/ui_test.py`, EXTENSION_MODULE, daemon.port, inner)],
        home,
        4 * 60_000,
      );
      t.diagnostic(checkUiRun(r, daemon));
    } finally {
      await daemon.stop();
      rmSync(w.work, { recursive: true, force: true });
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
}
