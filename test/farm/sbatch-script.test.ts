/**
 * The batch scripts and the plan, without a cluster: quoting survives odd prompts (bash runs the script), the
 * GPU gres goes to the fine-tune and stylize but not the assembly, a chunk's range is computed from the array
 * task id, and the plan submits only what the shared folder lacks.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { arraySpec, planStages } from '../../src/farm/plan.js';
import { shellQuote, stageScript } from '../../src/farm/sbatch-script.js';
import type { FarmSpec } from '../../src/farm/spec.js';

const spec: FarmSpec = {
  version: 1,
  name: 'shot',
  createdAt: '2026-01-01T00:00:00.000Z',
  shared: '/shared/shot.farm',
  input: { original: '/in', kind: 'folder', names: Array.from({ length: 11 }, (_, i) => `f${i}.png`) },
  output: { path: '/out.mp4', kind: 'video' },
  adapter: { path: '/shared/shot.farm/adapter.safetensors', given: false },
  chunk: 4,
  command: ['/usr/bin/node', '/opt/vidprior/dist/cli/main.js'],
  finetuneArgs: ['--prompt=x'],
  stylizeArgs: ['--prompt=it\'s a "watercolor" $HOME'],
  scheduler: { partition: 'gpu', gres: 'gpu:1', time: '01:00:00', extra: ['--qos=high'] },
};

test('shellQuote round-trips through bash', () => {
  for (const word of ["it's", 'a "b" $HOME `x`', 'plain-word', '', 'back\\slash']) {
    const r = spawnSync('bash', ['-c', `printf %s ${shellQuote(word)}`], { encoding: 'utf8' });
    assert.equal(r.stdout, word);
  }
});

test('the scripts: directives per stage, the chunk range from the array task id', () => {
  const stylize = stageScript(spec, 'stylize');
  assert.match(stylize, /^#SBATCH --gres=gpu:1$/m);
  assert.match(stylize, /^#SBATCH --partition=gpu$/m);
  assert.match(stylize, /^#SBATCH --qos=high$/m);
  assert.match(stylize, /^#SBATCH --requeue$/m);
  assert.doesNotMatch(stageScript(spec, 'assemble'), /gres/);
  assert.match(
    stageScript(spec, 'finetune'),
    /finetune --prompt=x --resume --output=\/shared\/shot.farm\/adapter.safetensors$/m,
  );
  // Run the stylize body with a stand-in for the vidprior command: it prints its arguments.
  const body = stylize.replace(/exec \S+ \S+ /, 'printf "%s\\n" ');
  for (const [task, range] of [
    ['0', '0-3'],
    ['2', '8-10'],
  ]) {
    const r = spawnSync('bash', ['-c', body], { encoding: 'utf8', env: { ...process.env, SLURM_ARRAY_TASK_ID: task } });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [
      'stylize',
      `--prompt=it's a "watercolor" $HOME`,
      `--frame-range=${range}`,
      '--skip-existing',
    ]);
  }
});

test('the plan and the --array value', () => {
  assert.equal(arraySpec([0, 1, 2, 3, 7, 9, 10]), '0-3,7,9-10');
  const progress = { adapterReady: false, framesDone: 0, framesTotal: 11, missingChunks: [0, 1, 2], assembled: false };
  assert.deepEqual(
    planStages(progress).map((s) => s.name),
    ['finetune', 'stylize', 'assemble'],
  );
  assert.deepEqual(planStages({ ...progress, adapterReady: true, missingChunks: [2] }), [
    { name: 'stylize', chunks: [2] },
    { name: 'assemble' },
  ]);
  assert.deepEqual(planStages({ ...progress, adapterReady: true, missingChunks: [] }), [{ name: 'assemble' }]);
  assert.deepEqual(planStages({ ...progress, missingChunks: [], assembled: true }), []);
});
