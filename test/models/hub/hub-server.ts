/**
 * A local stand-in for the Hugging Face hub, serving fixture repos with the parts of its HTTP API that
 * @huggingface/hub calls for a pull:
 *   GET /api/models/<repo>/revision/<rev>        model info with the commit `sha`
 *   GET /api/models/<repo>/tree/<rev>?recursive  the file list (paginated with a Link header), LFS oids/sizes
 *   GET /<repo>/resolve/<rev>/<path>             small files: the bytes, ETag = git blob id; LFS files: a 302
 *                                                to /cdn/<sha256> with X-Linked-Etag / X-Linked-Size
 *   GET /cdn/<sha256>                            the bytes, with Range (206 + Content-Range)
 * Errors as the hub gives them: 404 + X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound, 401 +
 * GatedRepo for a gated repo without the token. Tests can cut one download after N bytes, serve other bytes
 * than a file's listed hash, and read the request log.
 */
import { createHash } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FixtureRepo {
  id: string;
  files: Map<string, Buffer>;
  /** Requests need `Authorization: Bearer <token>`. */
  gatedToken?: string;
  /** Bytes served instead of a file's own (its listing keeps the real hash and size). */
  tamper?: Map<string, Buffer>;
}

interface Entry {
  path: string;
  data: Buffer;
  oid: string;
  lfs: { oid: string; size: number; pointerSize: number } | undefined;
}

export interface LoggedRequest {
  method: string;
  url: string;
  range?: string;
  auth?: string;
}

const gitOid = (data: Buffer) => createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

export class HubServer {
  readonly requests: LoggedRequest[] = [];
  /** path → bytes after which the next download of that file is cut off (once). */
  readonly cutOnce = new Map<string, number>();
  /** Files whose next ranged download is answered in full (200), as some proxies do (once). */
  readonly ignoreRangeOnce = new Set<string>();
  private readonly repos = new Map<string, { repo: FixtureRepo; commit: string; entries: Entry[] }>();
  private readonly blobs = new Map<string, Buffer>();
  private server = createServer((req, res) => this.handle(req, res));
  url = '';

  add(repo: FixtureRepo): string {
    const entries = [...repo.files]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([path, data]) => {
        // As the hub stores them: binaries and anything over 10 kB in LFS.
        const lfs = /\.(onnx|safetensors|bin|ckpt)$/.test(path) || data.length > 10_000;
        const e: Entry = {
          path,
          data,
          oid: gitOid(data),
          lfs: lfs ? { oid: sha256(data), size: data.length, pointerSize: 134 } : undefined,
        };
        if (e.lfs) this.blobs.set(`${repo.id}|${e.lfs.oid}`, repo.tamper?.get(path) ?? data);
        return e;
      });
    const commit = createHash('sha1')
      .update(repo.id)
      .update(entries.map((e) => e.oid).join())
      .digest('hex');
    this.repos.set(repo.id, { repo, commit, entries });
    return commit;
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private error(res: ServerResponse, status: number, code: string, message: string): ServerResponse {
    res.writeHead(status, { 'Content-Type': 'application/json', 'X-Error-Code': code });
    return res.end(JSON.stringify({ error: message }));
  }

