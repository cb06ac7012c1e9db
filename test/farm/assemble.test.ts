/**
 * The assembly of a video output: a farm job (run by the stand-in sbatch of fake-slurm.ts, which runs each task
 * at once) encodes the same video file, byte for byte, as `vidprior stylize` of the whole clip to a video.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { writeFakeSlurm } from './fake-slurm.js';

const CLI = resolve('dist/cli/main.js');
const CLIP = resolve('examples/clip');
const hasFfmpeg = spawnSync('sh', ['-c', 'command -v ffmpeg']).status === 0;
let tmp: string;
let env: NodeJS.ProcessEnv;

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'farm-assemble-'));
  writeFakeSlurm(join(tmp, 'bin'));
  env = {
    ...process.env,
    PATH: `${join(tmp, 'bin')}:${process.env.PATH}`,
    VIDPRIOR_CACHE_DIR: join(tmp, 'cache'),
    VIDPRIOR_DATA_DIR: join(tmp, 'data'),
    TMPDIR: tmp,
  };
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function vidprior(args: string[]): void {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
}

test('a farm job to a video gives the video of one `vidprior stylize`', {
  skip: hasFfmpeg ? false : 'ffmpeg not installed',
  timeout: 300_000,
}, () => {
  const adapter = join(tmp, 'a.safetensors');
  const common = ['-i', CLIP, '-p', 'ink', '--ep', 'cpu', '--seed', '5'];
  vidprior([
    'finetune',
    ...common,
    '--edit',
    `1=${join(CLIP, 'frame_003.png')}`,
    '--iters',
    '2',
    '--frames',
    '2',
    '-o',
    adapter,
  ]);
  const style = ['--steps', '6', '--adapter', adapter];
  vidprior(['stylize', ...common, ...style, '-o', join(tmp, 'one.mp4')]);
  vidprior(['farm', 'slurm', 'submit', ...common, ...style, '-o', join(tmp, 'farm.mp4'), '--chunk', '5']);
  assert.ok(readFileSync(join(tmp, 'one.mp4')).equals(readFileSync(join(tmp, 'farm.mp4'))), 'the videos differ');
  const summary = JSON.parse(readFileSync(join(tmp, 'farm.farm', 'summary.json'), 'utf8'));
  assert.deepEqual([summary.kind, summary.frames], ['video', 12]);
});
