/**
 * Durable file writes for the job store and the watched folder: write a temporary file beside the target,
 * fsync it, rename it over the target, fsync the folder. A reader (or a daemon restarted after SIGKILL or a
 * power cut) sees the old file or the new one, never half of one.
 */
import { open, rename, rm, mkdir } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Atomically replaces `path` with `data`. `durable` adds the fsyncs (skip them for files that can be remade). */
export async function writeFileAtomic(path: string, data: Uint8Array | string, durable = true): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  if (durable) await syncDir(dirname(path));
}

export async function writeJsonAtomic(path: string, value: unknown, durable = true): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, durable);
}

/** fsync of a folder makes a rename in it durable. Some filesystems refuse it; the rename itself still happened. */
async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // EISDIR/EINVAL/EPERM on filesystems without directory fsync: nothing better to do.
  }
}