  /** The bytes of `data`, honouring a Range header; cut after `cut` bytes when given. */
  private send(
    req: IncomingMessage,
    res: ServerResponse,
    data: Buffer,
    headers: Record<string, string>,
    cut?: number,
  ): void {
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = data.length - 1;
    if (m) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), end) : end;
      if (start > end) {
        res.writeHead(416, { 'Content-Range': `bytes */${data.length}` });
        res.end();
        return;
      }
      res.writeHead(206, {
        ...headers,
        'Content-Range': `bytes ${start}-${end}/${data.length}`,
        'Content-Length': String(end - start + 1),
        'Accept-Ranges': 'bytes',
      });
    } else {
      res.writeHead(200, { ...headers, 'Content-Length': String(data.length), 'Accept-Ranges': 'bytes' });
    }
    const body = data.subarray(start, end + 1);
    if (cut !== undefined && cut < body.length) {
      res.write(body.subarray(0, cut), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    res.end(body);
  }

  private handle(req: IncomingMessage, res: ServerResponse): unknown {
    const url = new URL(req.url!, 'http://x');
    this.requests.push({
      method: req.method!,
      url: url.pathname + url.search,
      range: req.headers.range,
      auth: req.headers.authorization,
    });
    const path = decodeURIComponent(url.pathname);
    let m = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (m) {
      const data = this.blobs.get(`${url.searchParams.get('repo')}|${m[1]}`);
      if (!data) return this.error(res, 404, 'EntryNotFound', 'no such object');
      const file = url.searchParams.get('path') ?? '';
      if (this.ignoreRangeOnce.has(file) && /^bytes=[1-9]/.test(req.headers.range ?? '')) {
        this.ignoreRangeOnce.delete(file);
        delete req.headers.range;
      }
      const cut = this.cutOnce.get(file);
      if (cut !== undefined && (req.headers.range ?? '') !== 'bytes=0-0') this.cutOnce.delete(file);
      return this.send(req, res, data, { ETag: `"${m[1]}"` }, req.headers.range === 'bytes=0-0' ? undefined : cut);
    }
    m =
      /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^/?]+)(?:\/.*)?$/.exec(path) ??
      /^\/([^/]+\/[^/]+)\/(resolve)\/([^/]+)\/(.+)$/.exec(path);
    if (!m) return this.error(res, 404, 'NotFound', `no route ${path}`);
    const [, id, kind, rev, file] = m as unknown as [string, string, string, string, string];
    const found = this.repos.get(id);
    if (!found) return this.error(res, 404, 'RepoNotFound', `Repository not found: ${id}`);
    const { repo, commit, entries } = found;
    if (repo.gatedToken && req.headers.authorization !== `Bearer ${repo.gatedToken}`) {
      return this.error(
        res,
        401,
        'GatedRepo',
        `Access to model ${id} is restricted. You must have access to it and be authenticated to access it.`,
      );
    }
    if (rev !== 'main' && rev !== commit) return this.error(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    const common = { 'X-Repo-Commit': commit };
    if (kind === 'revision') {
      res.writeHead(200, { 'Content-Type': 'application/json', ...common });
      res.end(
        JSON.stringify({
          _id: id,
          id,
          sha: commit,
          private: false,
          gated: repo.gatedToken ? 'manual' : false,
          downloads: 0,
          likes: 0,
          lastModified: '2026-01-01T00:00:00.000Z',
          siblings: entries.map((e) => ({ rfilename: e.path })),
        }),
      );
      return;
    }
    if (kind === 'tree') {
      const dirs = new Set<string>();
      for (const e of entries)
        for (let i = e.path.indexOf('/'); i > 0; i = e.path.indexOf('/', i + 1)) dirs.add(e.path.slice(0, i));
      const all = [
        ...[...dirs].map((d) => ({ type: 'directory', oid: gitOid(Buffer.from(d)), size: 0, path: d })),
        ...entries.map((e) => ({
          type: 'file',
          oid: e.oid,
          size: e.data.length,
          path: e.path,
          ...(e.lfs ? { lfs: e.lfs } : {}),
        })),
      ];
      // Pages of 8, as the hub paginates long listings.
      const cursor = Number(url.searchParams.get('cursor') ?? 0);
      const page = all.slice(cursor, cursor + 8);
      const headers: Record<string, string> = { 'Content-Type': 'application/json', ...common };
      if (cursor + 8 < all.length) {
        const next = new URL(req.url!, this.url);
        next.searchParams.set('cursor', String(cursor + 8));
        headers.Link = `<${next.href}>; rel="next"`;
      }
      res.writeHead(200, headers);
      res.end(JSON.stringify(page));
      return;
    }
    const entry = entries.find((e) => e.path === file);
    if (!entry) return this.error(res, 404, 'EntryNotFound', `${file} does not exist`);
    if (entry.lfs) {
      res.writeHead(302, {
        ...common,
        Location: `/cdn/${entry.lfs.oid}?repo=${encodeURIComponent(id)}&path=${encodeURIComponent(file)}`,
        'X-Linked-Etag': `"${entry.lfs.oid}"`,
        'X-Linked-Size': String(entry.lfs.size),
      });
      res.end();
      return;
    }
    this.send(req, res, entry.data, { ...common, ETag: `"${entry.oid}"` });
  }
}
