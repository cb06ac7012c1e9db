/**
 * The Hugging Face hub cache layout, shared with huggingface_hub/diffusers (so models a user fetched there are
 * found by repo id, and what `vidprior models pull` writes is found by them):
 *
 *   <hub cache>/models--<owner>--<name>/refs/<branch>          the commit hash the branch points at
 *   <hub cache>/models--<owner>--<name>/snapshots/<commit>/…   the files (links into blobs/)
 *
 * The hub cache folder is config().hfHubCache ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub).
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { config } from '../config.js';

export interface RepoRef {
  /** owner/name */
  repo: string;
  /** A branch, tag or commit hash (default main). */
  revision: string;
}

const REPO_ID = /^([A-Za-z0-9][A-Za-z0-9._-]*)\/([A-Za-z0-9][A-Za-z0-9._-]*)(?:@([A-Za-z0-9._/-]+))?$/;

/** `owner/name` or `owner/name@revision` (not a path: no leading `.` or `/`, one slash). */
export function parseRepoId(text: string): RepoRef | null {
  const m = REPO_ID.exec(text);
  if (!m || m[1]!.includes('..') || m[2]!.includes('..')) return null;
  return { repo: `${m[1]}/${m[2]}`, revision: m[3] ?? 'main' };
}

/** The cache folder of a model repo: models--owner--name. */
export function repoCacheDir(repo: string, hubCache = config().hfHubCache): string {
  return join(hubCache, `models--${repo.replace('/', '--')}`);
}

/** The snapshot folder of `ref` in the cache, or null when it was never fetched. */
export function findSnapshot(ref: RepoRef, hubCache = config().hfHubCache): string | null {
  const base = repoCacheDir(ref.repo, hubCache);
  if (!existsSync(base)) return null;
  let commit = ref.revision;
  const refFile = join(base, 'refs', ref.revision);
  if (existsSync(refFile) && statSync(refFile).isFile()) commit = readFileSync(refFile, 'utf8').trim();
  const dir = join(base, 'snapshots', commit);
  return /^[A-Za-z0-9._-]+$/.test(commit) && existsSync(dir) ? dir : null;
}

export interface CachedRepo {
  repo: string;
  /** Snapshot folders, newest first. */
  snapshots: string[];
}

/** Model repos in the cache, with their snapshots. */
export function cachedRepos(hubCache = config().hfHubCache): CachedRepo[] {
  if (!existsSync(hubCache)) return [];
  const out: CachedRepo[] = [];
  for (const entry of readdirSync(hubCache).sort()) {
    const m = /^models--([^-].*?)--(.+)$/.exec(entry);
    if (!m) continue;
    const snapDir = join(hubCache, entry, 'snapshots');
    if (!existsSync(snapDir)) continue;
    const snapshots = readdirSync(snapDir)
      .map((s) => join(snapDir, s))
      .filter((p) => statSync(p).isDirectory())
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
    if (snapshots.length) out.push({ repo: `${m[1]}/${m[2]}`, snapshots });
  }
  return out;
}
