/**
 * The daemon's Slurm target: `vidprior serve --slurm [--slurm-partition …]` lets clients submit `farm` jobs
 * (daemon/jobs/farm-jobs.ts), which go to Slurm instead of the daemon's own worker.
 */
import { join, resolve } from 'node:path';
import type { SlurmTarget } from '../../daemon/jobs/farm-jobs.js';
import { VidpriorError } from '../../src/errors.js';

export interface SlurmServeArgs {
  slurm?: boolean;
  'slurm-shared-dir'?: string;
  'slurm-partition'?: string;
  'slurm-gres'?: string;
  'slurm-account'?: string;
  'slurm-time'?: string;
  'slurm-ep'?: string;
  'slurm-poll-s'?: number;
}

export const SLURM_SERVE_OPTIONS = {
  slurm: { type: 'boolean', default: false, describe: 'accept farm jobs and hand them to Slurm (sbatch on this host)' },
  'slurm-shared-dir': {
    type: 'string',
    describe: 'a folder every compute node sees, for farm jobs (default: <data-dir>/farm)',
  },
  'slurm-partition': { type: 'string', describe: 'partition of farm jobs (sbatch --partition)' },
  'slurm-gres': { type: 'string', describe: 'GPU resources of the fine-tune and stylize tasks, e.g. gpu:1' },
  'slurm-account': { type: 'string', describe: 'account of farm jobs (sbatch --account)' },
  'slurm-time': { type: 'string', describe: 'time limit of each farm task, e.g. 02:00:00' },
  'slurm-ep': {
    type: 'string',
    choices: ['auto', 'cuda', 'webgpu', 'cpu'],
    default: 'auto',
    describe: 'execution provider of the farm tasks',
  },
  'slurm-poll-s': { type: 'number', default: 5, describe: 'seconds between polls of Slurm for farm jobs' },
} as const;

/** The target from the options; undefined without --slurm. */
export function slurmTargetFromArgs(argv: SlurmServeArgs, dataDir: string): SlurmTarget | undefined {
  if (!argv.slurm) return undefined;
  const poll = argv['slurm-poll-s'] ?? 5;
  if (!(poll > 0)) throw new VidpriorError('E_BAD_REQUEST', `--slurm-poll-s must be positive, got ${poll}`);
  return {
    sharedDir: resolve(argv['slurm-shared-dir'] ?? join(dataDir, 'farm')),
    scheduler: {
      partition: argv['slurm-partition'],
      gres: argv['slurm-gres'],
      account: argv['slurm-account'],
      time: argv['slurm-time'],
    },
    ep: argv['slurm-ep'],
    pollSeconds: poll,
  };
}
