/**
 * The runtime: ONNX Runtime sessions that run off the main thread.
 *
 *   const rt = await openRuntime({ ep: 'auto' });       // rt.decision = { ep: 'cpu', reason: '…' }
 *   const unet = await rt.createSession('model/unet/model.onnx', { label: 'unet' });
 *   const { out_sample } = await unet.run({ sample, timestep, encoder_hidden_states });
 *   await rt.close();
 *
 * One worker thread (worker.ts) owns onnxruntime-node and every session; this side validates feeds, posts
 * requests and moves tensor buffers across (host outputs without copies). Requests run one after the other in
 * the worker, while the main event loop stays free. With `keepOutputsOnGpu` (WebGPU only; ignored on CPU and
 * CUDA, where outputs come back as host tensors) outputs stay in GPU memory as `GpuTensor` handles that can be
 * fed to the next run, read back with `read()` and must be freed with `dispose()`.
 *
 * Call `close()` before the process exits while work may be in flight: `close()` waits for queued runs, but
 * ending the process (process.exit, an unhandled signal) while the worker is inside an ORT run aborts it
 * ("terminate called after throwing an instance of 'Napi::Error'", exit code 134, onnxruntime-node 1.30).
 * An idle runtime does not keep the process alive.
 */
import { existsSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { VidpriorError, check } from '../errors.js';
import { type Tensor, sizeOf } from '../tensor.js';
import type {
  CreateResult,
  InitResult,
  Request,
  Response,
  RunResult,
  WireFeed,
  WireSessionOptions,
} from './messages.js';
import { fromWireError } from './messages.js';
import { supportsGpuOutputs } from './ort-options.js';
import type {
  ExecutionProvider,
  Feed,
  GpuTensor,
  IoMeta,
  ProviderDecision,
  RunOptions,
  Runtime,
  RuntimeOptions,
  Session,
  SessionOptions,
} from './types.js';
import { isGpuTensor } from './types.js';
import { checkFeeds, checkOutputNames } from './validate.js';

export * from './types.js';

const EP_CHOICES = ['auto', 'cuda', 'webgpu', 'cpu'] as const;

/** GPU tensor ids of the n-th runtime of this process lie in [n·SPAN, (n+1)·SPAN): a handle names its runtime. */
const TENSOR_ID_SPAN = 2 ** 32;
let runtimesOpened = 0;

/** Starts the worker, decides the execution provider once, and returns the runtime. */
export async function openRuntime(options: RuntimeOptions): Promise<Runtime> {
  check(EP_CHOICES.includes(options.ep), 'ep', options.ep, `one of ${EP_CHOICES.join(', ')}`);
  const cpuThreads = options.cpuThreads ?? 0;
  check(Number.isInteger(cpuThreads) && cpuThreads >= 0, 'cpuThreads', cpuThreads, 'a whole number ≥ 0');
  // The worker inherits the process's execArgv; --input-type (from `node -e`) would stop it loading a file.
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--input-type'));
  const worker = new Worker(new URL('./worker.js', import.meta.url), { execArgv });
  const link = new WorkerLink(worker);
  const tensorIdBase = ++runtimesOpened * TENSOR_ID_SPAN;
  try {
    const { decision, ortVersion } = await link.call<InitResult>({
      op: 'init',
      ep: options.ep,
      cpuThreads,
      tensorIdBase,
    });
    return new WorkerRuntime(link, decision, ortVersion, tensorIdBase);
  } catch (err) {
    await link.shutdown(false);
    throw err;
  }
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };
type Outgoing = Request extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/** The message channel to the worker: request ids, pending promises, crash handling, ref/unref. */
class WorkerLink {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: VidpriorError | null = null;
  private stopping = false;

  constructor(private readonly worker: Worker) {
    // The worker keeps the process alive only while a request is pending (see call()).
    worker.unref();
    worker.on('message', (res: Response) => this.settle(res));
    worker.on('error', (err) =>
      this.fail(
        new VidpriorError('E_RUNTIME', `the ONNX Runtime worker crashed: ${err.message}`, undefined, { cause: err }),
      ),
    );
    worker.on('messageerror', (err) =>
      this.fail(
        new VidpriorError('E_RUNTIME', `a message from the ONNX Runtime worker could not be decoded: ${err.message}`),
      ),
    );
    worker.on('exit', (code) => {
      if (!this.stopping)
        this.fail(
          new VidpriorError(
            'E_RUNTIME',
            `the ONNX Runtime worker stopped unexpectedly (exit code ${code}); the runtime is closed`,
          ),
        );
      else this.fail(new VidpriorError('E_BAD_REQUEST', 'the runtime is closed'));
    });
  }

  get alive(): boolean {
    return this.dead === null;
  }

  call<T>(req: Outgoing, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      if (this.pending.size === 1) this.worker.ref();
      try {
        this.worker.postMessage({ ...req, id } as Request, transfer);
      } catch (err) {
        this.forget(id);
        reject(
          new VidpriorError(
            'E_IO',
            `cannot send the ${req.op} request to the runtime worker: ${(err as Error).message}`,
          ),
        );
      }
    });
  }

  private settle(res: Response): void {
    const p = this.forget(res.id);
    if (!p) return;
    if (res.ok) p.resolve(res.result);
    else p.reject(fromWireError(res.error));
  }

  private forget(id: number): Pending | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
    return p;
  }

  /** Marks the link dead and rejects everything pending with `err`. */
  private fail(err: VidpriorError): void {
    if (!this.dead) this.dead = err;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    this.worker.unref();
    for (const p of waiting) p.reject(this.dead);
  }

  /** Asks the worker to release everything (when `graceful`), then terminates it. */
  async shutdown(graceful: boolean): Promise<void> {
    if (graceful && this.alive) {
      try {
        await this.call({ op: 'close' });
      } catch {
        /* terminating anyway */
      }
    }
    this.stopping = true;
    await this.worker.terminate();
  }
}

