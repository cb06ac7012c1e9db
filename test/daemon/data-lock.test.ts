// One daemon per data dir: a second one (serve or watch) exits saying which process holds it; a lock left by a
// dead process is taken over; closing releases it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VidpriorError } from '../../src/errors.js';
import { TEST_CACHE, startTestDaemon, tempDir, testPng } from './helpers.js';
import { scriptedExecutor } from './scripted-executor.js';

test('a second daemon on the same data dir is refused naming the first one’s pid, and runs none of its jobs', async () => {
  const dataDir = tempDir('lock');
  const executor = scriptedExecutor(() => testPng(1, 8, 8));
  const first = await startTestDaemon({ dataDir, executors: [executor] });
  try {
    executor.gate(0);
    const c = await first.connect();
    await c.submit({ kind: 'stylize', params: { prompt: 'x' }, frames: [{ png: await testPng(0, 8, 8) }] });
    await c.submit({ kind: 'stylize', params: { prompt: 'y' }, frames: [{ png: await testPng(0, 8, 8) }] });
    await executor.waiting();
    const runs = executor.runs;
    await assert.rejects(
      startTestDaemon({ dataDir, executors: [executor] }),
      (e: VidpriorError) =>
        e.code === 'E_BUSY' && e.message.includes(`pid ${process.pid}`) && e.message.includes(dataDir),
    );
    assert.equal(executor.runs, runs, 'the second daemon ran nothing');
    executor.open();
  } finally {
    await first.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('`vidprior watch` on a data dir a daemon holds exits at once with a message naming that daemon’s pid', async () => {
  const dataDir = tempDir('lock-cli');
  const inbox = tempDir('lock-inbox');
  const first = await startTestDaemon({ dataDir, executors: [scriptedExecutor(() => testPng(1, 8, 8))] });
  try {
    const child = spawn(process.execPath, ['dist/cli/main.js', 'watch', inbox, '--data-dir', dataDir, '--ep', 'cpu'], {
      env: { ...process.env, VIDPRIOR_CACHE_DIR: TEST_CACHE },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(null);
      }, 15_000);
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.notEqual(code, null, 'the second daemon kept running');
    assert.notEqual(code, 0);
    assert.match(stderr, new RegExp(`pid ${process.pid}`));
    assert.match(stderr, /E_BUSY/);
  } finally {
    await first.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(inbox, { recursive: true, force: true });
  }
});

test('a lock left by a process that is gone is taken over; closing releases the lock', async () => {
  const dataDir = tempDir('lock-stale');
  try {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const deadPid = Number(dead.stdout.toString());
    writeFileSync(join(dataDir, 'daemon.lock'), JSON.stringify({ pid: deadPid, token: 'old' }));
    const d = await startTestDaemon({ dataDir, executors: [scriptedExecutor(() => testPng(1, 8, 8))] });
    assert.equal(JSON.parse(readFileSync(join(dataDir, 'daemon.lock'), 'utf8')).pid, process.pid);
    await d.close();
    const again = await startTestDaemon({ dataDir, executors: [scriptedExecutor(() => testPng(1, 8, 8))] });
    await again.close();
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
