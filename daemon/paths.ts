/**
 * Which paths the daemon may touch. A path from a client or a job.json is resolved (`..` removed, symlinks
 * followed with realpath) and must then lie inside one of the allowed root folders (also realpath'd), so
 * neither `../../etc/passwd` nor a symlink pointing out of the folder gets through; and outside the excluded
 * folders (the daemon's own: its data dir, watched folders), where no client may write. Writes are checked
 * again when they happen (output-dir.ts): a check at submit says nothing about the folder an hour later.
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

export interface PolicyOptions {
  /** Folders inside the roots that are off limits all the same. */
  exclude?: readonly string[];
  /** What the daemon does with these paths, for messages ("read", "write to"). */
  verb?: string;
}

export class PathPolicy {
  private readonly roots: string[];
  private readonly excluded: string[];
  private readonly verb: string;

  /**
   * @param roots folders paths may lie in (created or not)
   * @param base  relative paths are taken from here; without a base they are refused
   */
  constructor(
    roots: readonly string[],
    private readonly base?: string,
    options: PolicyOptions = {},
  ) {
    this.roots = roots.map((r) => realpathOrAncestor(resolve(r)));
    this.excluded = (options.exclude ?? []).map((r) => realpathOrAncestor(resolve(r)));
    this.verb = options.verb ?? 'read';
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
    this.checkReal(real, field, p);
    return real;
  }

  /** E_FORBIDDEN_PATH unless the already resolved `real` is inside a root and outside the excluded folders. */
  checkReal(real: string, field: string, given = real): void {
    if (!this.roots.some((root) => isInside(root, real))) {
      throw new VidpriorError(
        'E_FORBIDDEN_PATH',
        `${field} ${JSON.stringify(given)} is outside the folders this daemon may ${this.verb}`,
        { field },
      );
    }
    if (this.excluded.some((own) => isInside(own, real))) {
      throw new VidpriorError(
        'E_FORBIDDEN_PATH',
        `${field} ${JSON.stringify(given)} is inside the daemon's own folders (its data dir or a watched folder), which belong to jobs`,
        { field },
      );
    }
  }
}
