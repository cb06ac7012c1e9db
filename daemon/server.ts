/**
 * The websocket server of `vidprior serve`: binds (loopback unless there is a token), refuses browser pages
 * without a token (origin.ts), caps message sizes and the number of connections (the oldest one that has not
 * said hello gives way to a new one), caps the bytes waiting for all clients together (Outbox), pings every
 * client and drops those that stop answering, and hands each connection to a `Connection`. The job queue runs
 * beside it; inference happens in the runtime's worker thread, so this event loop keeps answering while the GPU
 * works.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Limits } from './daemon.js';
import { VidpriorError } from '../src/errors.js';
import { Connection } from './connection.js';
import { originAllowed, originRefusal } from './origin.js';
import { Outbox } from './outbox.js';
import type { JobQueue } from './queue.js';
import { PathPolicy } from './paths.js';
import type { UploadStore } from './uploads.js';

export interface ServerOptions {
  host: string;
  port: number;
  token?: string;
  limits: Limits;
  /** Folders `path` fields of loopback clients may point into. */
  allowDirs: string[];
  /** Where `output_dir` of loopback clients may point. */
  outputPaths: PathPolicy;
  heartbeatMs: number;
  /** Most connections at once (default 64). */
  maxConnections?: number;
  /** Most bytes waiting to be sent to all clients together (default 256 MiB). */
  maxOutboxBytes?: number;
  queue: JobQueue;
  /** Where chunked uploads are kept (absent: the daemon takes none). */
  uploads?: UploadStore;
  version: string;
  log: (line: string) => void;
}

export interface RunningServer {
  readonly port: number;
  readonly url: string;
  /** Stops accepting, closes every connection, stops the queue (a running job resumes on the next start). */
  close(): Promise<void>;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);
export const DEFAULT_MAX_CONNECTIONS = 64;
export const DEFAULT_MAX_OUTBOX_BYTES = 256 * 1024 * 1024;

export function isLoopbackAddress(addr: string | undefined): boolean {
  if (!addr) return false;
  return addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.');
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  // 1. Refuse to listen beyond this machine without a token.
  if (!LOOPBACK_HOSTS.has(opts.host) && !opts.token) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `--host ${opts.host} would accept connections from other machines: give a --token (or bind to 127.0.0.1)`,
      { host: opts.host },
    );
  }
  if (opts.token !== undefined && opts.token.length < 8) {
    throw new VidpriorError('E_BAD_REQUEST', '--token must be at least 8 characters', { token: '(hidden)' });
  }
  const paths = new PathPolicy(opts.allowDirs);

  // 2. HTTP server + websocket upgrade. A browser page (it sends an Origin other than the daemon's own address)
  //    may not drive a daemon without a token; past the connection cap the oldest silent connection gives way.
  const http = createServer((_req, res) => {
    res
      .writeHead(426, { 'content-type': 'text/plain' })
      .end('vidprior daemon: connect with a websocket (see protocol/PROTOCOL.md)\n');
  });
  const maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const connections = new Set<Connection>();
  let port = 0;
  const wss = new WebSocketServer({
    server: http,
    // Messages up to twice the limit are read and answered E_TOO_LARGE (the client learns why); beyond that
    // ws closes the connection (1009) without buffering more. Before hello a connection may send far less
    // (connection.ts).
    maxPayload: 2 * opts.limits.maxMessageBytes,
    perMessageDeflate: false,
    verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, code?: number, message?: string) => void) => {
      const origin = info.req.headers.origin;
      if (origin !== undefined && !opts.token && !originAllowed(origin, opts.host, port)) {
        done(false, 403, originRefusal(origin, opts.host, port));
        return;
      }
      if (connections.size >= maxConnections) {
        const silent = [...connections].find((c) => !c.greeted);
        if (!silent) {
          done(
            false,
            503,
            `vidprior daemon: all ${maxConnections} connections are in use (serve --max-connections); close one or try again later\n`,
          );
          return;
        }
        opts.log('connection cap reached: dropping the oldest connection that has not said hello');
        silent.drop();
      }
      done(true);
    },
  });
  // ws re-emits the HTTP server's errors (a port in use) on itself; the listen promise below reports them, and
  // without a listener here the re-emitted one would crash the process with a stack trace.
  wss.on('error', () => {});
  const outbox = new Outbox(opts.maxOutboxBytes ?? DEFAULT_MAX_OUTBOX_BYTES, opts.log);

  // 3. Each connection, with a heartbeat: a peer that misses a whole ping interval is terminated.
  const alive = new WeakMap<WebSocket, boolean>();
  wss.on('connection', (ws, req) => {
    alive.set(ws, true);
    ws.on('pong', () => alive.set(ws, true));
    const connection = new Connection(ws, req.socket, {
      queue: opts.queue,
      uploads: opts.uploads,
      version: opts.version,
      token: opts.token,
      limits: opts.limits,
      paths,
      outputPaths: opts.outputPaths,
      local: isLoopbackAddress(req.socket.remoteAddress),
      maxBufferedBytes: Math.max(64 * 1024 * 1024, 2 * opts.limits.maxMessageBytes),
      outbox,
      log: opts.log,
    });
    connections.add(connection);
    outbox.add(ws);
    ws.once('close', () => {
      connections.delete(connection);
      outbox.delete(ws);
    });
  });
  const heartbeat = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.get(ws)) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      ws.ping();
    }
  }, opts.heartbeatMs);
  heartbeat.unref();

  await new Promise<void>((resolve, reject) => {
    http.once('error', (err: NodeJS.ErrnoException) => {
      const inUse = err.code === 'EADDRINUSE';
      reject(
        new VidpriorError(
          inUse ? 'E_BUSY' : 'E_BAD_REQUEST',
          `cannot listen on ${opts.host}:${opts.port}: ${inUse ? `port ${opts.port} is in use (another vidprior serve?); choose another with --port` : err.message}`,
          { host: opts.host, port: opts.port },
          { cause: err },
        ),
      );
    });
    http.listen(opts.port, opts.host, () => resolve());
  });
  port = (http.address() as AddressInfo).port;
  const hostForUrl = opts.host.includes(':') ? `[${opts.host}]` : opts.host;

  return {
    port,
    url: `ws://${hostForUrl}:${port}/`,
    async close() {
      clearInterval(heartbeat);
      for (const ws of wss.clients) ws.close(1001, 'daemon shutting down');
      await opts.queue.stop();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
