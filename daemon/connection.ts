/**
 * One websocket client of the daemon: the handshake, then requests answered by id, and the events of the
 * jobs it follows. This is the protocol's error boundary: anything a message causes becomes an `error` reply
 * and the connection (and everyone else's) stays up.
 *
 * Messages are handled strictly one after another, in the order they came: a hello refused closes the
 * connection before anything sent after it is looked at. Few are held at once (past that the socket is not
 * read), and before hello a connection may send only PRE_HELLO_BYTES in all.
 */
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { VidpriorError, asVidpriorError } from '../src/errors.js';
import { decode, encode } from '../protocol/codec.js';
import {
  PROTOCOL_VERSION,
  SUPPORTED_VERSIONS,
  errorMessage,
  parseClientMessage,
  requestIdOf,
  type ClientMessage,
  type JobEvent,
  type RequestId,
  type ServerMessage,
  type Submit,
  type Attach,
  type Hello,
} from '../protocol/messages.js';
import { TERMINAL_STATES } from '../protocol/messages.js';
import type { Limits } from './daemon.js';
import { intake } from './intake.js';
import { frameEvent } from './jobs/views.js';
import type { Outbox } from './outbox.js';
import type { JobQueue } from './queue.js';
import type { PathPolicy } from './paths.js';
import { tokenMatches } from './token.js';
import type { UploadStore } from './uploads.js';

const HANDSHAKE_TIMEOUT_MS = 30_000;
/** All a connection may send before its hello is accepted (a hello is a few hundred bytes). */
export const PRE_HELLO_BYTES = 16 * 1024;
/** Messages received and not yet handled, past which the socket is not read until they are. */
const INBOX_HIGH = 16;
/** An attach replay waits for the client to read once this much is unsent. */
const REPLAY_HIGH_WATER = 4 * 1024 * 1024;

export interface ConnectionOptions {
  queue: JobQueue;
  /** Chunked uploads (absent: `upload_*` is refused). */
  uploads?: UploadStore;
  version: string;
  token?: string;
  limits: Limits;
  /** Allowed folders for `path` fields; used only when the client is on loopback. */
  paths: PathPolicy;
  /** Where `output_dir` may point (loopback clients only). */
  outputPaths: PathPolicy;
  /** The client is on this machine (loopback address). */
  local: boolean;
  /** A client whose unsent data grows beyond this is dropped (it can attach again). */
  maxBufferedBytes: number;
  /** The cap on unsent data of all clients together. */
  outbox: Outbox;
  log: (line: string) => void;
}

type Incoming = { data: Buffer | Buffer[] | ArrayBuffer; isBinary: boolean };

/** A job event goes to every subscriber as the same object: it is encoded once and the bytes are shared. */
const encoded = new WeakMap<object, Uint8Array>();
function encodeShared(message: ServerMessage): Uint8Array {
  const cached = encoded.get(message);
  if (cached) return cached;
  const bytes = encode(message);
  encoded.set(message, bytes);
  return bytes;
}

export class Connection {
  private isGreeted = false;
  private readonly subscriptions = new Map<string, () => void>();
  private readonly inbox: Incoming[] = [];
  private handling = false;
  /** Set once the connection is being closed: nothing more it sent is handled. */
  private closing = false;
  private preHelloBytes = 0;

  constructor(
    private readonly ws: WebSocket,
    socket: Duplex,
    private readonly opts: ConnectionOptions,
  ) {
    ws.on('message', (data, isBinary) => this.receive({ data: data as Buffer | Buffer[] | ArrayBuffer, isBinary }));
    // Bytes before hello are counted as they arrive, so a flood is cut off before ws has buffered a big message.
    const count = (chunk: Buffer) => {
      if (this.isGreeted) {
        socket.off('data', count);
        return;
      }
      this.preHelloBytes += chunk.length;
      if (this.preHelloBytes > PRE_HELLO_BYTES) this.refuseFlood();
    };
    socket.on('data', count);
    // A connection that never completes the handshake is closed (it holds a socket and nothing else).
    const handshake = setTimeout(() => {
      if (!this.isGreeted) this.closeWith(1008, 'no hello');
    }, HANDSHAKE_TIMEOUT_MS);
    handshake.unref();
    ws.on('close', () => {
      clearTimeout(handshake);
      socket.off('data', count);
      this.dispose();
    });
    ws.on('error', () => this.dispose());
  }

  /** The handshake succeeded. */
  get greeted(): boolean {
    return this.isGreeted;
  }

  /** Closes the connection at once (the server makes room for a new one). */
  drop(): void {
    this.closing = true;
    this.inbox.length = 0;
    this.ws.terminate();
  }

  private dispose(): void {
    this.closing = true;
    this.inbox.length = 0;
    for (const off of this.subscriptions.values()) off();
    this.subscriptions.clear();
  }

  /** Stops handling what the client sends, and closes with `code` (the socket goes if the client lingers). */
  private closeWith(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.inbox.length = 0;
    this.ws.pause();
    this.ws.close(code, reason);
    setTimeout(() => this.ws.terminate(), 1000).unref();
  }

