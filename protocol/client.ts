/**
 * A TypeScript client of the protocol, for `vidprior submit` / `vidprior jobs`, scripts and the tests.
 *
 *   const client = await VidpriorClient.connect('ws://127.0.0.1:8765/', { token });
 *   const job = await client.submit({ kind: 'stylize', params: { prompt: 'ink' }, frames: [{ png }] });
 *   job.onFrame = (f) => writeFileSync(f.name, f.png);
 *   const done = await job.done;        // rejects with a VidpriorError (E_CANCELLED, …) if the job fails
 *   await client.close();
 *
 * Every message received is validated (parseServerMessage). A reply that is an `error` rejects its request
 * with a VidpriorError of the same code.
 */
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { VidpriorError, type ErrorCode } from '../src/errors.js';
import { DEFAULT_LIMITS, decode, encode } from './codec.js';
import {
  PROTOCOL_VERSION,
  type Submit as SubmitSchema,
  parseServerMessage,
  type AdapterInfo,
  type ClientMessageIn,
  type Done,
  type ErrorMessage,
  type Frame,
  type JobDetail,
  type JobState,
  type JobSummary,
  type ModelInfo,
  type Progress,
  type ServerMessage,
  type Upload,
  type Welcome,
} from './messages.js';
import type { Input } from './schema.js';

export interface ClientOptions {
  token?: string;
  /** Sent in hello.client (for the daemon's logs). */
  client?: string;
  connectTimeoutMs?: number;
  /** Largest message accepted from the daemon. */
  maxMessageBytes?: number;
}

type Pending = {
  resolve: (m: ServerMessage) => void;
  reject: (e: Error) => void;
  onReply?: (m: ServerMessage) => void;
};
type Request<T extends ClientMessageIn> = T extends unknown ? Omit<T, 'id'> : never;

/** The events of one job, as this connection receives them. */
export class JobStream {
  onProgress: ((p: Progress) => void) | null = null;
  private frameHandler: ((f: Frame) => void) | null = null;
  /** Frames that arrived before a handler was set (a replay can arrive in the same tick as `attached`). */
  private unclaimed: Frame[] = [];
  /** Resolves with `done`; rejects with the job's error (E_CANCELLED when cancelled, E_CONNECTION if the connection drops). */
  readonly done: Promise<Done>;
  /** The last progress seen. */
  progress: Progress | null = null;
  private settle!: { resolve: (d: Done) => void; reject: (e: Error) => void };
  private finished = false;

  constructor(readonly job: JobSummary | JobDetail) {
    this.done = new Promise<Done>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    this.done.catch(() => {}); // a caller that only cares about frames must not crash on an unhandled rejection
  }

  /** Receives every frame of the job once; frames that came before the handler was set are handed over at once. */
  get onFrame(): ((f: Frame) => void) | null {
    return this.frameHandler;
  }
  set onFrame(handler: ((f: Frame) => void) | null) {
    this.frameHandler = handler;
    if (!handler) return;
    const waiting = this.unclaimed;
    this.unclaimed = [];
    for (const f of waiting) handler(f);
  }

  get id(): string {
    return this.job.id;
  }
  get isFinished(): boolean {
    return this.finished;
  }

  /** @internal */
  deliver(m: Progress | Frame | Done | ErrorMessage): void {
    if (this.finished) return;
    if (m.type === 'progress') {
      this.progress = m;
      this.onProgress?.(m);
    } else if (m.type === 'frame') {
      if (this.frameHandler) this.frameHandler(m);
      else this.unclaimed.push(m);
    } else if (m.type === 'done') {
      this.finished = true;
      this.settle.resolve(m);
    } else {
      this.finished = true;
      this.settle.reject(errorOf(m));
    }
  }

  /** @internal */
  fail(err: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.settle.reject(err);
  }
}

function errorOf(m: ErrorMessage): VidpriorError {
  return new VidpriorError(m.code as ErrorCode, m.message, m.details);
}

