/**
 * Submitting without a cluster: a fake Slurm (every call recorded) checks the order and dependencies of the
 * stages, resume's choice of what to submit again, and that bad input is refused before sbatch is ever called
 * (also from the command line, with a recording `sbatch` on PATH, and with no sbatch at all).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { prepareFarm, type FarmRequest } from '../../src/farm/prepare.js';
import { type CommandResult, Slurm } from '../../src/farm/slurm.js';
import { farmPaths } from '../../src/farm/spec.js';
import { readState } from '../../src/farm/state.js';
import { resumeFarm, submitFarm } from '../../src/farm/submit.js';
import type { VidpriorError } from '../../src/errors.js';

const CLI = resolve('dist/cli/main.js');
const CLIP = resolve('examples/clip');
let tmp: string;

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'farm-submit-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A Slurm that numbers jobs from 100 and answers squeue from `queue`. */
function fakeSlurm(queue: string[] = []): { slurm: Slurm; calls: string[][] } {
  const calls: string[][] = [];
  let next = 100;
  const slurm = new Slurm(async (cmd, args): Promise<CommandResult> => {
    calls.push([cmd, ...args]);
    if (cmd === 'sbatch' && args[0] === '--version') return { code: 0, stdout: 'slurm 22.05.8\n', stderr: '' };
    if (cmd === 'sbatch') return { code: 0, stdout: `${next++}\n`, stderr: '' };
    if (cmd === 'squeue') return { code: 0, stdout: queue.join('\n'), stderr: '' };
    return { code: 0, stdout: '', stderr: '' };
  });
  return { slurm, calls };
}

function request(name: string, over: Partial<FarmRequest> = {}): FarmRequest {
  return {
    input: CLIP,
    output: join(tmp, name, 'out.mp4'),
    edits: [{ frame: 2, path: join(CLIP, 'frame_001.png') }],
    chunk: 5,
    command: ['node', 'main.js'],
    finetuneArgs: ['--prompt=x'],
    stylizeArgs: ['--prompt=x'],
    scheduler: { partition: 'gpu', gres: 'gpu:1' },
    ...over,
  };
}

test('submit: fine-tune, then the array after it, then the assembly after the array', async () => {
  const { slurm, calls } = fakeSlurm();
  const spec = await prepareFarm(request('one'), slurm);
  assert.equal(spec.shared, join(tmp, 'one', 'out.farm'));
  assert.equal(spec.input.names.length, 12);
  const { submission } = await submitFarm(spec, slurm);
  const sb = calls.filter((c) => c[0] === 'sbatch' && c[1] === '--parsable');
  assert.deepEqual(
    sb.map((c) => c.slice(2)),
    [
      [join(spec.shared, 'scripts', 'finetune.sbatch')],
      ['--dependency=afterok:100', '--array=0-2', join(spec.shared, 'scripts', 'stylize.sbatch')],
      ['--dependency=afterok:101', join(spec.shared, 'scripts', 'assemble.sbatch')],
    ],
  );
  assert.deepEqual(submission, {
    ...submission,
    finetune: '100',
    stylize: { job: '101', chunks: [0, 1, 2] },
    assemble: '102',
  });
  assert.equal((await readState(spec)).submissions.length, 1);
});

test('resume: only the chunks that lack frames, after cancelling what still waits', async () => {
  const { slurm } = fakeSlurm();
  const adapter = join(tmp, 'given.safetensors');
  writeFileSync(adapter, 'weights');
  const spec = await prepareFarm(request('two', { adapter }), slurm);
  await submitFarm(spec, slurm);
  // Chunks 0 and 2 are done; chunk 1 lost a frame; the assembly waits forever.
  for (const name of spec.input.names.filter((_, i) => i !== 7))
    writeFileSync(join(farmPaths(spec.shared).frames, name), 'png');
  const waiting = fakeSlurm(['101|PENDING|DependencyNeverSatisfied']);
  const { submission } = await resumeFarm(spec, waiting.slurm);
  assert.ok(
    waiting.calls.some((c) => c[0] === 'scancel' && c[1] === '101'),
    JSON.stringify(waiting.calls),
  );
  assert.deepEqual(submission?.stylize?.chunks, [1]);
  assert.equal(submission?.finetune, undefined, 'a given adapter is never trained');

  const busy = fakeSlurm(['100_1|RUNNING|None']);
  await assert.rejects(resumeFarm(spec, busy.slurm), (e: VidpriorError) => e.code === 'E_BUSY');
});

test('bad input is refused before sbatch is called', async () => {
  const cases: [Partial<FarmRequest>, string, RegExp][] = [
    [{ input: join(tmp, 'nope') }, 'E_BAD_INPUT', /input not found/],
    [{ chunk: 0 }, 'E_BAD_REQUEST', /--chunk/],
    [{ output: join(tmp, 'x.gif') }, 'E_BAD_REQUEST', /folder or a video/],
    [{ edits: [{ frame: 1, path: join(tmp, 'missing.png') }] }, 'E_BAD_INPUT', /does not exist/],
    [{ edits: [{ frame: 40, path: join(CLIP, 'frame_001.png') }] }, 'E_BAD_REQUEST', /outside the clip/],
    [{ adapter: join(tmp, 'none.safetensors') }, 'E_BAD_INPUT', /adapter/],
  ];
  for (const [over, code, message] of cases) {
    const { slurm, calls } = fakeSlurm();
    await assert.rejects(prepareFarm(request('bad', over), slurm), (e: VidpriorError) => {
      assert.equal(e.code, code, e.message);
      assert.match(e.message, message);
      return true;
    });
    assert.equal(calls.filter((c) => c[0] === 'sbatch' && c[1] !== '--version').length, 0);
  }
});

test('the command line: bad input never reaches sbatch; no sbatch on PATH is one clear error', () => {
  const bin = join(tmp, 'bin');
  mkdirSync(bin, { recursive: true });
  const log = join(tmp, 'sbatch-calls');
  writeFileSync(join(bin, 'sbatch'), `#!/bin/sh\necho "$@" >> '${log}'\necho 7\n`);
  chmodSync(join(bin, 'sbatch'), 0o755);
  const submit = (args: string[], path: string) =>
    spawnSync(process.execPath, [CLI, 'farm', 'slurm', 'submit', '-p', 'x', ...args], {
      encoding: 'utf8',
      env: { ...process.env, PATH: path, VIDPRIOR_DATA_DIR: join(tmp, 'data') },
    });
  const withFake = `${bin}:${process.env.PATH}`;
  for (const args of [
    ['-i', join(tmp, 'nothing'), '-o', join(tmp, 'o1')],
    ['-i', CLIP, '-o', join(tmp, 'o2'), '--edit', `1=${join(tmp, 'no.png')}`],
    ['-i', CLIP, '-o', join(tmp, 'o3'), '--chunk', '-1'],
    ['-i', CLIP, '-o', join(tmp, 'o4.gif')],
  ]) {
    const r = submit(args, withFake);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr.trim(), /^vidprior: error \[E_BAD_(REQUEST|INPUT)\]: /);
  }
  assert.ok(!existsSync(log), `sbatch was called: ${existsSync(log) ? readFileSync(log, 'utf8') : ''}`);

  const none = submit(['-i', CLIP, '-o', join(tmp, 'o5')], join(tmp, 'empty-path'));
  assert.equal(none.status, 2, none.stderr);
  assert.match(none.stderr, /\[E_SCHEDULER\]: sbatch is not on PATH/);
  assert.ok(!existsSync(join(tmp, 'o5.farm')), 'nothing written without a scheduler');
});