class WorkerRuntime implements Runtime {
  private closed = false;

  constructor(
    private readonly link: WorkerLink,
    readonly decision: ProviderDecision,
    readonly ortVersion: string,
    private readonly tensorIdBase: number,
  ) {}

  async createSession(model: string | Uint8Array, options: SessionOptions = {}): Promise<Session> {
    this.checkOpen();
    const label = options.label ?? (typeof model === 'string' ? labelFromPath(model) : 'model');
    let source: string | Uint8Array;
    if (typeof model === 'string') {
      source = resolve(model);
      if (!existsSync(source))
        throw new VidpriorError('E_MODEL_MISSING', `${label}: model file not found: ${source}`, {
          label,
          file: source,
        });
    } else {
      check(model instanceof Uint8Array && model.length > 0, 'model', typeof model, 'a path or non-empty ONNX bytes');
      // Bytes are copied to the worker (the caller keeps them); a view is cut out so only it is copied.
      source = model.byteLength === model.buffer.byteLength ? model : model.slice();
    }
    const externalData = options.externalData?.map((e) => {
      if (typeof e.data === 'string') return { path: e.path, data: resolve(e.data) };
      return { path: e.path, data: e.data };
    });
    const wire: WireSessionOptions = { ...options, label, ...(externalData ? { externalData } : {}) };
    const created = await this.link.call<CreateResult>({ op: 'create', model: source, options: wire });
    return new WorkerSession(this.link, created, label, (t) => this.checkOwn(t));
  }

  async read(t: GpuTensor | Tensor): Promise<Tensor> {
    this.checkOpen();
    if (!isGpuTensor(t)) {
      check(
        typeof t === 'object' && t !== null && ArrayBuffer.isView(t.data),
        'tensor',
        typeof t,
        'a GpuTensor handle or a Tensor',
      );
      return t;
    }
    this.checkOwn(t);
    return this.link.call<Tensor>({ op: 'read', tensor: t.id });
  }

  async upload(t: Tensor): Promise<Feed> {
    this.checkOpen();
    check(
      typeof t === 'object' && t !== null && !isGpuTensor(t) && ArrayBuffer.isView(t.data),
      'tensor',
      typeof t,
      'a host Tensor',
    );
    if (!supportsGpuOutputs(this.decision.ep)) return t;
    const transfer: ArrayBuffer[] = [];
    const tensor = packFeed(t, false, transfer) as Tensor;
    if (tensor.data.length !== sizeOf(tensor.dims)) {
      throw new VidpriorError(
        'E_SHAPE',
        `upload: the tensor has ${tensor.data.length} elements but its dims [${tensor.dims.join(', ')}] need ${sizeOf(tensor.dims)}`,
      );
    }
    return this.link.call<Feed>({ op: 'upload', tensor }, transfer);
  }

