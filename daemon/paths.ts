/**
 * Which paths the daemon may touch. A path from a client or a job.json is resolved (`..` removed, symlinks
 * followed with realpath) and must then lie inside one of the allowed root folders (also realpath'd), so
 * neither `../../etc/passwd` nor a symlink pointing out of the folder gets through.
 */
import { realpathSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, basename, join } from 'node:path';
import { VidpriorError } from '../src/errors.js';

/** realpath of `p`, or of its nearest existing ancestor joined with the rest (for files not written yet). */
export function realpathOrAncestor(p: string): string {
  const missing: string[] = [];
  let cur = p;
  for (;;) {
    try {
      return join(realpathSync(cur), ...missing.reverse());
    } catch {
      const parent = dirname(cur);
      if (parent === cur) return p;
      missing.push(basename(cur));
      cur = parent;
    }
  }
}

/** True when `child` is `root` or inside it (both already resolved). */
export function isInside(root: string, child: string): boolean {
  const rel = relative(root, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

export class PathPolicy {
  private readonly roots: string[];

  /**
   * @param roots folders paths may lie in (created or not)
   * @param base  relative paths are taken from here; without a base they are refused
   */
  constructor(
    roots: readonly string[],
    private readonly base?: string,
  ) {
    this.roots = roots.map((r) => realpathOrAncestor(resolve(r)));
  }

  get allowsAny(): boolean {
    return this.roots.length > 0;
  }

  /** The resolved real path of `p`, or E_FORBIDDEN_PATH naming `field`. */
  check(p: string, field: string): string {
    if (p.includes('\0')) throw new VidpriorError('E_FORBIDDEN_PATH', `${field} contains a NUL byte`, { field });
    if (!isAbsolute(p) && !this.base) {
      throw new VidpriorError('E_FORBIDDEN_PATH', `${field} ${JSON.stringify(p)} must be an absolute path`, { field });
    }
    const real = realpathOrAncestor(resolve(this.base ?? '/', p));
    if (!this.roots.some((root) => isInside(root, real))) {
      throw new VidpriorError(
        'E_FORBIDDEN_PATH',
        `${field} ${JSON.stringify(p)} is outside the folders this daemon may read`,
        { field },
      );
    }
    return real;
  }
}
