/**
 * The small method run the farm tests compare against (examples/clip, one edit, few iterations and steps: seconds
 * on 2 cores), both as `vidprior run`/`farm slurm submit` arguments and as the protocol's params for a farm job.
 */
import { join, resolve } from 'node:path';

export const CLIP = resolve('examples/clip');
export const EDIT = join(CLIP, 'frame_001.png');

/** CLI arguments shared by `vidprior run` and `vidprior farm slurm submit` (add `-o`). */
export const METHOD_ARGS = [
  '-i',
  CLIP,
  '--edit',
  `2=${EDIT}`,
  '-p',
  'a watercolor',
  '--iters',
  '2',
  '--frames',
  '2',
  '--steps',
  '8',
  '--seed',
  '3',
  '--ep',
  'cpu',
];

/** The same settings as a `farm` job's params (the daemon's chunk size added). */
export const METHOD_PARAMS = { prompt: 'a watercolor', iters: 2, train_frames: 2, steps: 8, seed: 3, chunk: 6 };