  async dispose(t: Feed | readonly Feed[]): Promise<void> {
    if (this.closed || !this.link.alive) return; // everything is gone already
    const list = (Array.isArray(t) ? t : [t]) as Feed[];
    const ids = list.filter(isGpuTensor).map((x) => {
      this.checkOwn(x);
      return x.id;
    });
    if (ids.length > 0) await this.link.call<void>({ op: 'dispose', tensors: ids });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.link.shutdown(true);
    await removeOrtDebugLog();
  }

  /** A handle made by another runtime would name an unrelated tensor here: refuse it. */
  private checkOwn(t: GpuTensor): void {
    if (Math.floor(t.id / TENSOR_ID_SPAN) * TENSOR_ID_SPAN !== this.tensorIdBase) {
      throw new VidpriorError('E_BAD_REQUEST', `GPU tensor ${t.id} belongs to another runtime`, { tensor: t.id });
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new VidpriorError('E_BAD_REQUEST', 'the runtime is closed');
  }
}

class WorkerSession implements Session {
  readonly inputs: readonly IoMeta[];
  readonly outputs: readonly IoMeta[];
  readonly ep: ExecutionProvider;
  private readonly id: number;
  private released = false;

  constructor(
    private readonly link: WorkerLink,
    created: CreateResult,
    readonly label: string,
    private readonly checkOwn: (t: GpuTensor) => void,
  ) {
    this.id = created.session;
    this.inputs = created.inputs;
    this.outputs = created.outputs;
    this.ep = created.ep;
  }

  async run(
    feeds: Record<string, Feed>,
    outputNames?: readonly string[],
    options: RunOptions = {},
  ): Promise<Record<string, Tensor | GpuTensor>> {
    if (this.released) throw new VidpriorError('E_BAD_REQUEST', `${this.label}: the session was released`);
    // 1. Check the feeds against the model before anything crosses the thread boundary.
    checkFeeds(this.label, this.inputs, feeds);
    for (const feed of Object.values(feeds)) if (isGpuTensor(feed)) this.checkOwn(feed);
    if (outputNames) checkOutputNames(this.label, this.outputs, outputNames);
    // 2. Pack them: handles as plain objects, host data copied once or moved (transferFeeds).
    const transfer: ArrayBuffer[] = [];
    const wire: Record<string, WireFeed> = {};
    for (const [name, feed] of Object.entries(feeds))
      wire[name] = packFeed(feed, options.transferFeeds ?? false, transfer);
    // 3. Run in the worker.
    return this.link.call<RunResult>(
      { op: 'run', session: this.id, feeds: wire, ...(outputNames ? { outputNames: [...outputNames] } : {}) },
      transfer,
    );
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.link.alive) await this.link.call<void>({ op: 'release', session: this.id });
  }
}

function packFeed(feed: Feed, move: boolean, transfer: ArrayBuffer[]): WireFeed {
  if (isGpuTensor(feed)) return { kind: 'gpu', id: feed.id, type: feed.type, dims: [...feed.dims] };
  let data = feed.data;
  const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
  if (!whole) {
    // Structured clone would copy the whole underlying buffer: copy just the view, and move the copy.
    data = data.slice() as typeof data;
    transfer.push(data.buffer as ArrayBuffer);
  } else if (move && data.buffer instanceof ArrayBuffer && !transfer.includes(data.buffer)) {
    transfer.push(data.buffer);
  }
  return { type: feed.type, dims: [...feed.dims], data } as Tensor;
}

/** 'unet' for …/unet/model.onnx, else the file name without extension. */
function labelFromPath(path: string): string {
  const file = basename(path).replace(/\.onnx$/i, '');
  return file === 'model' ? basename(dirname(resolve(path))) || file : file;
}

/**
 * onnxruntime-node 1.30 creates an empty `mat-debug-<pid>.log` in the temporary folder of every process that
 * opens a session, and never removes it: a daemon restarted many times would litter /tmp. The runtime removes it
 * when it closes, if it is still empty (anything ORT did write is kept for a bug report).
 */
async function removeOrtDebugLog(): Promise<void> {
  const path = join(tmpdir(), `mat-debug-${process.pid}.log`);
  const info = await stat(path).catch(() => null);
  if (info?.isFile() && info.size === 0) await rm(path, { force: true });
}
