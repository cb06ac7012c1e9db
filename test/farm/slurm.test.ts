/**
 * A farm job on a real one-node Slurm (started by the test, 2 CPUs): the example clip with the embedded model.
 *   - fine-tune → stylize array → assembly gives frames byte-identical to `vidprior run` on one machine;
 *   - a stylize task cancelled mid-way (scancel of one array element) leaves the assembly waiting forever;
 *     `resume` submits only the missing chunks and the frames still come out byte-identical;
 *   - a partition Slurm does not know is refused with sbatch's own message.
 * Skips, saying why, where Slurm is not installed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readSafetensors } from '../../src/training/safetensors.js';
import { type SlurmCluster, slurmMissing, startSlurm } from './slurm-cluster.js';
import { METHOD_ARGS } from './method-fixture.js';
import { runCliSync } from '../cli/run-cli.js';

const missing = slurmMissing();
let cluster: SlurmCluster | null = null;
let tmp: string;
let env: NodeJS.ProcessEnv;

const vidprior = (args: string[]) => runCliSync(args, { env });

function resultOf(stdout: string): Record<string, unknown> {
  const line = stdout
    .trim()
    .split('\n')
    .filter((l) => l.includes('"event":"result"'))
    .pop();
  assert.ok(line, stdout);
  return JSON.parse(line);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(shared: string, phases: string[], seconds = 300): Promise<Record<string, unknown>> {
  for (let i = 0; i < seconds * 2; i++) {
    const r = vidprior(['farm', 'slurm', 'status', shared, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = resultOf(r.stdout);
    if (phases.includes(s.phase as string)) return s;
    await sleep(500);
  }
  const logs = join(shared, 'logs');
  const text = existsSync(logs) ? readdirSync(logs).map((f) => `${f}:\n${readFileSync(join(logs, f), 'utf8')}`) : [];
  assert.fail(`farm job ${shared} did not reach ${phases.join('/')} in ${seconds} s\n${text.join('\n')}`);
}

function assertSameFrames(expected: string, actual: string): void {
  const names = readdirSync(expected).sort();
  assert.deepEqual(readdirSync(actual).sort(), names);
  for (const n of names)
    assert.ok(readFileSync(join(expected, n)).equals(readFileSync(join(actual, n))), `${n} differs`);
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'farm-slurm-'));
  if (missing) return;
  cluster = await startSlurm(2);
  // The tasks' temporary files (a task killed mid-way may leave some) stay in this test's folder.
  mkdirSync(join(tmp, 'task-tmp'));
  env = {
    ...cluster.env,
    TMPDIR: join(tmp, 'task-tmp'),
    VIDPRIOR_CACHE_DIR: join(tmp, 'cache'),
    VIDPRIOR_DATA_DIR: join(tmp, 'data'),
    NO_COLOR: '1',
  };
});

after(async () => {
  try {
    await cluster?.stop();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('a farm job on Slurm gives the frames of `vidprior run`, also after a task is cancelled and resumed', {
  skip: missing ?? false,
  timeout: 900_000,
}, async () => {
  // 1. The reference: the whole method in one process.
  const ref = join(tmp, 'ref');
  const run = vidprior(['run', ...METHOD_ARGS, '-o', ref]);
  assert.equal(run.code, 0, run.stderr);

  // 2. The same on the farm: fine-tune, 3 stylize tasks of 4 frames, assembly.
  const out = join(tmp, 'farm-out');
  const sub = vidprior(['farm', 'slurm', 'submit', ...METHOD_ARGS, '-o', out, '--chunk', '4', '--json']);
  assert.equal(sub.code, 0, sub.stderr);
  const submitted = resultOf(sub.stdout) as { shared: string; submission: { stylize: { chunks: number[] } } };
  assert.equal(submitted.shared, join(tmp, 'farm-out.farm'));
  assert.deepEqual(submitted.submission.stylize.chunks, [0, 1, 2]);
  const done = await waitFor(submitted.shared, ['done', 'stopped']);
  assert.equal(done.phase, 'done', JSON.stringify(done));
  assertSameFrames(ref, out);
  // The adapter's weights are `run`'s (its metadata names other paths).
  const [a, b] = [
    await readSafetensors(`${ref}.adapter.safetensors`),
    await readSafetensors(join(submitted.shared, 'adapter.safetensors')),
  ];
  assert.deepEqual([...b.tensors.keys()], [...a.tensors.keys()]);
  for (const [k, t] of a.tensors) assert.deepEqual(b.tensors.get(k)!.data, t.data, k);
  const summary = JSON.parse(readFileSync(join(submitted.shared, 'summary.json'), 'utf8'));
  assert.equal(summary.frames, 12);

  // 3. With that adapter (no fine-tune job), 6 tasks of 2 frames; one is cancelled while it runs.
  const out2 = join(tmp, 'farm-out2');
  const sub2 = vidprior([
    'farm',
    'slurm',
    'submit',
    ...METHOD_ARGS,
    '--adapter',
    join(submitted.shared, 'adapter.safetensors'),
    '-o',
    out2,
    '--chunk',
    '2',
    '--json',
  ]);
  assert.equal(sub2.code, 0, sub2.stderr);
  const second = resultOf(sub2.stdout) as {
    shared: string;
    submission: { finetune?: string; stylize: { job: string } };
  };
  assert.equal(second.submission.finetune, undefined, 'no fine-tune with --adapter');
  const victim = `${second.submission.stylize.job}_4`;
  for (let i = 0; ; i++) {
    const q = spawnSync('squeue', ['-h', '-r', '-j', victim, '-o', '%T'], { env, encoding: 'utf8' });
    if (q.stdout.trim() === 'RUNNING') break;
    assert.ok(i < 600, `task ${victim} never ran: ${q.stdout}${q.stderr}`);
    await sleep(100);
  }
  assert.equal(spawnSync('scancel', [victim], { env }).status, 0);
  const stopped = await waitFor(second.shared, ['stopped', 'done']);
  assert.equal(stopped.phase, 'stopped', 'the assembly cannot run without the cancelled chunk');
  const progress = stopped.progress as { missingChunks: number[] };
  assert.deepEqual(progress.missingChunks, [4]);
  assert.ok(!existsSync(out2), 'nothing assembled');

  const res = vidprior(['farm', 'slurm', 'resume', second.submission.stylize.job, '--json']);
  assert.equal(res.code, 0, res.stderr);
  const resumed = resultOf(res.stdout) as { submission: { finetune?: string; stylize: { chunks: number[] } } };
  assert.deepEqual(resumed.submission.stylize.chunks, [4], 'only the missing chunk is submitted again');
  const final = await waitFor(second.shared, ['done', 'stopped']);
  assert.equal(final.phase, 'done', JSON.stringify(final));
  assertSameFrames(ref, out2);

  // 4. A partition Slurm does not know: sbatch's message, nothing left queued.
  const bad = vidprior([
    'farm',
    'slurm',
    'submit',
    ...METHOD_ARGS,
    '-o',
    join(tmp, 'bad'),
    '--partition',
    'nosuchpart',
  ]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /\[E_SCHEDULER\].*invalid partition/i);
  const q = spawnSync('squeue', ['-h'], { env, encoding: 'utf8' });
  assert.equal(q.stdout.trim(), '');
});
