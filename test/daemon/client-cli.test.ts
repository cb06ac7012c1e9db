// `vidprior submit` and `vidprior jobs` (real CLI processes) against a real daemon.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestDaemon, tempDir, testPng, type TestDaemon } from './helpers.js';
import { jsonLines, runCli } from '../cli/run-cli.js';

let d: TestDaemon;
let work: string;
before(async () => {
  d = await startTestDaemon();
  work = tempDir('cli');
  mkdirSync(join(work, 'in'));
  for (let i = 0; i < 2; i++) writeFileSync(join(work, 'in', `frame${i + 1}.png`), await testPng(i, 64, 64));
});
after(async () => {
  await d.close();
  rmSync(work, { recursive: true, force: true });
});

const cli = (args: string[]) => runCli(args);

test('submit --json streams progress and frames as JSON lines and writes the frames; jobs list/show/attach/cancel', async () => {
  const out = join(work, 'out');
  const r = await cli([
    'submit',
    '--url',
    d.url,
    '--json',
    '--input',
    join(work, 'in'),
    '--output',
    out,
    '--prompt',
    'ink',
    '--steps',
    '4',
    '--strength',
    '0.5',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const events = jsonLines(r.stdout);
  assert.ok(events.some((e) => e.event === 'progress'));
  assert.deepEqual(
    events.filter((e) => e.event === 'frame').map((e) => e.name),
    ['frame1.png', 'frame2.png'],
  );
  const result = events.at(-1)!;
  assert.equal(result.event, 'result');
  const id = result.job as string;
  assert.deepEqual(readdirSync(out).sort(), ['frame1.png', 'frame2.png']);

  const list = jsonLines((await cli(['jobs', 'list', '--url', d.url, '--json'])).stdout).at(-1)!;
  assert.ok((list.jobs as { id: string }[]).some((j) => j.id === id));
  const show = jsonLines((await cli(['jobs', 'show', id, '--url', d.url, '--json'])).stdout).at(-1)!;
  assert.equal((show.job as { state: string }).state, 'done');
  const again = join(work, 'again');
  const attach = await cli(['jobs', 'attach', id, '--url', d.url, '--json', '--output', again]);
  assert.equal(attach.code, 0, attach.stderr);
  assert.deepEqual(readdirSync(again).sort(), ['frame1.png', 'frame2.png'], 'attach replays the finished frames');
  assert.equal((await cli(['jobs', 'cancel', id, '--url', d.url])).code, 0);
});

test('CLI errors: a bad parameter and an unknown job print one line with the code and exit 2; no daemon is E_CONNECTION', async () => {
  const bad = await cli(['submit', '--url', d.url, '--input', join(work, 'in'), '--prompt', 'ink', '--strength', '2']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /vidprior: error \[E_BAD_REQUEST\]: params\.strength must be/);
  const missing = await cli(['jobs', 'show', 'j-20000101-000000-000000', '--url', d.url]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /\[E_NOT_FOUND\]/);
  const down = await cli(['jobs', 'list', '--url', 'ws://127.0.0.1:1/']);
  assert.match(down.stderr, /\[E_CONNECTION\] cannot reach the daemon|\[E_CONNECTION\]: cannot reach the daemon/);
  assert.equal(down.code, 1, 'an unreachable daemon is not a usage mistake');
});
