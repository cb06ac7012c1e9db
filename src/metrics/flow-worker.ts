/**
 * DIS optical flow on worker threads: `vidprior metrics` needs two flows per frame pair (forward and
 * backward), which are independent, so with two threads a pair costs about one flow's time. The main thread
 * sends the two grayscale planes (copied: both directions use the same frames), the worker sends the flow back
 * (transferred). This file is both the pool (main thread) and the worker body (when loaded as a worker).
 */
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { VidpriorError } from '../errors.js';
import { disFlow, disMethodName, DIS_DEFAULTS, type DisOptions } from './flow-dis.js';
import type { Flow, Plane } from './image.js';
import type { FlowEstimator } from './consistency.js';

interface FlowRequest {
  id: number;
  width: number;
  height: number;
  a: Float32Array;
  b: Float32Array;
  options: DisOptions;
}

interface FlowReply {
  id: number;
  u?: Float32Array;
  v?: Float32Array;
  error?: string;
}

/** A FlowEstimator running DIS on `threads` worker threads; call close() when done. */
export class DisWorkerPool implements FlowEstimator {
  readonly name: string;
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { req: FlowRequest; resolve: (f: Flow) => void; reject: (e: unknown) => void }[] = [];
  private readonly pending = new Map<
    number,
    { resolve: (f: Flow) => void; reject: (e: unknown) => void; width: number; height: number }
  >();
  private nextId = 0;
  private readonly options: DisOptions;

  constructor(threads: number, options: Partial<DisOptions> = {}) {
    this.options = { ...DIS_DEFAULTS, ...options };
    this.name = disMethodName(this.options);
    for (let k = 0; k < Math.max(1, threads); k++) {
      const w = new Worker(new URL(import.meta.url));
      w.on('message', (reply: FlowReply) => this.onReply(w, reply));
      w.on('error', (err) => this.failAll(err));
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  flow(i0: Plane, i1: Plane): Promise<Flow> {
    return new Promise((resolve, reject) => {
      const req: FlowRequest = {
        id: this.nextId++,
        width: i0.width,
        height: i0.height,
        a: i0.data,
        b: i1.data,
        options: this.options,
      };
      this.queue.push({ req, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
    this.idle.length = 0;
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop() as Worker;
      const { req, resolve, reject } = this.queue.shift() as (typeof this.queue)[number];
      this.pending.set(req.id, { resolve, reject, width: req.width, height: req.height });
      worker.postMessage(req);
    }
  }

  private onReply(worker: Worker, reply: FlowReply): void {
    const p = this.pending.get(reply.id);
    this.pending.delete(reply.id);
    this.idle.push(worker);
    if (p) {
      if (reply.error || !reply.u || !reply.v)
        p.reject(new VidpriorError('E_INTERNAL', `flow worker failed: ${reply.error ?? 'no flow returned'}`));
      else p.resolve({ width: p.width, height: p.height, u: reply.u, v: reply.v });
    }
    this.pump();
  }

  private failAll(err: unknown): void {
    const e = new VidpriorError('E_INTERNAL', `flow worker crashed: ${(err as Error)?.message ?? String(err)}`);
    for (const p of this.pending.values()) p.reject(e);
    for (const q of this.queue) q.reject(e);
    this.pending.clear();
    this.queue.length = 0;
  }
}

// Worker body.
if (!isMainThread && parentPort) {
  const port = parentPort;
  port.on('message', (req: FlowRequest) => {
    try {
      const f = disFlow(
        { width: req.width, height: req.height, data: req.a },
        { width: req.width, height: req.height, data: req.b },
        req.options,
      );
      const reply: FlowReply = { id: req.id, u: f.u, v: f.v };
      port.postMessage(reply, [f.u.buffer as ArrayBuffer, f.v.buffer as ArrayBuffer]);
    } catch (err) {
      port.postMessage({ id: req.id, error: (err as Error).message } satisfies FlowReply);
    }
  });
}
