/**
 * The websocket server of `vidprior serve`: binds (loopback unless there is a token), refuses browsers
 * without a token, caps message sizes, pings every client and drops those that stop answering, and hands
 * each connection to a `Connection`. The job queue runs beside it; inference happens in the runtime's worker
 * thread, so this event loop keeps answering while the GPU works.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { VidpriorError } from '../src/errors.js';
import { Connection } from './connection.js';
import type { JobQueue } from './queue.js';
import { PathPolicy } from './paths.js';

export interface ServerOptions {
  host: string;
  port: number;
  token?: string;
  limits: { maxMessageBytes: number; maxFrameBytes: number; maxFrames: number };
  /** Folders `path` fields of loopback clients may point into. */
  allowDirs: string[];
  heartbeatMs: number;
  queue: JobQueue;
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

  // 2. HTTP server + websocket upgrade. A browser page (it sends Origin) may not drive a daemon without a token.
  const http = createServer((_req, res) => {
    res
      .writeHead(426, { 'content-type': 'text/plain' })
      .end('vidprior daemon: connect with a websocket (see protocol/PROTOCOL.md)\n');
  });
  const wss = new WebSocketServer({
    server: http,
    // Messages up to twice the limit are read and answered E_TOO_LARGE (the client learns why); beyond that
    // ws closes the connection (1009) without buffering more.
    maxPayload: 2 * opts.limits.maxMessageBytes,
    perMessageDeflate: false,
    verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, code?: number, message?: string) => void) => {
      if (info.req.headers.origin !== undefined && !opts.token)
        done(false, 403, 'browser origins need a daemon started with --token');
      else done(true);
    },
  });

  // 3. Each connection, with a heartbeat: a peer that misses a whole ping interval is terminated.
  const alive = new WeakMap<WebSocket, boolean>();
  wss.on('connection', (ws, req) => {
    alive.set(ws, true);
    ws.on('pong', () => alive.set(ws, true));
    new Connection(ws, {
      queue: opts.queue,
      version: opts.version,
      token: opts.token,
      limits: opts.limits,
      paths,
      local: isLoopbackAddress(req.socket.remoteAddress),
      maxBufferedBytes: Math.max(64 * 1024 * 1024, 2 * opts.limits.maxMessageBytes),
      log: opts.log,
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
      reject(
        new VidpriorError(
          'E_BAD_REQUEST',
          `cannot listen on ${opts.host}:${opts.port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}`,
          { host: opts.host, port: opts.port },
          { cause: err },
        ),
      );
    });
    http.listen(opts.port, opts.host, () => resolve());
  });
  const port = (http.address() as AddressInfo).port;
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
