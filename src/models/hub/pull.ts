/**
 * `models pull`: a Stable Diffusion 1.x pipeline from the Hugging Face hub into the hub cache, in the layout
 * huggingface_hub and diffusers use (cache.ts), so either finds what the other fetched.
 *   1. The commit the revision points at (@huggingface/hub `modelInfo`); offline, the cached ref instead.
 *   2. The repo's file list at that commit (`listFiles`), and the files a pipeline needs (select.ts).
 *   3. Each file into blobs/ unless it is there (download.ts: resumed, size- and hash-checked), linked into
 *      snapshots/<commit>/.
 *   4. refs/<revision> → the commit, written last, so a ref never points at a half-fetched snapshot.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { listFiles, modelInfo } from '@huggingface/hub';
import { VidpriorError } from '../../errors.js';
import { COMMIT, RepoCache, checkRepoId, checkRevision } from './cache.js';
import { HubConnection, type HubOptions } from './connection.js';
import { downloadBlob, etagOf } from './download.js';
import { type PullFormat, type RepoFile, selectPipelineFiles } from './select.js';

export interface PullOptions extends Omit<HubOptions, 'revision'> {
  /** The hub cache folder (config().hfHubCache). */
  hubCache: string;
  revision?: string;
  variant?: string;
  format?: PullFormat;
  /** HF_HUB_OFFLINE: answer from the cache or fail, never touch the network. */
  offline?: boolean;
  onProgress?: (p: PullProgress) => void;
}

export type PullProgress =
  | { phase: 'listing'; repo: string; revision: string }
  | { phase: 'plan'; files: number; bytes: number; cachedBytes: number; format: string; commit: string }
  | { phase: 'file'; path: string; index: number; files: number; size: number; cached: boolean }
  | { phase: 'bytes'; path: string; received: number; size: number; delta: number };

export interface PullResult {
  repo: string;
  revision: string;
  commit: string;
  /** snapshots/<commit>: give this folder (or the repo id) as --model. */
  dir: string;
  format: 'diffusers' | 'onnx';
  files: { path: string; size: number; cached: boolean }[];
  /** Bytes that came over the network. */
  downloaded: number;
  notes: string[];
  offline: boolean;
}

export async function pullModel(repoId: string, o: PullOptions): Promise<PullResult> {
  const repo = checkRepoId(repoId);
  const revision = checkRevision(o.revision ?? 'main');
  if (o.variant !== undefined && !/^[A-Za-z0-9_]{1,32}$/.test(o.variant))
    throw new VidpriorError('E_BAD_REQUEST', `--variant ${JSON.stringify(o.variant)} is not a variant name (fp16, …)`);
  const cache = new RepoCache(o.hubCache, repo);
  const progress = o.onProgress ?? (() => {});

  // 1. Offline: the snapshot the cached ref names, as it is.
  if (o.offline) {
    const commit = cache.commitOf(revision);
    const dir = commit ? cache.snapshot(commit) : null;
    if (!commit || !dir || !existsSync(dir)) {
      throw new VidpriorError(
        'E_NOT_FOUND',
        `HF_HUB_OFFLINE is set and ${repo}${revision === 'main' ? '' : `@${revision}`} is not in the hub cache ${o.hubCache}`,
        { repo, revision },
      );
    }
    return {
      repo,
      revision,
      commit,
      dir,
      format: existsSync(join(dir, 'unet', 'model.onnx')) ? 'onnx' : 'diffusers',
      files: [],
      downloaded: 0,
      notes: ['HF_HUB_OFFLINE: the cached snapshot as it is'],
      offline: true,
    };
  }

  // 2. The commit and its file list.
  const hub = new HubConnection(repo, { ...o, revision });
  progress({ phase: 'listing', repo, revision });
  const info = await hub.call('info', () =>
    modelInfo({
      name: repo,
      revision,
      hubUrl: hub.endpoint,
      additionalFields: ['sha'],
      fetch: hub.fetch,
      ...hub.credentials,
    }),
  );
  const commit = (info as { sha?: string }).sha;
  if (!commit || !COMMIT.test(commit))
    throw new VidpriorError('E_DOWNLOAD', `the hub gave no commit for ${repo}@${revision}`, { repo, revision });
  const listed: RepoFile[] = [];
  await hub.call('the file list', async () => {
    for await (const e of listFiles({
      repo: { type: 'model', name: repo },
      revision: commit,
      recursive: true,
      hubUrl: hub.endpoint,
      fetch: hub.fetch,
      ...hub.credentials,
    })) {
      if (e.type === 'file') listed.push({ path: e.path, size: e.size, oid: e.oid, lfs: e.lfs });
    }
  });
  const selection = selectPipelineFiles(repo, listed, { variant: o.variant, format: o.format });

  // 3. The files, each into blobs/ (unless there) and linked into the snapshot.
  const sizeOf = (f: RepoFile) => f.lfs?.size ?? f.size;
  const cachedBytes = selection.files
    .filter((f) => existsSync(cache.blob(etagOf(f))))
    .reduce((a, f) => a + sizeOf(f), 0);
  progress({
    phase: 'plan',
    files: selection.files.length,
    bytes: selection.files.reduce((a, f) => a + sizeOf(f), 0),
    cachedBytes,
    format: selection.format,
    commit,
  });
  let downloaded = 0;
  const files: PullResult['files'] = [];
  for (const [index, f] of selection.files.entries()) {
    cache.file(commit, f.path); // refuse unsafe paths before writing anything
    const cached = existsSync(cache.blob(etagOf(f)));
    progress({ phase: 'file', path: f.path, index, files: selection.files.length, size: sizeOf(f), cached });
    downloaded += await downloadBlob(hub, cache, commit, f, (p) =>
      progress({ phase: 'bytes', path: f.path, received: p.received, size: p.size, delta: p.delta }),
    );
    await cache.link(commit, f.path, etagOf(f));
    files.push({ path: f.path, size: sizeOf(f), cached });
  }

  // 4. The ref, last.
  await cache.writeRef(revision, commit);
  return {
    repo,
    revision,
    commit,
    dir: cache.snapshot(commit),
    format: selection.format,
    files,
    downloaded,
    notes: selection.notes,
    offline: false,
  };
}
