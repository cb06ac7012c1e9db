/**
 * Chunked, resumable uploads (protocol §4 `upload_*`): a frame too big to travel with the others in one
 * message arrives in chunks under the message limit, is kept in `<data dir>/uploads/` and is then named by its
 * id in a `submit`. Uploads outlive the connection that started them (a client that lost its connection asks
 * `upload_status` and goes on from there) but not the daemon: leftovers are removed at start. Abandoned ones
 * (untouched for `ttlMs`) are removed by a sweep; a submit that used one removes it once the job holds a copy.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { appendFile, mkdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VidpriorError } from '../src/errors.js';
import type { Upload, UploadBegin, UploadChunk } from '../protocol/messages.js';

export interface UploadLimits {
  /** Largest upload (one frame or edit): the daemon's max_frame_bytes. */
  maxUploadBytes: number;
  /** Largest `upload_chunk.data`: under the message limit, with room for the rest of the message. */
  chunkBytes: number;
  /** All unfinished and unused uploads together (declared sizes). */
  maxTotalBytes: number;
  /** Most uploads open at once. */
  maxUploads: number;
  /** An upload untouched this long is removed. */
  ttlMs: number;
}

/** Chunks are at most 8 MiB, and at most half the message limit (a chunk must fit in a message). */
export const MAX_CHUNK_BYTES = 8 * 1024 * 1024;
export function chunkBytesFor(maxMessageBytes: number): number {
  return Math.max(1, Math.min(MAX_CHUNK_BYTES, Math.floor(maxMessageBytes / 2)));
}

export const DEFAULT_UPLOAD_LIMITS: Omit<UploadLimits, 'maxUploadBytes' | 'chunkBytes'> = {
  maxTotalBytes: 16 * 1024 ** 3,
  maxUploads: 100_000,
  ttlMs: 60 * 60 * 1000,
};

const UPLOAD_ID = /^u-[0-9a-f]{32}$/;

interface OpenUpload {
  id: string;
  name?: string;
  bytes: number;
  received: number;
  complete: boolean;
  expectSha256?: string;
  hash: Hash | null;
  file: string;
  touched: number;
  /** A chunk is being written (one at a time, whichever connection sends it). */
  busy: boolean;
}

export class UploadStore {
  private readonly uploads = new Map<string, OpenUpload>();
  private sweeper: NodeJS.Timeout | null = null;

  private constructor(
    readonly dir: string,
    private readonly limits: UploadLimits,
    private readonly now: () => number,
    private readonly log: (line: string) => void,
  ) {}

  /** Opens the store in `dir`, removing what an earlier daemon left there. */
  static async open(
    dir: string,
    limits: UploadLimits,
    log: (line: string) => void = () => {},
    now: () => number = Date.now,
  ): Promise<UploadStore> {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const store = new UploadStore(dir, limits, now, log);
    store.sweeper = setInterval(() => void store.sweep(), Math.max(50, Math.min(limits.ttlMs, 60_000)));
    store.sweeper.unref();
    return store;
  }

  get chunkBytes(): number {
    return this.limits.chunkBytes;
  }

  async begin(m: UploadBegin): Promise<Upload> {
    if (m.bytes > this.limits.maxUploadBytes)
      throw new VidpriorError(
        'E_TOO_LARGE',
        `an upload of ${m.bytes} bytes is more than the limit of ${this.limits.maxUploadBytes} (max_frame_bytes)`,
        { field: 'bytes', bytes: m.bytes, limit: this.limits.maxUploadBytes },
      );
    if (m.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(m.sha256))
      throw new VidpriorError('E_BAD_REQUEST', 'sha256 must be 64 hexadecimal digits', { field: 'sha256' });
    const pending = [...this.uploads.values()].reduce((sum, u) => sum + u.bytes, 0);
    if (this.uploads.size >= this.limits.maxUploads || pending + m.bytes > this.limits.maxTotalBytes)
      throw new VidpriorError(
        'E_BUSY',
        `the daemon holds ${this.uploads.size} uploads (${pending} bytes) not yet used by a job: submit or let them expire first`,
        { uploads: this.uploads.size, bytes: pending },
      );
    const id = `u-${randomBytes(16).toString('hex')}`;
    const file = join(this.dir, `${id}.part`);
    await writeFile(file, new Uint8Array(0));
    const u: OpenUpload = {
      id,
      ...(m.name ? { name: m.name } : {}),
      bytes: m.bytes,
      received: 0,
      complete: false,
      ...(m.sha256 ? { expectSha256: m.sha256.toLowerCase() } : {}),
      hash: createHash('sha256'),
      file,
      touched: this.now(),
      busy: false,
    };
    this.uploads.set(id, u);
    return this.reply(m.id, u);
  }