  private refuseFlood(): void {
    if (this.closing) {
      // Still sending after the close frame: no more grace.
      if (this.preHelloBytes > 2 * PRE_HELLO_BYTES + 1024 * 1024) this.ws.terminate();
      return;
    }
    this.opts.log(`closing a connection that sent more than ${PRE_HELLO_BYTES} bytes without a hello`);
    this.closeWith(1009, `more than ${PRE_HELLO_BYTES} bytes before hello`);
  }

  private receive(message: Incoming): void {
    if (this.closing) return;
    this.inbox.push(message);
    if (this.inbox.length >= INBOX_HIGH) this.ws.pause();
    if (!this.handling) void this.handleInbox();
  }

  /** Handles queued messages one at a time, in order; the first one starts at once (in the same tick). */
  private async handleInbox(): Promise<void> {
    this.handling = true;
    try {
      while (!this.closing) {
        const next = this.inbox.shift();
        if (!next) break;
        await this.onMessage(next.data, next.isBinary);
        if (this.ws.isPaused && this.inbox.length < INBOX_HIGH / 2 && !this.closing) this.ws.resume();
      }
    } finally {
      this.handling = false;
    }
  }

  private send(message: ServerMessage, onWritten?: () => void): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (this.ws.bufferedAmount > this.opts.maxBufferedBytes) {
      this.opts.log('dropping a client that does not read its messages (it can attach again)');
      this.ws.terminate();
      return;
    }
    const bytes = encodeShared(message);
    if (!this.opts.outbox.makeRoom(this.ws, bytes.length)) return;
    this.ws.send(bytes, { binary: true }, onWritten);
  }

  /** Sends and, when much is unsent already, waits until the client has read it (or the connection is gone). */
  private async sendPaced(message: ServerMessage): Promise<void> {
    if (this.ws.bufferedAmount < REPLAY_HIGH_WATER) return this.send(message);
    await new Promise<void>((resolve) => {
      this.send(message, () => resolve());
      if (this.ws.readyState !== this.ws.OPEN) resolve();
      this.ws.once('close', () => resolve());
    });
  }

  private async onMessage(data: Buffer | Buffer[] | ArrayBuffer, isBinary: boolean): Promise<void> {
    let raw: unknown;
    try {
      if (!isBinary)
        throw new VidpriorError(
          'E_PROTOCOL',
          'text messages are not part of the protocol: send one MessagePack map per binary message',
        );
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      raw = decode(bytes, {
        maxMessageBytes: this.opts.limits.maxMessageBytes,
        // A submit of many frames is several values per frame.
        maxValues: Math.max(1_000_000, 8 * this.opts.limits.maxFrames),
      });
      const message = parseClientMessage(raw);
      // hello is handled in the same tick it arrives: a refused one closes the connection before ws hands over
      // anything sent after it.
      if (message.type === 'hello') this.hello(message.id, message.protocol, message.token);
      else await this.handle(message);
    } catch (err) {
      const e = asVidpriorError(err);
      if (e.code === 'E_INTERNAL') this.opts.log(`bug while handling a message: ${(err as Error)?.stack ?? e.message}`);
      const id = requestIdOf(raw);
      this.send(errorMessage(e, id === undefined ? {} : { id }));
      if (e.code === 'E_AUTH' || e.code === 'E_VERSION') this.closeWith(1008, e.code);
    }
  }

  private async handle(m: Exclude<ClientMessage, Hello>): Promise<void> {
    if (!this.isGreeted)
      throw new VidpriorError(
        'E_PROTOCOL',
        `say hello first: the first message must be {"type": "hello", "protocol": ${PROTOCOL_VERSION}}`,
      );
    const q = this.opts.queue;
    switch (m.type) {
      case 'submit':
        return this.submit(m);
      case 'cancel':
        await q.cancel(m.job);
        return this.send({ type: 'ok', id: m.id });
      case 'list_jobs':
        return this.send({ type: 'jobs', id: m.id, jobs: q.list(m.state, m.limit).map((j) => q.summary(j)) });
      case 'get_job':
        return this.send({ type: 'job', id: m.id, job: q.detail(q.get(m.job)) });
      case 'attach':
        return this.attach(m);
      case 'detach':
        q.get(m.job);
        this.subscriptions.get(m.job)?.();
        this.subscriptions.delete(m.job);
        return this.send({ type: 'ok', id: m.id });
      case 'delete_job':
        await q.delete(m.job);
        return this.send({ type: 'ok', id: m.id });
      case 'list_models':
        return this.send({
          type: 'models',
          id: m.id,
          models: await q.model.models(),
          adapters: await q.model.adapters(),
        });
      case 'upload_begin':
        return this.send(await this.uploads().begin(m));
      case 'upload_chunk':
        return this.send(await this.uploads().chunk(m));
      case 'upload_status':
        return this.send(this.uploads().status(m.id, m.upload));
      case 'upload_end':
        return this.send(this.uploads().end(m.id, m.upload));
    }
  }

  private uploads(): UploadStore {
    if (!this.opts.uploads)
      throw new VidpriorError('E_BAD_REQUEST', 'this daemon takes no uploads: send the frames in the submit');
    return this.opts.uploads;
  }

  private hello(id: RequestId, protocol: number, token: string | undefined): void {
    if (this.isGreeted) throw new VidpriorError('E_PROTOCOL', 'hello was already received on this connection');
    if (!SUPPORTED_VERSIONS.includes(protocol)) {
      throw new VidpriorError(
        'E_VERSION',
        `protocol version ${protocol} is not supported (this daemon speaks ${SUPPORTED_VERSIONS.join(', ')})`,
        { supported: [...SUPPORTED_VERSIONS] },
      );
    }
    if (this.opts.token !== undefined && !tokenMatches(this.opts.token, token)) {
      throw new VidpriorError(
        'E_AUTH',
        token === undefined ? 'this daemon needs a token: send it in hello.token' : 'the token is missing or wrong',
      );
    }
    this.isGreeted = true;
    const paths = this.opts.local && this.opts.paths.allowsAny;
    const outputDir = this.opts.local && this.opts.outputPaths.allowsAny;
    this.send({
      type: 'welcome',
      id,
      protocol: PROTOCOL_VERSION,
      server: { name: 'vidprior', version: this.opts.version },
      capabilities: [
        ...this.opts.queue.availableKinds().map((k) => `kind:${k}`),
        'attach',
        'noise',
        ...(this.opts.uploads ? ['upload'] : []),
        ...(paths ? ['paths'] : []),
        ...(outputDir ? ['output_dir'] : []),
      ],
      limits: {
        max_message_bytes: this.opts.limits.maxMessageBytes,
        max_frame_bytes: this.opts.limits.maxFrameBytes,
        max_frames: this.opts.limits.maxFrames,
      },
      ep: this.opts.queue.model.ep,
      model: this.opts.queue.model.name,
    });
  }

  private async submit(m: Submit): Promise<void> {
    const q = this.opts.queue;
    const executor = q.executor(m.kind);
    const job = await intake(executor, m, {
      maxFrameBytes: this.opts.limits.maxFrameBytes,
      maxFrames: this.opts.limits.maxFrames,
      pixels: this.opts.limits,
      memory: { work: q.model.workModel, limit: this.opts.limits.maxJobBytes },
      paths: this.opts.local ? this.opts.paths : null,
      outputPaths: this.opts.local ? this.opts.outputPaths : null,
      uploads: this.opts.uploads ?? null,
      origin: { via: 'socket' },
    });
    // Subscribe before the job can start (no event missed), hold its events until `accepted` has gone out.
    let follow: Subscription | undefined;
    const record = await q.submit(job, (id) => {
      if (m.subscribe) follow = this.subscribe(id);
    });
    this.send({ type: 'accepted', id: m.id, job: q.summary(record) });
    follow?.release();
    // The job holds its own copies of the uploads it named.
    await this.opts.uploads?.release([...m.frames, ...(m.edits ?? [])].flatMap((f) => (f.upload ? [f.upload] : [])));
  }

  private async attach(m: Attach): Promise<void> {
    const q = this.opts.queue;
    const job = q.get(m.job);
    const terminal = TERMINAL_STATES.includes(job.status.state);
    // Subscribe first and hold live events, so nothing falls between the replay and the live stream.
    const follow = terminal ? null : this.subscribe(m.job);
    this.send({ type: 'attached', id: m.id, job: q.detail(job) });
    const replayed = new Set<number>();
    if (m.replay) {
      for (let i = m.from_index; i < job.spec.outputs.length; i++) {
        if (!job.outputDone[i]) continue;
        if (this.closing) return;
        const png = await q.store.readOutput(job, i);
        replayed.add(i);
        // A long replay goes at the client's pace, not all into memory at once.
        await this.sendPaced(frameEvent(job, i, png, true));
      }
    }
    if (terminal) {
      this.send(q.terminalEvent(job));
      return;
    }
    // A frame finished during the replay may be both replayed and held: send it once.
    const released = follow!.release((e) => e.type === 'frame' && replayed.has(e.index));
    if (released === 0) this.send(q.progressOf(job));
  }

  /**
   * Sends this connection the events of a job until its terminal event. They are held until `release()`, so
   * that a reply (`accepted`, `attached` and its replay) goes out before them; `skip` drops held ones.
   */
  private subscribe(jobId: string): Subscription {
    this.subscriptions.get(jobId)?.();
    let held: JobEvent[] | null = [];
    const off = this.opts.queue.subscribe(jobId, (event) => {
      if (held) held.push(event);
      else this.send(event);
      if (event.type === 'done' || (event.type === 'error' && event.job)) {
        off();
        this.subscriptions.delete(jobId);
      }
    });
    this.subscriptions.set(jobId, off);
    return {
      release: (skip) => {
        const events = held ?? [];
        held = null;
        let sent = 0;
        for (const e of events)
          if (!skip?.(e)) {
            this.send(e);
            sent++;
          }
        return sent;
      },
    };
  }
}

interface Subscription {
  /** Sends the held events (those `skip` accepts are dropped) and streams from now on; returns how many were sent. */
  release(skip?: (e: JobEvent) => boolean): number;
}
