/**
 * One file from the hub into the cache's blobs/, through @huggingface/hub's `downloadFile` (the file's resolve
 * URL, following the hub's redirect to its CDN), with what the library leaves to its callers:
 *   - resume: bytes land in `blobs/<etag>.incomplete`; a later pull asks only for the rest (an HTTP Range, via
 *     the library's Blob.slice) and starts over if the server ignores the range;
 *   - verification: the size the hub listed, and the hash: sha256 for LFS files (their oid), the git blob id
 *     for the others. A file that does not match is deleted, never left in the cache;
 *   - progress: bytes as they arrive.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, rename, rm, stat, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { downloadFile } from '@huggingface/hub';
import { VidpriorError } from '../../errors.js';
import type { RepoCache } from './cache.js';
import type { HubConnection } from './connection.js';
import type { RepoFile } from './select.js';

/** The blob name of a repo file: its sha256 (LFS) or git blob id. */
export function etagOf(file: RepoFile): string {
  const etag = file.lfs?.oid ?? file.oid;
  if (!etag) throw new VidpriorError('E_DOWNLOAD', `the hub listed ${file.path} without a hash`, { file: file.path });
  return etag;
}

function hasherFor(file: RepoFile) {
  const size = file.lfs?.size ?? file.size;
  if (file.lfs) return { hash: createHash('sha256'), expected: file.lfs.oid, what: 'sha256' };
  // git's blob id: sha1 of "blob <size>\0" and the bytes.
  const hash = createHash('sha1').update(`blob ${size}\0`);
  return { hash, expected: file.oid!, what: 'git blob id' };
}

export interface FileProgress {
  /** Bytes of this file present so far (including a resumed part). */
  received: number;
  size: number;
  /** Bytes that arrived over the network since the last call. */
  delta: number;
}

/**
 * Downloads `file` of `repo` at `commit` into `blobs/<etag>` unless it is there; returns the bytes fetched.
 * An interrupted download keeps its `.incomplete` part for the next pull.
 */
export async function downloadBlob(
  hub: HubConnection,
  cache: RepoCache,
  commit: string,
  file: RepoFile,
  onProgress: (p: FileProgress) => void,
): Promise<number> {
  const etag = etagOf(file);
  const blob = cache.blob(etag);
  const size = file.lfs?.size ?? file.size;
  if (existsSync(blob) && (await stat(blob)).size === size) return 0;
  const part = `${blob}.incomplete`;
  await mkdir(dirname(blob), { recursive: true }).catch((err: Error) => {
    throw new VidpriorError('E_IO', `cannot create ${dirname(blob)}: ${err.message}`, { dir: dirname(blob) });
  });
  for (let attempt = 0; ; attempt++) {
    const { hash, expected, what } = hasherFor(file);
    let have = existsSync(part) ? (await stat(part)).size : 0;
    if (have > size) {
      await truncate(part, 0);
      have = 0;
    }
    // The part already on disk counts toward the hash.
    if (have > 0) for await (const chunk of createReadStream(part)) hash.update(chunk as Buffer);
    onProgress({ received: have, size, delta: 0 });
    let fetched = 0;
    if (have < size) {
      const remote = await hub.call(`${file.path}`, () =>
        downloadFile({
          repo: { type: 'model', name: cache.repo },
          path: file.path,
          revision: commit,
          hubUrl: hub.endpoint,
          ...hub.credentials,
          fetch: hub.fetch,
          xet: false,
        }),
      );
      if (!remote) throw new VidpriorError('E_NOT_FOUND', `${cache.repo} has no file ${file.path} at ${commit}`);
      if (remote.size !== size) {
        throw new VidpriorError(
          'E_DOWNLOAD',
          `${cache.repo}/${file.path}: the hub listed ${size} bytes but serves ${remote.size}`,
          { file: file.path },
        );
      }
      hub.rangeIgnored = false;
      const fh = await open(part, have > 0 ? 'a' : 'w');
      try {
        const stream = (have > 0 ? remote.slice(have) : remote).stream();
        for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
          await fh.write(chunk);
          hash.update(chunk);
          have += chunk.byteLength;
          fetched += chunk.byteLength;
          onProgress({ received: have, size, delta: chunk.byteLength });
        }
      } catch (err) {
        await fh.close();
        if (hub.rangeIgnored && attempt === 0) {
          await truncate(part, 0); // the server sent the whole file instead of the rest: start over
          continue;
        }
        if (err instanceof VidpriorError) throw err;
        if ((err as NodeJS.ErrnoException).syscall) {
          throw new VidpriorError('E_IO', `cannot write ${part}: ${(err as Error).message}`, { file: part });
        }
        throw new VidpriorError(
          'E_DOWNLOAD',
          `${cache.repo}/${file.path}: the download was interrupted at ${have} of ${size} bytes (${hub.describe(err)}); run the same pull again to resume`,
          { file: file.path, received: have },
          { cause: err },
        );
      }
      await fh.close();
    }
    const got = hash.digest('hex');
    if (have !== size || got !== expected) {
      await rm(part, { force: true });
      throw new VidpriorError(
        'E_DOWNLOAD',
        have !== size
          ? `${cache.repo}/${file.path}: received ${have} bytes, the hub listed ${size}; the file was discarded`
          : `${cache.repo}/${file.path}: ${what} is ${got}, the hub listed ${expected}; the file was discarded (a corrupted download or a changed file: pull again)`,
        { file: file.path },
      );
    }
    await rename(part, blob);
    return fetched;
  }
}
