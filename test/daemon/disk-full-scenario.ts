// Run by disk-full.test.ts inside a private mount namespace, with argv[2] a small tmpfs: a daemon whose data
// dir fills up. Prints one JSON line with what each step saw.
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { VidpriorError } from '../../src/errors.js';
import { startTestDaemon, testPng } from './helpers.js';
import { scriptedExecutor } from './scripted-executor.js';

const dataDir = join(process.argv[2]!, 'data');

/** Writes zeros until the filesystem is full. */
function fillDisk(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(16 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

const result: Record<string, unknown> = {};
const executor = scriptedExecutor(() => testPng(3, 64, 64));
let d = await startTestDaemon({ dataDir, executors: [executor] });
let c = await d.connect();
const png = await testPng(0, 64, 64);

// 1. A submit larger than the space left: E_IO naming the full disk; nothing is left behind; the daemon serves on.
const big = Array.from({ length: 400 }, (_, i) => ({
  name: `f${i}.png`,
  png: Buffer.concat([png, Buffer.alloc(8 * 1024, i)]),
}));
try {
  await c.submit({ kind: 'stylize', params: { prompt: 'x' }, frames: big });
  result.submit = { code: 'none' };
} catch (err) {
  result.submit = { code: (err as VidpriorError).code, message: (err as Error).message };
}
result.listedAfterSubmit = (await c.listJobs()).length;

// 2. A job that fails because the disk filled while it ran, and whose failure cannot be saved in state.json.
executor.gate(0);
const job = await c.submit({ kind: 'stylize', params: { prompt: 'y' }, frames: [{ name: 'a.png', png }] });
await executor.waiting();
fillDisk(join(process.argv[2]!, 'filler'));
executor.open();
try {
  await job.done;
  result.job = { code: 'none' };
} catch (err) {
  result.job = { code: (err as VidpriorError).code, message: (err as Error).message };
}
await d.close();

// 3. Space again, a restart: the failed job stays failed and does not run again.
rmSync(join(process.argv[2]!, 'filler'));
const again = scriptedExecutor(() => testPng(3, 64, 64));
d = await startTestDaemon({ dataDir, executors: [again] });
c = await d.connect();
await new Promise((r) => setTimeout(r, 300));
result.afterRestart = { state: (await c.getJob(job.id)).state, runs: again.runs };
await d.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
