/**
 * One websocket client of the daemon: the handshake, then requests answered by id, and the events of the
 * jobs it follows. This is the protocol's error boundary: anything a message causes becomes an `error` reply
 * and the connection (and everyone else's) stays up.
 */
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
} from '../protocol/messages.js';
import { TERMINAL_STATES } from '../protocol/messages.js';
import { intake } from './intake.js';
import type { JobQueue } from './queue.js';
import type { PathPolicy } from './paths.js';
import { tokenMatches } from './token.js';

const HANDSHAKE_TIMEOUT_MS = 30_000;

export interface ConnectionOptions {
  queue: JobQueue;
  version: string;
  token?: string;
  limits: { maxMessageBytes: number; maxFrameBytes: number; maxFrames: number };
  /** Allowed folders for `path` fields; used only when the client is on loopback. */
  paths: PathPolicy;
  /** The client is on this machine (loopback address). */
  local: boolean;
  /** A client whose unsent data grows beyond this is dropped (it can attach again). */
  maxBufferedBytes: number;
  log: (line: string) => void;
}

export class Connection {
  private greeted = false;
  private readonly subscriptions = new Map<string, () => void>();

  constructor(
    private readonly ws: WebSocket,
    private readonly opts: ConnectionOptions,
  ) {
    ws.on('message', (data, isBinary) => {
      void this.onMessage(data as Buffer | Buffer[] | ArrayBuffer, isBinary);
    });
    // A connection that never completes the handshake is closed (it holds a socket and nothing else).
    const handshake = setTimeout(() => {
      if (!this.greeted) ws.close(1008, 'no hello');
    }, HANDSHAKE_TIMEOUT_MS);
    handshake.unref();
    ws.on('close', () => {
      clearTimeout(handshake);
      this.dispose();
    });
    ws.on('error', () => this.dispose());
  }

  private dispose(): void {
    for (const off of this.subscriptions.values()) off();
    this.subscriptions.clear();
  }

  private send(message: ServerMessage): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (this.ws.bufferedAmount > this.opts.maxBufferedBytes) {
      this.opts.log('dropping a client that does not read its messages (it can attach again)');
      this.ws.terminate();
      return;
    }
    this.ws.send(encode(message), { binary: true });
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
      raw = decode(bytes, this.opts.limits);
      const message = parseClientMessage(raw);
      await this.handle(message);
    } catch (err) {
      const e = asVidpriorError(err);
      if (e.code === 'E_INTERNAL') this.opts.log(`bug while handling a message: ${(err as Error)?.stack ?? e.message}`);
      const id = requestIdOf(raw);
      this.send(errorMessage(e, id === undefined ? {} : { id }));
      if (e.code === 'E_AUTH' || e.code === 'E_VERSION') this.ws.close(1008, e.code);
    }
  }

  private async handle(m: ClientMessage): Promise<void> {
    if (m.type === 'hello') return this.hello(m.id, m.protocol, m.token);
    if (!this.greeted)
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
    }
  }

  private hello(id: RequestId, protocol: number, token: string | undefined): void {
    if (this.greeted) throw new VidpriorError('E_PROTOCOL', 'hello was already received on this connection');
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
    this.greeted = true;
    const paths = this.opts.local && this.opts.paths.allowsAny;
    this.send({
      type: 'welcome',
      id,
      protocol: PROTOCOL_VERSION,
      server: { name: 'vidprior', version: this.opts.version },
      capabilities: [
        ...this.opts.queue.availableKinds().map((k) => `kind:${k}`),
        'attach',
        'noise',
        ...(paths ? ['paths', 'output_dir'] : []),
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
      paths: this.opts.local ? this.opts.paths : null,
      origin: { via: 'socket' },
    });
    // Subscribe before the job can start (no event missed), hold its events until `accepted` has gone out.
    let follow: Subscription | undefined;
    const record = await q.submit(job, (id) => {
      if (m.subscribe) follow = this.subscribe(id);
    });
    this.send({ type: 'accepted', id: m.id, job: q.summary(record) });
    follow?.release();
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
        const png = await q.store.readOutput(job, i);
        replayed.add(i);
        this.send({ type: 'frame', job: m.job, index: i, name: job.spec.outputs[i]!, png, replay: true });
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