  async chunk(m: UploadChunk): Promise<Upload> {
    const u = this.get(m.upload);
    if (u.complete)
      throw new VidpriorError('E_BAD_REQUEST', `upload ${u.id} is complete: it takes no more chunks`, {
        field: 'upload',
      });
    if (u.busy)
      throw new VidpriorError('E_BUSY', `upload ${u.id} is taking another chunk: send the next one after its reply`, {
        field: 'upload',
      });
    if (m.data.length > this.limits.chunkBytes)
      throw new VidpriorError(
        'E_TOO_LARGE',
        `a chunk of ${m.data.length} bytes is more than the limit of ${this.limits.chunkBytes} (chunk_bytes)`,
        { field: 'data', bytes: m.data.length, limit: this.limits.chunkBytes },
      );
    if (m.offset !== u.received)
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `upload ${u.id}: the chunk starts at offset ${m.offset} but ${u.received} bytes have arrived; send from offset ${u.received}`,
        { field: 'offset', offset: m.offset, received: u.received },
      );
    if (m.data.length === 0 || u.received + m.data.length > u.bytes)
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `upload ${u.id}: a chunk of ${m.data.length} bytes at offset ${m.offset} does not fit the ${u.bytes} bytes announced`,
        { field: 'data', offset: m.offset, bytes: u.bytes },
      );
    u.busy = true;
    try {
      await appendFile(u.file, m.data);
    } catch (err) {
      // A chunk written in part (a full disk) is cut off again, so the same offset can be sent once more.
      await truncate(u.file, u.received).catch(() => {});
      throw new VidpriorError('E_IO', `cannot store upload ${u.id}: ${(err as Error).message}`, undefined, {
        cause: err,
      });
    } finally {
      u.busy = false;
    }
    u.hash!.update(m.data);
    u.received += m.data.length;
    u.touched = this.now();
    return this.reply(m.id, u);
  }

  status(requestId: string | number, upload: string): Upload {
    const u = this.get(upload);
    u.touched = this.now();
    return this.reply(requestId, u);
  }

  end(requestId: string | number, upload: string): Upload {
    const u = this.get(upload);
    if (u.complete) return this.reply(requestId, u);
    if (u.received !== u.bytes)
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `upload ${u.id} has ${u.received} of its ${u.bytes} bytes: send the rest before upload_end`,
        { field: 'upload', received: u.received, bytes: u.bytes },
      );
    const digest = u.hash!.digest('hex');
    u.hash = null;
    if (u.expectSha256 && digest !== u.expectSha256) {
      void this.remove(u);
      throw new VidpriorError(
        'E_BAD_INPUT',
        `upload ${u.id}: its SHA-256 is ${digest}, not the ${u.expectSha256} announced; it was dropped, upload it again`,
        { field: 'sha256' },
      );
    }
    u.complete = true;
    u.touched = this.now();
    return this.reply(requestId, u);
  }

  /** The file of a complete upload, for a submit (`field` names it in errors). */
  completedFile(upload: string, field: string): string {
    const u = this.uploads.get(upload);
    if (!u)
      throw new VidpriorError(
        'E_NOT_FOUND',
        `${field}: no upload ${JSON.stringify(upload.slice(0, 80))} (expired, used by a job, or never begun)`,
        { field },
      );
    if (!u.complete)
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `${field}: upload ${u.id} is not finished (${u.received} of ${u.bytes} bytes, no upload_end)`,
        { field },
      );
    u.touched = this.now();
    return u.file;
  }

  /** A job holds its own copy now: the uploads it named are removed. */
  async release(ids: Iterable<string>): Promise<void> {
    for (const id of ids) {
      const u = this.uploads.get(id);
      if (u) await this.remove(u);
    }
  }

  /** Removes uploads untouched for longer than the TTL. */
  async sweep(): Promise<number> {
    const cutoff = this.now() - this.limits.ttlMs;
    let removed = 0;
    for (const u of [...this.uploads.values()]) {
      if (u.touched >= cutoff || u.busy) continue;
      await this.remove(u);
      removed++;
    }
    if (removed) this.log(`removed ${removed} abandoned upload(s)`);
    return removed;
  }

  /** How many uploads are held (tests, logs). */
  get size(): number {
    return this.uploads.size;
  }

  /** Stops the sweep and removes every upload (they do not outlive the daemon). */
  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    this.uploads.clear();
    await rm(this.dir, { recursive: true, force: true }).catch(() => {});
  }

  private get(upload: string): OpenUpload {
    const u = UPLOAD_ID.test(upload) ? this.uploads.get(upload) : undefined;
    if (!u)
      throw new VidpriorError(
        'E_NOT_FOUND',
        `no upload ${JSON.stringify(upload.slice(0, 80))}: it expired, was used by a job, or was never begun (upload_begin)`,
        { field: 'upload' },
      );
    return u;
  }

  private async remove(u: OpenUpload): Promise<void> {
    this.uploads.delete(u.id);
    await rm(u.file, { force: true }).catch(() => {});
  }

  private reply(id: string | number, u: OpenUpload): Upload {
    return {
      type: 'upload',
      id,
      upload: u.id,
      bytes: u.bytes,
      received: u.received,
      complete: u.complete,
      chunk_bytes: this.limits.chunkBytes,
    };
  }
}
