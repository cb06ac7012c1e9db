/**
 * vidprior's model cache (config().cacheDir/models/):
 *
 *   converted/<key>/   ONNX folders built from checkpoints and diffusers folders, named by the content key
 *   index.json         file hashes (so an unchanged 2 GB file is not hashed again on every start) and the
 *                      models used recently, for `vidprior models list`
 *
 * The key is a SHA-256 over the bytes of the files that make the model and the conversion settings, never
 * over paths: the same checkpoint moved or renamed finds its folder; a changed one gets a new folder.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { config } from '../../config.js';
import { VidpriorError } from '../../errors.js';
import { writeJsonAtomic } from '../../io/atomic-write.js';

export interface RecentModel {
  /** What the user gave (a path made absolute, or a repo id). */
  ref: string;
  kind: string;
  /** The ONNX folder it resolved to. */
  dir: string;
  used_at: string;
}

interface FileHash {
  size: number;
  mtimeMs: number;
  sha256: string;
}

interface CacheIndex {
  hashes: Record<string, FileHash>;
  recent: RecentModel[];
}

const RECENT_MAX = 20;

export function modelsCacheDir(): string {
  return join(config().cacheDir, 'models');
}

export function convertedRoot(): string {
  return join(modelsCacheDir(), 'converted');
}

function indexPath(): string {
  return join(modelsCacheDir(), 'index.json');
}

async function readIndex(): Promise<CacheIndex> {
  try {
    const j = JSON.parse(await readFile(indexPath(), 'utf8')) as Partial<CacheIndex>;
    return { hashes: j.hashes ?? {}, recent: Array.isArray(j.recent) ? j.recent : [] };
  } catch {
    return { hashes: {}, recent: [] }; // absent or damaged: it only saves work
  }
}

/** Several processes may update the index: each rereads it just before writing, and a lost update costs a re-hash. */
async function updateIndex(fn: (i: CacheIndex) => void): Promise<void> {
  const index = await readIndex();
  fn(index);
  try {
    await writeJsonAtomic(indexPath(), index, false);
  } catch {
    /* a read-only cache still works, only slower */
  }
}

async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) h.update(chunk as Buffer);
  } catch (err) {
    throw new VidpriorError('E_IO', `cannot read ${path}: ${(err as Error).message}`, { file: path }, { cause: err });
  }
  return h.digest('hex');
}

/** SHA-256 of a file, remembered by path, size and modification time. */
export async function fileHash(path: string, onHashing?: (path: string, bytes: number) => void): Promise<string> {
  const st = await stat(path);
  const known = (await readIndex()).hashes[path];
  if (known && known.size === st.size && known.mtimeMs === st.mtimeMs) return known.sha256;
  onHashing?.(path, st.size);
  const sha256 = await hashFile(path);
  await updateIndex((i) => {
    i.hashes[path] = { size: st.size, mtimeMs: st.mtimeMs, sha256 };
  });
  return sha256;
}

/** The cache key of a model: its files' contents (in order) and the settings of the conversion. */
export async function contentKey(
  files: readonly string[],
  settings: Record<string, unknown>,
  onHashing?: (path: string, bytes: number) => void,
): Promise<string> {
  const h = createHash('sha256');
  for (const f of files) h.update(`${await fileHash(f, onHashing)}\n`);
  h.update(JSON.stringify(settings));
  return h.digest('hex').slice(0, 24);
}

/** A converted folder is complete once vidprior-model.json is in it (it is renamed into place whole). */
export function isCompleteFolder(dir: string): boolean {
  return existsSync(join(dir, 'vidprior-model.json'));
}

export async function recordRecent(entry: Omit<RecentModel, 'used_at'>): Promise<void> {
  await updateIndex((i) => {
    i.recent = [{ ...entry, used_at: new Date().toISOString() }, ...i.recent.filter((r) => r.ref !== entry.ref)].slice(
      0,
      RECENT_MAX,
    );
  });
}

export async function recentModels(): Promise<RecentModel[]> {
  return (await readIndex()).recent;
}
