/**
 * File access that cannot be redirected by symbolic links or by folders swapped under the daemon's feet.
 *
 * A `PinnedDir` is a folder opened once (O_DIRECTORY | O_NOFOLLOW: a symlink as its last part is refused) and
 * kept open: on Linux every later access goes through `/proc/self/fd/<fd>/<name>`, which the kernel resolves
 * from the open folder itself, so renaming or replacing the folder's path afterwards changes nothing. `realPath`
 * says where the folder really is (to check it against allowed roots), `gone` whether it was deleted. Files are
 * written to a temporary name created exclusively without following links, then renamed over the target: a
 * symlink planted at the target is replaced, never followed. Elsewhere (no /proc) the folder's real path is
 * used, checked when the folder is opened.
 *
 * `readRegularFile` opens without following a final symlink and without blocking (a FIFO would stall the
 * reader forever), then checks it is a regular file of bounded size before reading it.
 */
import { constants, existsSync } from 'node:fs';
import { type FileHandle, mkdir, open, readlink, realpath, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { VidpriorError } from '../errors.js';

const PROC_FD = process.platform === 'linux' && existsSync('/proc/self/fd');
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const NEW_FILE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

function ioError(what: string, path: string, err: unknown): VidpriorError {
  const e = err as NodeJS.ErrnoException;
  const why =
    e.code === 'ELOOP' || e.code === 'ENOTDIR'
      ? 'it is a symbolic link or not a folder'
      : e.code === 'ENOSPC'
        ? 'the disk is full'
        : (e.code ?? e.message);
  const code = e.code === 'ELOOP' || e.code === 'ENOTDIR' ? 'E_FORBIDDEN_PATH' : 'E_IO';
  return new VidpriorError(code, `cannot ${what} ${path}: ${why}`, { path }, { cause: err });
}

export class PinnedDir {
  private constructor(
    private readonly handle: FileHandle,
    /** Where the folder is (the path it had when opened, resolved; for messages and root checks). */
    readonly realPath: string,
    /** How its entries are reached: /proc/self/fd/<fd> on Linux, else the real path. */
    private readonly base: string,
  ) {}

  /** Opens an existing folder; E_FORBIDDEN_PATH when `path`'s last part is a symlink or not a folder. */
  static async open(path: string): Promise<PinnedDir> {
    let handle: FileHandle;
    try {
      handle = await open(path, DIR_FLAGS);
    } catch (err) {
      throw ioError('open the folder', path, err);
    }
    try {
      const proc = `/proc/self/fd/${handle.fd}`;
      const real = PROC_FD ? await readlink(proc) : await realpath(path);
      return new PinnedDir(handle, real, PROC_FD ? proc : real);
    } catch (err) {
      await handle.close();
      throw ioError('open the folder', path, err);
    }
  }

  /** True when the folder was deleted since it was opened. */
  async gone(): Promise<boolean> {
    return (await this.handle.stat()).nlink === 0;
  }

  /** Device and inode: the folder's identity, whatever its path. */
  async identity(): Promise<string> {
    const st = await this.handle.stat();
    return `${st.dev}:${st.ino}`;
  }

  /** A sub-folder (made if missing and `create`), pinned in turn; a symlink there is refused. */
  async subdir(name: string, create: boolean): Promise<PinnedDir> {
    checkName(name);
    if (create) {
      try {
        await mkdir(join(this.base, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError('make the folder', this.show(name), err);
      }
    }
    return PinnedDir.open(join(this.base, name));
  }

  /** Writes `name` in this folder atomically (temporary file, then rename over it; a symlink there is replaced). */
  async writeFile(name: string, data: Uint8Array | string, durable = true): Promise<void> {
    checkName(name);
    const tmp = join(this.base, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      const fh = await open(tmp, NEW_FILE_FLAGS, 0o644);
      try {
        await fh.writeFile(data);
        if (durable) await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, join(this.base, name));
      if (durable) await this.handle.sync().catch(() => {});
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {});
      throw ioError('write', this.show(name), err);
    }
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => {});
  }

  private show(name: string): string {
    return join(this.realPath, name);
  }
}

function checkName(name: string): void {
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0'))
    throw new VidpriorError('E_INTERNAL', `${JSON.stringify(name)} is not a file name`);
}

/**
 * The bytes of a regular file, read without following a final symlink and without blocking on a FIFO or device.
 * E_BAD_INPUT (naming `field`) for anything else, E_TOO_LARGE over `maxBytes`.
 */
export async function readRegularFile(path: string, field: string, maxBytes: number): Promise<Buffer> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ELOOP' ? 'it is a symbolic link' : code === 'ENOENT' ? 'it does not exist' : code;
    throw new VidpriorError('E_BAD_INPUT', `${field} cannot be read: ${why}`, { field }, { cause: err });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile())
      throw new VidpriorError('E_BAD_INPUT', `${field} is not a regular file (a folder, FIFO or device)`, { field });
    if (st.size > maxBytes)
      throw new VidpriorError('E_TOO_LARGE', `${field} is ${st.size} bytes, more than the limit of ${maxBytes}`, {
        field,
        bytes: st.size,
        limit: maxBytes,
      });
    return await fh.readFile();
  } catch (err) {
    if (err instanceof VidpriorError) throw err;
    throw new VidpriorError('E_IO', `${field} cannot be read: ${(err as Error).message}`, { field }, { cause: err });
  } finally {
    await fh.close();
  }
}
