// SIGKILL the daemon (a real `node dist/cli/main.js serve` child) in the middle of a stylize job, start it
// again on the same data dir: the job finishes, and its frames are byte-identical to an uninterrupted run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadAdapter } from '../../src/training/adapter.js';
import { VidpriorClient } from '../../protocol/client.js';
import type { Frame } from '../../protocol/messages.js';
import { TEST_CACHE, startTestDaemon, tempDir, testPng } from './helpers.js';

interface Child {
  proc: ChildProcess;
  url: string;
  log: string[];
}

/** Starts `vidprior serve --port 0` and waits for its "listening" line. */
async function serve(dataDir: string): Promise<Child> {
  const proc = spawn(
    process.execPath,
    ['dist/cli/main.js', 'serve', '--port', '0', '--data-dir', dataDir, '--ep', 'cpu', '--json'],
    {
      env: { ...process.env, VIDPRIOR_CACHE_DIR: TEST_CACHE },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const log: string[] = [];
  proc.stderr!.on('data', (b: Buffer) => log.push(b.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout! });
    lines.on('line', (l) => {
      log.push(l);
      try {
        const e = JSON.parse(l);
        if (e.event === 'listening') resolve(e.url);
      } catch {
        /* not JSON */
      }
    });
    proc.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${log.join('\n')}`)));
  });
  return { proc, url, log };
}

async function stop(child: Child, signal: NodeJS.Signals): Promise<void> {
  if (child.proc.exitCode !== null) return;
  const exited = new Promise((resolve) => child.proc.once('exit', resolve));
  child.proc.kill(signal);
  await exited;
}

const hex = (f: Frame) => Buffer.from(f.png).toString('hex');

test('SIGKILL mid-job, restart: every finished frame is kept and the job completes identical to an uninterrupted run', async () => {
  const dataDir = tempDir('resume');
  const frames = await Promise.all(
    Array.from({ length: 5 }, async (_, i) => ({ name: `shot-${i + 1}.png`, png: await testPng(i + 10, 64, 64) })),
  );
  const params = { prompt: 'a charcoal sketch', steps: 24, strength: 0.5, seed: 42 };
  let first: Child | null = await serve(dataDir);
  let second: Child | null = null;
  try {
    // 1. Submit, and kill the daemon with SIGKILL as soon as two frames are finished.
    const a = await VidpriorClient.connect(first.url);
    const job = await a.submit({ kind: 'stylize', params, frames });
    const before: Frame[] = [];
    await new Promise<void>((resolve) => {
      job.onFrame = (f) => {
        before.push(f);
        if (before.length === 2) resolve();
      };
    });
    await stop(first, 'SIGKILL');
    await assert.rejects(job.done, (e: Error & { code?: string }) => e.code === 'E_CONNECTION');
    first = null;
    assert.ok(before.length >= 2 && before.length < 5, `killed after ${before.length} frames`);

    // 2. Restart on the same data dir: the job resumes by itself; attach and collect the rest.
    second = await serve(dataDir);
    const b = await VidpriorClient.connect(second.url);
    const attached = await b.attach(job.id);
    const after = new Map<number, Frame>();
    attached.onFrame = (f) => after.set(f.index, f);
    const done = await attached.done;
    assert.equal(done.outputs.frames, 5);
    for (const f of before) {
      assert.equal(
        after.get(f.index)?.replay,
        true,
        `frame ${f.index} finished before the kill is replayed, not redone`,
      );
      assert.equal(hex(after.get(f.index)!), hex(f));
    }
    assert.ok(
      second.log.some((l) => l.includes('resuming 1 interrupted job')),
      'the daemon says it resumed the job',
    );

    // 3. The same job uninterrupted gives the same bytes for every frame.
    const ref = await b.submit({ kind: 'stylize', params, frames });
    const refFrames = new Map<number, Frame>();
    ref.onFrame = (f) => refFrames.set(f.index, f);
    await ref.done;
    for (let i = 0; i < 5; i++)
      assert.equal(hex(after.get(i)!), hex(refFrames.get(i)!), `frame ${i} differs from the uninterrupted run`);
    await b.close();
  } finally {
    if (first) await stop(first, 'SIGKILL');
    if (second) await stop(second, 'SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('SIGKILL mid-training, restart: finetune resumes from its last checkpoint to the same adapter as an uninterrupted run', async () => {
  const dataDir = tempDir('resume-train');
  const frames = await Promise.all(
    Array.from({ length: 3 }, async (_, i) => ({ name: `f${i}.png`, png: await testPng(i + 20, 64, 64) })),
  );
  const edits = [{ frame: 1, png: await testPng(30, 64, 64) }];
  const params = { prompt: 'a charcoal sketch', iters: 8, train_frames: 2, checkpoint_every: 3, seed: 4 };
  let first: Child | null = await serve(dataDir);
  let second: Child | null = null;
  try {
    const a = await VidpriorClient.connect(first.url);
    const job = await a.submit({ kind: 'finetune', params: { ...params, adapter_name: 'resumed' }, frames, edits });
    await new Promise<void>((resolve) => {
      job.onProgress = (p) => {
        if ((p.iteration ?? 0) >= 4 && p.stage === 'training') resolve();
      };
    });
    await stop(first, 'SIGKILL');
    first = null;

    second = await serve(dataDir);
    const b = await VidpriorClient.connect(second.url);
    const attached = await b.attach(job.id);
    const iterations: number[] = [];
    attached.onProgress = (p) => {
      if (p.iteration) iterations.push(p.iteration);
    };
    const done = await attached.done;
    assert.equal(done.outputs.adapter, 'resumed');
    assert.ok(
      iterations.length > 0 && Math.min(...iterations) > 1,
      `resumed from a checkpoint, not from iteration 1: ${iterations}`,
    );

    const ref = await b.submit({
      kind: 'finetune',
      params: { ...params, adapter_name: 'uninterrupted' },
      frames,
      edits,
    });
    await ref.done;
    const [resumed, uninterrupted] = await Promise.all(
      ['resumed', 'uninterrupted'].map((n) => loadAdapter(join(dataDir, 'adapters', `${n}.safetensors`))),
    );
    assert.deepEqual([...resumed!.weights.keys()], [...uninterrupted!.weights.keys()]);
    for (const [module, w] of resumed!.weights) {
      const u = uninterrupted!.weights.get(module)!;
      assert.deepEqual(
        Buffer.from(w.a.buffer, w.a.byteOffset, w.a.byteLength),
        Buffer.from(u.a.buffer, u.a.byteOffset, u.a.byteLength),
        `${module} A differs`,
      );
      assert.deepEqual(
        Buffer.from(w.b.buffer, w.b.byteOffset, w.b.byteLength),
        Buffer.from(u.b.buffer, u.b.byteOffset, u.b.byteLength),
        `${module} B differs`,
      );
    }
    await b.close();
  } finally {
    if (first) await stop(first, 'SIGKILL');
    if (second) await stop(second, 'SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a daemon stopped mid-job (SIGTERM path, in-process) resumes batched frames in their original groups: same bytes', async () => {
  const dataDir = tempDir('resume-batch');
  const frames = await Promise.all(
    Array.from({ length: 5 }, async (_, i) => ({ name: `b${i}.png`, png: await testPng(i + 40, 64, 64) })),
  );
  const params = { prompt: 'pastel', steps: 16, strength: 0.5, seed: 8, batch: 2 };
  try {
    let d = await startTestDaemon({ dataDir });
    const a = await d.connect();
    const job = await a.submit({ kind: 'stylize', params, frames });
    await new Promise<void>((resolve) => {
      job.onFrame = () => resolve();
    });
    await d.close(); // interrupts the job at its next step; it stays `running` on disk
    d = await startTestDaemon({ dataDir });
    const b = await d.connect();
    const resumed = new Map<number, string>();
    const attached = await b.attach(job.id);
    assert.equal(attached.job.state, 'running', 'the job was interrupted, not finished');
    attached.onFrame = (f) => resumed.set(f.index, hex(f));
    await attached.done;
    const ref = await b.submit({ kind: 'stylize', params, frames });
    const reference = new Map<number, string>();
    ref.onFrame = (f) => reference.set(f.index, hex(f));
    await ref.done;
    assert.equal(resumed.size, 5);
    for (let i = 0; i < 5; i++)
      assert.equal(resumed.get(i), reference.get(i), `frame ${i} differs from the uninterrupted run`);
    await d.close();
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
