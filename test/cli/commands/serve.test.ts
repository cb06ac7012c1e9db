/**
 * `vidprior serve` on a port that is taken: one error line naming the port, a non-zero exit, no stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const CLI = resolve('dist/cli/main.js');

test('serve on a port in use says so, naming the port, without a stack trace', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-serve-cli-'));
  const taken = createServer();
  await new Promise<void>((done) => taken.listen(0, '127.0.0.1', done));
  try {
    const port = (taken.address() as AddressInfo).port;
    const r = await new Promise<{ status: number | null; stderr: string }>((done) => {
      // Asynchronous: the port's owner lives in this process and must keep answering.
      const child = spawn(process.execPath, [CLI, 'serve', '--port', String(port), '--data-dir', join(dir, 'data')], {
        env: { ...process.env, VIDPRIOR_CACHE_DIR: join(dir, 'cache') },
      });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => {
        stderr += b.toString();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('close', (status: number | null) => {
        clearTimeout(timer);
        done({ status, stderr });
      });
    });
    assert.notEqual(r.status, 0, r.stderr);
    assert.notEqual(r.status, null, `serve did not exit: ${r.stderr}`);
    const last = r.stderr.trim().split('\n').pop()!;
    assert.match(last, new RegExp(`^vidprior: error \\[E_BUSY\\]: .*port ${port} is in use`));
    assert.ok(!/^\s+at /m.test(r.stderr), r.stderr);
    assert.ok(!/Unhandled 'error' event/.test(r.stderr), r.stderr);
  } finally {
    await new Promise<void>((done) => taken.close(() => done()));
    rmSync(dir, { recursive: true, force: true });
  }
});