export class VidpriorClient {
  private nextId = 1;
  private readonly pending = new Map<string | number, Pending>();
  private readonly streams = new Map<string, JobStream>();
  private closedError: VidpriorError | null = null;
  /** Errors that answer no request (e.g. to a message the daemon could not decode). */
  onError: ((e: VidpriorError) => void) | null = null;
  welcome!: Welcome;

  private constructor(
    private readonly ws: WebSocket,
    private readonly opts: ClientOptions,
  ) {
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('close', (code, reason) =>
      this.onClose(
        new VidpriorError(
          'E_CONNECTION',
          `connection to the daemon closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`,
        ),
      ),
    );
    ws.on('error', (err) =>
      this.onClose(
        new VidpriorError('E_CONNECTION', `connection to the daemon failed: ${err.message}`, undefined, { cause: err }),
      ),
    );
  }

  /** Connects and does the handshake (E_CONNECTION when the daemon cannot be reached, E_AUTH, E_VERSION). */
  static async connect(url: string, opts: ClientOptions = {}): Promise<VidpriorClient> {
    const maxPayload = opts.maxMessageBytes ?? 2 * DEFAULT_LIMITS.maxMessageBytes;
    const ws = new WebSocket(url, {
      maxPayload,
      perMessageDeflate: false,
      handshakeTimeout: opts.connectTimeoutMs ?? 10_000,
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', (err) =>
        reject(
          new VidpriorError(
            'E_CONNECTION',
            `cannot reach the daemon at ${url}: ${err.message}`,
            { url },
            { cause: err },
          ),
        ),
      );
    });
    const client = new VidpriorClient(ws, opts);
    try {
      client.welcome = (await client.request({
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        ...(opts.client ? { client: opts.client } : {}),
        ...(opts.token !== undefined ? { token: opts.token } : {}),
      })) as Welcome;
    } catch (err) {
      ws.terminate();
      throw err;
    }
    return client;
  }

  /** Sends a request and resolves with its reply (an `error` reply rejects). */
  request(message: Request<ClientMessageIn>, onReply?: (m: ServerMessage) => void): Promise<ServerMessage> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise<ServerMessage>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onReply });
      this.sendRaw({ ...message, id });
    });
  }

  /** Sends anything, even invalid messages (tests use it); returns nothing. */
  sendRaw(message: object | Uint8Array, binary = true): void {
    this.ws.send(message instanceof Uint8Array ? message : encode(message), { binary });
  }

  async submit(req: Omit<Input<typeof SubmitSchema>, 'type' | 'id' | 'subscribe'>): Promise<JobStream> {
    let stream: JobStream | undefined;
    await this.request({ type: 'submit', ...req, subscribe: true }, (m) => {
      if (m.type === 'accepted') stream = this.track(new JobStream(m.job));
    });
    return stream!;
  }

  /** Follows a job: its finished frames are replayed (from `fromIndex`), then live events. */
  async attach(job: string, opts: { replay?: boolean; fromIndex?: number } = {}): Promise<JobStream> {
    let stream: JobStream | undefined;
    const msg: Request<ClientMessageIn> = {
      type: 'attach',
      job,
      replay: opts.replay ?? true,
      from_index: opts.fromIndex ?? 0,
    };
    await this.request(msg, (m) => {
      if (m.type === 'attached') stream = this.track(new JobStream(m.job));
    });
    return stream!;
  }

  async detach(job: string): Promise<void> {
    await this.request({ type: 'detach', job });
    this.streams.get(job)?.fail(new VidpriorError('E_CANCELLED', `detached from job ${job}`));
    this.streams.delete(job);
  }

  async cancel(job: string): Promise<void> {
    await this.request({ type: 'cancel', job });
  }

  async deleteJob(job: string): Promise<void> {
    await this.request({ type: 'delete_job', job });
  }

  async listJobs(opts: { state?: JobState; limit?: number } = {}): Promise<JobSummary[]> {
    const r = await this.request({
      type: 'list_jobs',
      ...(opts.state ? { state: opts.state } : {}),
      limit: opts.limit ?? 100,
    });
    return (r as Extract<ServerMessage, { type: 'jobs' }>).jobs;
  }

  async getJob(job: string): Promise<JobDetail> {
    return ((await this.request({ type: 'get_job', job })) as Extract<ServerMessage, { type: 'job' }>).job;
  }

  async listModels(): Promise<{ models: ModelInfo[]; adapters: AdapterInfo[] }> {
    const r = (await this.request({ type: 'list_models' })) as Extract<ServerMessage, { type: 'models' }>;
    return { models: r.models, adapters: r.adapters };
  }

  /**
   * Sends one file (a frame or an edit) as a chunked upload and returns its id, for `FrameInput.upload`.
   * `resume` goes on with an upload begun earlier (after a lost connection) from where the daemon says it is.
   */
  async upload(
    bytes: Uint8Array,
    opts: { name?: string; resume?: string; onProgress?: (received: number, total: number) => void } = {},
  ): Promise<string> {
    let state: Upload;
    if (opts.resume) {
      state = await this.uploadStatus(opts.resume);
      if (state.bytes !== bytes.length)
        throw new VidpriorError(
          'E_BAD_REQUEST',
          `upload ${opts.resume} was begun for ${state.bytes} bytes, not ${bytes.length}: begin a new one`,
          { upload: opts.resume },
        );
    } else {
      state = (await this.request({
        type: 'upload_begin',
        bytes: bytes.length,
        sha256: createHash('sha256').update(bytes).digest('hex'),
        ...(opts.name ? { name: opts.name.slice(0, 255) } : {}),
      })) as Upload;
    }
    while (!state.complete && state.received < state.bytes) {
      const end = Math.min(state.bytes, state.received + state.chunk_bytes);
      state = (await this.request({
        type: 'upload_chunk',
        upload: state.upload,
        offset: state.received,
        data: bytes.subarray(state.received, end),
      })) as Upload;
      opts.onProgress?.(state.received, state.bytes);
    }
    if (!state.complete) state = (await this.request({ type: 'upload_end', upload: state.upload })) as Upload;
    return state.upload;
  }

  /** Where an upload stands (how many bytes the daemon has). */
  async uploadStatus(upload: string): Promise<Upload> {
    return (await this.request({ type: 'upload_status', upload })) as Upload;
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
      setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 2000).unref();
    });
  }

  private track(stream: JobStream): JobStream {
    this.streams.set(stream.id, stream);
    void stream.done.then(
      () => this.streams.delete(stream.id),
      () => this.streams.delete(stream.id),
    );
    return stream;
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    let m: ServerMessage;
    try {
      if (!isBinary) throw new VidpriorError('E_PROTOCOL', 'the daemon sent a text message');
      m = parseServerMessage(
        decode(data, { maxMessageBytes: this.opts.maxMessageBytes ?? 2 * DEFAULT_LIMITS.maxMessageBytes }),
      );
    } catch (err) {
      // A daemon that breaks the protocol cannot be trusted with the rest of the stream.
      this.onClose(err instanceof VidpriorError ? err : new VidpriorError('E_PROTOCOL', String(err)));
      this.ws.terminate();
      return;
    }
    if ('id' in m && m.id !== undefined) {
      const p = this.pending.get(m.id);
      if (p) {
        this.pending.delete(m.id);
        if (m.type === 'error') p.reject(errorOf(m));
        else {
          p.onReply?.(m);
          p.resolve(m);
        }
        return;
      }
    }
    if ((m.type === 'progress' || m.type === 'frame' || m.type === 'done' || m.type === 'error') && m.job) {
      this.streams.get(m.job)?.deliver(m);
      return;
    }
    if (m.type === 'error') this.onError?.(errorOf(m));
  }

  private onClose(err: VidpriorError): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const s of this.streams.values()) s.fail(err);
    this.streams.clear();
  }
}
