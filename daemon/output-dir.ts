/**
 * Copies of a job's output frames in its `output_dir` (a local client's folder). Checked at submit, and again at
 * every write: the folder is resolved and opened (a symlink as its last part refused) and the open folder must
 * still lie inside the allowed folders and outside the daemon's own; the file is written there by temporary name
 * and rename, so a symlink planted at the file's name is replaced, never followed (src/io/pinned-dir.ts).
 */
import { mkdir } from 'node:fs/promises';
import { VidpriorError } from '../src/errors.js';
import { PinnedDir } from '../src/io/pinned-dir.js';
import type { PathPolicy } from './paths.js';

export async function writeToOutputDir(
  dir: string,
  name: string,
  data: Uint8Array,
  policy: PathPolicy | undefined,
): Promise<void> {
  if (!policy)
    throw new VidpriorError('E_FORBIDDEN_PATH', `output_dir ${dir}: this daemon writes to no folder of a client`, {
      output_dir: dir,
    });
  // 1. The path as it resolves now (a folder or an ancestor swapped for a symlink is caught here).
  policy.check(dir, 'output_dir');
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new VidpriorError(
      'E_IO',
      `cannot make output_dir ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { output_dir: dir },
      { cause: err },
    );
  }
  // 2. The folder actually opened (a swap between the check and the open is caught here).
  const pinned = await PinnedDir.open(dir);
  try {
    policy.checkReal(pinned.realPath, 'output_dir', dir);
    await pinned.writeFile(name, data);
  } finally {
    await pinned.close();
  }
}
