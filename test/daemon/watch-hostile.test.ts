// Watched folders against planted symlinks, FIFOs and folders that vanish: nothing is read or written outside the
// job folder, the watcher never stalls, and a job whose folder was deleted is not brought back to life.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  closeSync,
} from 'node:fs';
import { join } from 'node:path';
import { startTestDaemon, tempDir, testPng, waitJson, type TestDaemon } from './helpers.js';
import { scriptedExecutor } from './scripted-executor.js';

const executor = scriptedExecutor(() => testPng(5, 8, 8));
let d: TestDaemon;
let inbox: string;
let outside: string;
const fifos: string[] = [];
before(async () => {
  inbox = tempDir('inbox');
  outside = tempDir('outside');
  d = await startTestDaemon({ watch: [inbox], watchStableMs: 100, listen: undefined, executors: [executor] });
});
after(async () => {
  // A reader stuck on a FIFO (before the fix) is let go, so the daemon can close.
  for (const f of fifos) {
    try {
      const fd = openSync(f, constants.O_WRONLY | constants.O_NONBLOCK);
      writeFileSync(fd, '{}');
      closeSync(fd);
    } catch {
      /* no reader */
    }
  }
  await d.close();
  rmSync(inbox, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

const stylize = { kind: 'stylize', params: { prompt: 'x' } };

async function frames(dir: string, n: number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) writeFileSync(join(dir, `f${i + 1}.png`), await testPng(i, 8, 8));
}

const hasFfmpeg = spawnSync('ffmpeg', ['-version']).status === 0;

test('a symlinked video in a job folder is not read', {
  timeout: 30_000,
  skip: !hasFfmpeg && 'ffmpeg is not installed',
}, async () => {
  const secret = join(outside, 'secret.mp4');
  const made = spawnSync('ffmpeg', [
    '-loglevel',
    'error',
    '-f',
    'lavfi',
    '-i',
    'testsrc=size=64x64:rate=5',
    '-frames:v',
    '2',
    '-pix_fmt',
    'yuv420p',
    secret,
  ]);
  assert.equal(made.status, 0, made.stderr.toString());
  const dir = join(inbox, 'video-link');
  mkdirSync(dir);
  symlinkSync(secret, join(dir, 'clip.mp4'));
  writeFileSync(join(dir, 'job.json'), JSON.stringify(stylize));
  const err = await waitJson(join(dir, 'error.json'), () => true);
  assert.equal(err.code, 'E_FORBIDDEN_PATH', String(err.message));
  assert.match(String(err.message), /symbolic link/);
  assert.ok(!existsSync(join(dir, 'status.json')));
});

test('a symlinked out/ is refused: nothing is written outside the job folder', { timeout: 30_000 }, async () => {
  const dir = join(inbox, 'out-link');
  await frames(dir, 2);
  const target = join(outside, 'outdir');
  mkdirSync(target);
  symlinkSync(target, join(dir, 'out'));
  writeFileSync(join(dir, 'job.json'), JSON.stringify(stylize));
  const err = await waitJson(join(dir, 'error.json'), () => true);
  assert.equal(err.code, 'E_FORBIDDEN_PATH', String(err.message));
  assert.deepEqual(readdirSync(target), []);
});

test('a job folder that is a symlink is not taken and nothing is written into it', { timeout: 30_000 }, async () => {
  const target = join(outside, 'jobdir');
  await frames(target, 2);
  writeFileSync(join(target, 'job.json'), JSON.stringify(stylize));
  symlinkSync(target, join(inbox, 'folder-link'));
  // A real job folder after it is done: the watcher has looked at everything by then (rescans included).
  const dir = join(inbox, 'after-folder-link');
  await frames(dir, 1);
  writeFileSync(join(dir, 'job.json'), JSON.stringify(stylize));
  await waitJson(join(dir, 'status.json'), (s) => s.state === 'done');
  await new Promise((r) => setTimeout(r, 3500)); // one full rescan
  assert.deepEqual(readdirSync(target).sort(), ['f1.png', 'f2.png', 'job.json']);
});

test('job.json linked to a file outside is refused, and error.json holds none of that file', {
  timeout: 30_000,
}, async () => {
  writeFileSync(join(outside, 'secret.txt'), 'TOPSECRET-4242 the first bytes of a private file');
  const dir = join(inbox, 'json-link');
  await frames(dir, 1);
  symlinkSync(join(outside, 'secret.txt'), join(dir, 'job.json'));
  const err = await waitJson(join(dir, 'error.json'), () => true);
  assert.equal(err.code, 'E_BAD_INPUT');
  assert.ok(!readFileSync(join(dir, 'error.json'), 'utf8').includes('TOPSECRET'), JSON.stringify(err));
});

test('a FIFO named job.json does not stall the watcher', { timeout: 30_000 }, async () => {
  const dir = join(inbox, 'fifo');
  mkdirSync(dir);
  const fifo = join(dir, 'job.json');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  fifos.push(fifo);
  await new Promise((r) => setTimeout(r, 300));
  const next = join(inbox, 'after-fifo');
  await frames(next, 1);
  writeFileSync(join(next, 'job.json'), JSON.stringify(stylize));
  await waitJson(join(next, 'status.json'), (s) => s.state === 'done', 20_000);
  const err = await waitJson(join(dir, 'error.json'), () => true, 10_000);
  assert.equal(err.code, 'E_BAD_INPUT');
  assert.match(String(err.message), /not a regular file/);
});

test('a job folder deleted mid-job is not recreated: the job ends cancelled, saying why', {
  timeout: 30_000,
}, async () => {
  const dir = join(inbox, 'deleted');
  await frames(dir, 5);
  executor.gate(2);
  executor.pace(100);
  writeFileSync(join(dir, 'job.json'), JSON.stringify(stylize));
  await executor.waiting();
  const status = await waitJson(join(dir, 'status.json'), () => true);
  rmSync(dir, { recursive: true, force: true });
  executor.open();
  const job = d.daemon.queue.get(String(status.job));
  for (let i = 0; i < 200 && !['done', 'failed', 'cancelled'].includes(job.status.state); i++)
    await new Promise((r) => setTimeout(r, 50));
  await d.daemon.watchers[0]!.idle();
  executor.pace(0);
  assert.equal(job.status.state, 'cancelled');
  assert.match(job.status.error?.message ?? '', /folder .* was removed/);
  assert.ok(!existsSync(dir), 'the folder was not brought back');
});
