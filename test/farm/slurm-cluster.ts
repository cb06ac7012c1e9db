/**
 * A one-node Slurm for tests: slurmctld and slurmd in the foreground (children of the test, so they are
 * stopped by pid), a slurm.conf with this machine's hostname and 2 CPUs, every state/spool/log file in one
 * temporary folder, no munge (AuthType=auth/none). `stop()` cancels what is queued, waits for the tasks to
 * end, stops both daemons and removes the folder; call it in a `finally`/`after`.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

const BINARIES = ['slurmctld', 'slurmd', 'sbatch', 'squeue', 'scancel', 'sinfo'];

/** Why a Slurm test cannot run here, or null when it can. */
export function slurmMissing(): string | null {
  const absent = BINARIES.filter((b) => spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0);
  if (absent.length) return `Slurm is not installed (missing ${absent.join(', ')}; Debian: slurm-wlm)`;
  const version = spawnSync('slurmctld', ['-V'], { encoding: 'utf8' }).stdout ?? '';
  if (!/slurm/i.test(version)) return `slurmctld -V printed no version (${version.trim()})`;
  return null;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolvePort(port));
    });
  });
}

export interface SlurmCluster {
  dir: string;
  /** SLURM_CONF (and PATH) for the client commands and vidprior. */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

function exited(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      done();
    }, ms);
    child.once('exit', () => {
      clearTimeout(timer);
      done();
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startSlurm(cpus = 2): Promise<SlurmCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'slurm-'));
  for (const d of ['state', 'spool', 'log']) mkdirSync(join(dir, d));
  const node = hostname().split('.')[0]!;
  const user = userInfo().username;
  const conf = join(dir, 'slurm.conf');
  writeFileSync(
    conf,
    [
      'ClusterName=vidpriortest',
      `SlurmctldHost=${node}`,
      `SlurmctldPort=${await freePort()}`,
      `SlurmdPort=${await freePort()}`,
      'AuthType=auth/none',
      'CredType=cred/none',
      `SlurmUser=${user}`,
      `SlurmdUser=${user}`,
      `StateSaveLocation=${join(dir, 'state')}`,
      `SlurmdSpoolDir=${join(dir, 'spool')}`,
      `SlurmctldPidFile=${join(dir, 'slurmctld.pid')}`,
      `SlurmdPidFile=${join(dir, 'slurmd.pid')}`,
      `SlurmctldLogFile=${join(dir, 'log', 'slurmctld.log')}`,
      `SlurmdLogFile=${join(dir, 'log', 'slurmd.log')}`,
      'SelectType=select/cons_tres',
      'SelectTypeParameters=CR_CPU',
      'ProctrackType=proctrack/linuxproc',
      'TaskPlugin=task/none',
      'SchedulerType=sched/builtin',
      'SchedulerParameters=sched_interval=1',
      'ReturnToService=2',
      'MpiDefault=none',
      'JobCompType=jobcomp/none',
      'AccountingStorageType=accounting_storage/none',
      'PlugStackConfig=/dev/null',
      'KillWait=5',
      `NodeName=${node} CPUs=${cpus} State=UNKNOWN`,
      'PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP',
      '',
    ].join('\n'),
  );
  const env: NodeJS.ProcessEnv = { ...process.env, SLURM_CONF: conf };
  const daemons: ChildProcess[] = [];
  const queueEmpty = async (seconds: number): Promise<boolean> => {
    for (let i = 0; i < seconds * 4; i++) {
      const q = spawnSync('squeue', ['-h'], { env, encoding: 'utf8' });
      if (q.status !== 0 || !q.stdout.trim()) return true;
      await sleep(250);
    }
    return false;
  };
  const stop = async (): Promise<void> => {
    // Tasks run under slurmstepd, not under the daemons: let those finishing end (a task killed on its way out
    // leaves its temporary files), cancel the rest, then stop the daemons.
    if (!(await queueEmpty(10))) {
      spawnSync('scancel', ['--user', user], { env });
      await queueEmpty(10);
    }
    for (const d of daemons.reverse()) {
      d.kill('SIGTERM');
      await exited(d, 10_000);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const start = (cmd: string): void => {
      const child = spawn(cmd, ['-D', '-f', conf], { env, stdio: 'ignore' });
      daemons.push(child);
    };
    start('slurmctld');
    await sleep(500);
    start('slurmd');
    for (let i = 0; ; i++) {
      const s = spawnSync('sinfo', ['-h', '-o', '%t'], { env, encoding: 'utf8' });
      if (s.status === 0 && /^idle/m.test(s.stdout)) break;
      if (i > 120) throw new Error(`the test Slurm did not come up: ${s.stdout}${s.stderr}`);
      await sleep(250);
    }
    return { dir, env, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
