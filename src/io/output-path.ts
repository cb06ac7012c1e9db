/**
 * Checks an output path before any work starts, so that a typo (`-o wolf.mp4/x.mp4`, where wolf.mp4 is a file)
 * or a folder without write permission fails in milliseconds with the path named, not after a model load and a
 * whole video decoded.
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { VidpriorError } from '../errors.js';
import { isImageFile } from './frames.js';
import { isVideoFile } from './video.js';

export type OutputKind = 'file' | 'folder';

async function statOrNull(path: string) {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    // ENOTDIR: a component of the path is a file; the walk below names it.
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw new VidpriorError('E_IO', `cannot look at ${path}: ${(err as Error).message}`, { path }, { cause: err });
  }
}

async function writable(path: string): Promise<boolean> {
  try {
    await access(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Throws E_BAD_REQUEST when `path` cannot become a `kind` (a folder where a file is asked for, a file where
 * a folder is, a file among its parents) and E_IO when the place it would be made in cannot be written.
 * `flag` names the option in messages (default `--output`).
 */
export async function checkOutputPath(path: string, kind: OutputKind, flag = '--output'): Promise<void> {
  const full = resolve(path);
  const existing = await statOrNull(full);
  if (existing) {
    if (kind === 'folder' && !existing.isDirectory())
      throw new VidpriorError('E_BAD_REQUEST', `${flag} ${path} is a file, not a folder: choose a folder`, {
        output: path,
      });
    if (kind === 'file' && existing.isDirectory())
      throw new VidpriorError('E_BAD_REQUEST', `${flag} ${path} is a folder, not a file: name a file`, {
        output: path,
      });
    if (!(await writable(full)))
      throw new VidpriorError('E_IO', `${flag} ${path} cannot be written (permission denied)`, { output: path });
    return;
  }
  // The nearest part of the path that exists must be a folder we may write in (the rest is created).
  let parent = dirname(full);
  for (;;) {
    const st = await statOrNull(parent);
    if (st) {
      if (!st.isDirectory())
        throw new VidpriorError(
          'E_BAD_REQUEST',
          `${flag} ${path} cannot be created: ${parent} is a file, not a folder`,
          { output: path, file: parent },
        );
      if (!(await writable(parent)))
        throw new VidpriorError('E_IO', `${flag} ${path} cannot be created: ${parent} is not writable`, {
          output: path,
          folder: parent,
        });
      return;
    }
    const up = dirname(parent);
    if (up === parent) return;
    parent = up;
  }
}

/** What a frames output names: a video or a single .png is a file, anything else a folder of PNGs. */
export function frameOutputKind(path: string): OutputKind {
  return isVideoFile(path) || isImageFile(path) ? 'file' : 'folder';
}
