/**
 * One daemon per data dir. Two daemons on one data dir (a `serve` and a `watch`, say) would both resume the
 * same unfinished jobs and write the same files, so `<data-dir>/daemon.lock` names the daemon that holds it:
 * its pid and, on Linux, the boot and the process's start time (a pid reused by another process after a crash
 * or a reboot is not mistaken for the holder). A second daemon is refused with E_BUSY naming the holder; a lock
 * whose process is gone is taken over. The lock is created whole and atomically (a complete temporary file
 * hard-linked into place) and removed on close.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { VidpriorError } from '../src/errors.js';

export const LOCK_FILE = 'daemon.lock';

interface LockInfo {
  pid: number;
  token: string;
  host?: string;
  boot?: string;
  start?: string;
  since?: string;
}

/** Locks held by this process (a lock naming our own pid that is not here is stale: our pid was reused). */
const heldHere = new Set<string>();

/** Linux: the boot id and this process's start time (clock ticks since boot); undefined elsewhere. */
function processStart(pid: number): { boot?: string; start?: string } {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime), counted after the ")" that ends the command name (which may hold spaces).
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return { boot, start };
  } catch {
    return {};
  }
}

/** Whether the process that wrote `info` still runs. */
function holderAlive(info: LockInfo, path: string): boolean {
  if (!Number.isInteger(info.pid) || info.pid <= 0) return false;
  if (info.host !== undefined && info.host !== hostname()) return true; // another machine's: cannot tell, keep out
  if (info.pid === process.pid) return heldHere.has(path);
  try {
    process.kill(info.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  // Alive (or not ours to signal): the same process only if it started when the lock says.
  if (info.boot && info.start) {
    const now = processStart(info.pid);
    if (now.boot && (now.boot !== info.boot || now.start !== info.start)) return false;
  }
  return true;
}

async function readLock(path: string): Promise<LockInfo | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LockInfo;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    return { pid: 0, token: '' }; // unreadable: written by nothing we know, treated as stale
  }
}

export interface DataDirLock {
  release(): Promise<void>;
}

/** Takes the data dir's lock, or E_BUSY naming the daemon that holds it. */
export async function lockDataDir(dataDir: string, log: (line: string) => void): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true });
  const path = join(dataDir, LOCK_FILE);
  const info: LockInfo = {
    pid: process.pid,
    token: randomBytes(8).toString('hex'),
    host: hostname(),
    ...processStart(process.pid),
    since: new Date().toISOString(),
  };
  const tmp = `${path}.${info.token}.tmp`;
  await writeFile(tmp, `${JSON.stringify(info)}\n`);
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await createWhole(tmp, path, info);
        heldHere.add(path);
        return { release: () => release(path, info.token) };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = await readLock(path);
      if (!holder) continue; // released meanwhile
      if (holderAlive(holder, path)) {
        throw new VidpriorError(
          'E_BUSY',
          `the data dir ${dataDir} is in use by another vidprior daemon (pid ${holder.pid}${holder.since ? `, since ${holder.since}` : ''}): stop it first, or give this one another --data-dir`,
          { data_dir: dataDir, pid: holder.pid },
        );
      }
      // Stale: its process is gone. Remove it only if it is still the lock judged stale, then try again.
      const again = await readLock(path);
      if (again?.token !== holder.token || again?.pid !== holder.pid) continue;
      log(`taking over the lock of ${dataDir} left by pid ${holder.pid}, which is no longer running`);
      await rm(path, { force: true });
    }
    throw new VidpriorError(
      'E_BUSY',
      `could not take the lock of the data dir ${dataDir}: other daemons keep taking it`,
      {
        data_dir: dataDir,
      },
    );
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Creates `path` holding `info`, failing with EEXIST when it exists; by hard link where the filesystem has them. */
async function createWhole(tmp: string, path: string, info: LockInfo): Promise<void> {
  try {
    await link(tmp, path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
    await writeFile(path, `${JSON.stringify(info)}\n`, { flag: 'wx' });
  }
}

async function release(path: string, token: string): Promise<void> {
  heldHere.delete(path);
  const holder = await readLock(path);
  if (holder?.token === token) await rm(path, { force: true });
}
