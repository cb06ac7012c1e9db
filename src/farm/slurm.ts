/**
 * The Slurm commands vidprior uses (sbatch, squeue, sacct, scontrol, scancel), run as child processes. Their
 * failures become E_SCHEDULER errors carrying Slurm's own message (a missing command says how to get it), so a
 * user reads "invalid partition specified" rather than an exit status.
 *
 * `run` is injectable: unit tests and the daemon's tests pass a fake and see every call.
 */
import { execFile } from 'node:child_process';
import { VidpriorError } from '../errors.js';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type RunCommand = (command: string, args: string[]) => Promise<CommandResult>;

/** Runs a command; a command that is not there throws E_SCHEDULER saying so. */
export const runCommand: RunCommand = (command, args) =>
  new Promise((resolvePromise, reject) => {
    execFile(command, args, { encoding: 'utf8', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: string | number }) | null;
      if (e && e.code === 'ENOENT') {
        reject(
          new VidpriorError(
            'E_SCHEDULER',
            `${command} is not on PATH: run this on a Slurm login node, or install Slurm's client commands (Debian: slurm-client)`,
            { command },
          ),
        );
        return;
      }
      resolvePromise({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr });
    });
  });

/** A job's state as Slurm names it (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, …). */
export interface TaskState {
  /** The id as Slurm prints it: 12, or 12_3 for task 3 of array job 12. */
  id: string;
  state: string;
  /** Why it waits (squeue's reason, e.g. Dependency, DependencyNeverSatisfied, Resources). */
  reason?: string;
}

const ACTIVE = ['PENDING', 'RUNNING', 'CONFIGURING', 'COMPLETING', 'REQUEUED', 'RESIZING', 'SUSPENDED', 'STOPPED'];

export function isActive(state: string): boolean {
  return ACTIVE.includes(state.split(' ')[0]!);
}

/** Slurm's message, one line: its `error:` lines, else the last line it printed. */
function slurmMessage(r: CommandResult): string {
  const lines = `${r.stderr}\n${r.stdout}`
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const errors = lines.filter((l) => /error/i.test(l));
  return (errors.length ? errors : lines.slice(-1)).join(' / ') || `exit status ${r.code}`;
}

export class Slurm {
  constructor(private readonly run: RunCommand = runCommand) {}

  /** Throws E_SCHEDULER when sbatch cannot be run at all (before anything is written or submitted). */
  async checkAvailable(): Promise<void> {
    const r = await this.run('sbatch', ['--version']);
    if (r.code !== 0) throw new VidpriorError('E_SCHEDULER', `sbatch --version failed: ${slurmMessage(r)}`);
  }

  /** Submits a batch script; returns the job id. */
  async sbatch(script: string, args: string[]): Promise<string> {
    const r = await this.run('sbatch', ['--parsable', ...args, script]);
    if (r.code !== 0) {
      throw new VidpriorError('E_SCHEDULER', `sbatch refused ${script}: ${slurmMessage(r)}`, {
        script,
        args,
        exitCode: r.code,
      });
    }
    const id = r.stdout.trim().split('\n').pop()?.split(';')[0]?.trim() ?? '';
    if (!/^\d+$/.test(id))
      throw new VidpriorError('E_SCHEDULER', `sbatch printed no job id: ${JSON.stringify(r.stdout)}`, { script });
    return id;
  }

  /** The queued or running tasks of these jobs (one entry per array task); finished ones are absent. */
  async queue(jobIds: string[]): Promise<TaskState[]> {
    if (jobIds.length === 0) return [];
    const r = await this.run('squeue', ['-h', '-r', '-j', jobIds.join(','), '-o', '%i|%T|%r']);
    // squeue exits 1 with "Invalid job id" once every listed job has left the queue: nothing is queued.
    if (r.code !== 0 && /invalid job id/i.test(r.stderr)) return [];
    if (r.code !== 0) throw new VidpriorError('E_SCHEDULER', `squeue failed: ${slurmMessage(r)}`, { jobIds });
    return parseLines(r.stdout, (f) => ({ id: f[0]!, state: f[1]!, reason: f[2] }));
  }

  /**
   * The states of finished tasks: from sacct when accounting is on, else from scontrol (which remembers jobs
   * for MinJobAge after they end). Tasks Slurm no longer knows are absent.
   */
  async history(jobIds: string[]): Promise<TaskState[]> {
    if (jobIds.length === 0) return [];
    const acct = await this.run('sacct', ['-n', '-P', '-X', '-j', jobIds.join(','), '-o', 'JobID,State']);
    if (acct.code === 0) return parseLines(acct.stdout, (f) => ({ id: f[0]!, state: f[1]!.split(' ')[0]! }));
    const found: TaskState[] = [];
    for (const id of jobIds) {
      const r = await this.run('scontrol', ['-o', 'show', 'job', id]);
      if (r.code !== 0) continue;
      for (const line of r.stdout.split('\n')) {
        const field = (name: string): string | undefined => new RegExp(`(?:^|\\s)${name}=(\\S+)`).exec(line)?.[1];
        const state = field('JobState');
        if (!state) continue;
        const task = field('ArrayTaskId');
        const jobId = field('ArrayJobId') ?? field('JobId')!;
        found.push({ id: task && task !== 'N/A' ? `${jobId}_${task}` : field('JobId')!, state });
      }
    }
    return found;
  }

  /** Cancels jobs or single array tasks (`12_3`). */
  async cancel(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const r = await this.run('scancel', ids);
    if (r.code !== 0) throw new VidpriorError('E_SCHEDULER', `scancel failed: ${slurmMessage(r)}`, { ids });
  }
}

function parseLines(text: string, make: (fields: string[]) => TaskState): TaskState[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => make(l.split('|')));
}
