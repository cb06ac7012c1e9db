// output_dir writes land inside the allowed folders as they are when each file is written: a planted symlink is
// replaced, not followed; a folder swapped for a symlink after submit receives nothing outside; the daemon's own
// folders (other jobs, adapters, watched folders) are never a target.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { ErrorMessage } from '../../protocol/messages.js';
import { rawClient, startTestDaemon, tempDir, testPng, type RawClient, type TestDaemon } from './helpers.js';
import { scriptedExecutor } from './scripted-executor.js';

const executor = scriptedExecutor(() => testPng(5, 8, 8));
let d: TestDaemon;
let allowed: string;
let outside: string;
let inbox: string;
before(async () => {
  allowed = tempDir('allowed');
  outside = tempDir('outside');
  inbox = tempDir('inbox');
  d = await startTestDaemon({ allowDirs: [allowed], watch: [inbox], watchStableMs: 100, executors: [executor] });
});
after(async () => {
  await d.close();
  for (const dir of [allowed, outside, inbox]) rmSync(dir, { recursive: true, force: true });
});

async function greeted(): Promise<RawClient> {
  const c = await rawClient(d.url);
  c.send({ type: 'hello', id: 0, protocol: 1 });
  assert.equal((await c.next()).type, 'welcome');
  return c;
}

/** Submits one 8×8 frame named f0.png with `output_dir`; resolves with the reply and, if accepted, the job's end. */
async function submit(c: RawClient, id: number, outputDir: string) {
  c.send({
    type: 'submit',
    id,
    kind: 'stylize',
    params: { prompt: 'x' },
    frames: [{ name: 'f0.png', png: await testPng(0, 8, 8) }],
    output_dir: outputDir,
  });
  const reply = await c.next();
  if (reply.type !== 'accepted') return { reply, end: null };
  let m = await c.next();
  while (m.type === 'progress' || m.type === 'frame') m = await c.next();
  return { reply, end: m };
}

test('a symlink planted where an output goes is replaced, not followed: the file it points to is untouched', async () => {
  const c = await greeted();
  const out = join(allowed, 'out');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(outside, 'victim.txt'), 'VICTIM');
  symlinkSync(join(outside, 'victim.txt'), join(out, 'f0.png'));
  const { end } = await submit(c, 1, out);
  assert.equal(end?.type, 'done', JSON.stringify(end));
  assert.equal(readFileSync(join(outside, 'victim.txt'), 'utf8'), 'VICTIM');
  assert.ok(lstatSync(join(out, 'f0.png')).isFile(), 'the output is a file of its own');
  c.ws.close();
});

test('output_dir swapped for a symlink after submit: nothing lands outside, the job fails E_FORBIDDEN_PATH', async () => {
  const c = await greeted();
  const out = join(allowed, 'out2');
  const target = join(outside, 'redirected');
  mkdirSync(out, { recursive: true });
  mkdirSync(target, { recursive: true });
  executor.gate(0);
  c.send({
    type: 'submit',
    id: 2,
    kind: 'stylize',
    params: { prompt: 'x' },
    frames: [{ name: 'f0.png', png: await testPng(0, 8, 8) }],
    output_dir: out,
  });
  assert.equal((await c.next()).type, 'accepted');
  await executor.waiting();
  renameSync(out, `${out}-before`);
  symlinkSync(target, out);
  executor.open();
  let m = await c.next();
  while (m.type === 'progress' || m.type === 'frame') m = await c.next();
  assert.equal(m.type, 'error', JSON.stringify(m));
  assert.equal((m as ErrorMessage).code, 'E_FORBIDDEN_PATH', (m as ErrorMessage).message);
  assert.deepEqual(readdirSync(target), []);
  c.ws.close();
});

test("output_dir may not point into the daemon's own folders: another job's outputs, adapters, a watched folder", async () => {
  const c = await greeted();
  const first = await submit(c, 3, join(allowed, 'out3'));
  assert.equal(first.end?.type, 'done');
  const other = (first.reply as { job: { id: string } }).job.id;
  const victim = join(d.dataDir, 'jobs', other, 'outputs');
  const before = readFileSync(join(victim, 'f0.png'));
  let id = 10;
  for (const dir of [victim, join(d.dataDir, 'jobs'), join(d.dataDir, 'adapters'), d.dataDir, join(inbox, 'shot')]) {
    const { reply } = await submit(c, id++, dir);
    assert.equal(reply.type, 'error', `${dir}: ${JSON.stringify(reply).slice(0, 200)}`);
    assert.equal((reply as ErrorMessage).code, 'E_FORBIDDEN_PATH', dir);
  }
  assert.deepEqual(readFileSync(join(victim, 'f0.png')), before, "the other job's output is unchanged");
  c.ws.close();
});
