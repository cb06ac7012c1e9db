/**
 * The Hugging Face hub cache layout as huggingface_hub (and so diffusers) writes it, which `models pull` writes
 * too so that either side finds the other's downloads:
 *
 *   <hub cache>/models--<owner>--<name>/blobs/<etag>                 file contents, named by their hash
 *   <hub cache>/models--<owner>--<name>/blobs/<etag>.incomplete      a download in progress (resumed from)
 *   <hub cache>/models--<owner>--<name>/snapshots/<commit>/<path>    relative symlinks into blobs/
 *   <hub cache>/models--<owner>--<name>/refs/<branch or tag>         the commit it pointed at when fetched
 *
 * The etag is the sha256 for LFS files and the git blob id for the others. Where symlinks cannot be made
 * (Windows without developer mode) the snapshot holds a copy, as huggingface_hub does. Finding a snapshot by
 * repo id (what `--model owner/name` does) is src/models/hf-cache.ts's.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { copyFile, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { VidpriorError } from '../../errors.js';
import { repoCacheDir } from '../hf-cache.js';

/** `owner/name`: letters, digits, `-`, `_`, `.`; no `..`, no leading or trailing `-`/`.` (the hub's rules). */
const REPO_PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$/;

/** Checks a model repo id; throws E_BAD_REQUEST naming it. */
export function checkRepoId(repo: string): string {
  const parts = repo.split('/');
  if (parts.length !== 2 || !parts.every((p) => REPO_PART.test(p) && !p.includes('..'))) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `${JSON.stringify(repo)} is not a Hugging Face model id (owner/name: letters, digits, "-", "_", ".")`,
      { repo },
    );
  }
  return repo;
}

/** A revision is a branch, tag or commit: no `..`, no leading `/`, no control characters. */
export function checkRevision(revision: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$/.test(revision) || revision.includes('..')) {
    throw new VidpriorError('E_BAD_REQUEST', `--revision ${JSON.stringify(revision)} is not a branch, tag or commit`, {
      revision,
    });
  }
  return revision;
}

export const COMMIT = /^[0-9a-f]{40}$/;

/** The cache folders of one model repo. */
export class RepoCache {
  readonly root: string;
  constructor(
    hubCache: string,
    readonly repo: string,
  ) {
    this.root = repoCacheDir(checkRepoId(repo), hubCache);
  }

  blob(etag: string): string {
    if (!/^[A-Za-z0-9._-]+$/.test(etag))
      throw new VidpriorError('E_DOWNLOAD', `the hub gave ${this.repo} a malformed file hash ${JSON.stringify(etag)}`);
    return join(this.root, 'blobs', etag);
  }

  snapshot(commit: string): string {
    return join(this.root, 'snapshots', commit);
  }

  /** The path of a repo file in a snapshot; refuses paths that would leave it. */
  file(commit: string, path: string): string {
    const base = this.snapshot(commit);
    const full = join(base, path);
    if (path.startsWith('/') || path.includes('\\') || relative(base, full).split(sep).includes('..')) {
      throw new VidpriorError(
        'E_DOWNLOAD',
        `the hub listed an unsafe file path ${JSON.stringify(path)} in ${this.repo}`,
      );
    }
    return full;
  }

  /** The commit a branch or tag pointed at when last fetched (a commit hash is itself). */
  commitOf(revision: string): string | null {
    if (COMMIT.test(revision)) return revision;
    const ref = join(this.root, 'refs', revision);
    if (!existsSync(ref) || !statSync(ref).isFile()) return null;
    const commit = readFileSync(ref, 'utf8').trim();
    return COMMIT.test(commit) ? commit : null;
  }

  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    const ref = join(this.root, 'refs', revision);
    await mkdir(dirname(ref), { recursive: true });
    await writeFile(ref, commit);
  }

  /** Makes `snapshots/<commit>/<path>` point at the blob (a relative symlink, else a copy). */
  async link(commit: string, path: string, etag: string): Promise<string> {
    const target = this.file(commit, path);
    const blob = this.blob(etag);
    await mkdir(dirname(target), { recursive: true });
    await rm(target, { force: true });
    try {
      await symlink(relative(dirname(target), blob), target);
    } catch {
      await copyFile(blob, target);
    }
    return target;
  }
}
