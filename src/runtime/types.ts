/**
 * The runtime's public contract. Only src/runtime/ imports onnxruntime-node; everyone else talks to these
 * interfaces with plain `Tensor`s (src/tensor.ts). Sessions live in a worker thread because ORT's create()
 * and run() block the event loop.
 */
import type { DType, Tensor } from '../tensor.js';

export type ExecutionProvider = 'cuda' | 'webgpu' | 'cpu';
export type ExecutionProviderChoice = 'auto' | ExecutionProvider;

/** Which provider a runtime took, and why (shown to the user). */
export interface ProviderDecision {
  ep: ExecutionProvider;
  reason: string;
}

/** A tensor that stays in GPU memory inside the runtime's worker; pass it back as a feed, read it, dispose it. */
export interface GpuTensor {
  readonly kind: 'gpu';
  readonly id: number;
  readonly type: DType;
  readonly dims: readonly number[];
}

export type Feed = Tensor | GpuTensor;

export interface IoMeta {
  name: string;
  /** Element type, e.g. 'float32', 'float16', 'int64'. */
  type: DType | string;
  /** Static dims as numbers, symbolic ones as strings (e.g. 'batch'). */
  dims: (number | string)[];
}

export interface SessionOptions {
  /** Where model weights stored as external data live, when the model is given as bytes. */
  externalData?: { path: string; data: Uint8Array | string }[];
  graphOptimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * Outputs to leave in GPU memory as GpuTensor handles. `true` = all outputs. WebGPU only: on the CPU provider
   * (and on CUDA, where onnxruntime-node's 'gpu-buffer' location is unverified) it is ignored and outputs come
   * back as host tensors; `Runtime.read`/`dispose` accept those too, so calling code need not care.
   */
  keepOutputsOnGpu?: boolean | string[];
  /** ORT optimizers to switch off by name (e.g. 'CommonSubexpressionElimination'). */
  disabledOptimizers?: string[];
  /** Fix symbolic dims so the provider can plan memory. */
  freeDimensionOverrides?: Record<string, number>;
  /** Fail instead of silently running nodes on the CPU provider. */
  disallowCpuFallback?: boolean;
  /** A label for logs and errors (e.g. 'unet'). */
  label?: string;
  /** WebGPU only: the layout ORT uses for layout-sensitive ops (Conv, …). Default NCHW. Ignored elsewhere. */
  preferredLayout?: 'NCHW' | 'NHWC';
  /**
   * Profile every run with ORT's profiler into a JSON file (Chrome trace format) whose path starts with this
   * prefix (ORT appends a date and `.json`); it is written when the session is released. On WebGPU the
   * kernels' GPU times are in it ("Api" events) when the device has timestamp queries. For benchmarks only.
   */
  profilePrefix?: string;
}

export interface RunOptions {
  /**
   * Move (transfer) the feeds' buffers to the worker instead of copying them: faster for big inputs, but the
   * caller's typed arrays are detached (length 0) afterwards. Views into a larger buffer are always copied.
   */
  transferFeeds?: boolean;
}

export interface Session {
  readonly label: string;
  readonly inputs: readonly IoMeta[];
  readonly outputs: readonly IoMeta[];
  readonly ep: ExecutionProvider;
  /**
   * Runs the model. Host feeds are copied to the worker (see RunOptions.transferFeeds); host outputs are moved
   * back without copies. Outputs named in keepOutputsOnGpu come back as GpuTensor handles (WebGPU only).
   */
  run(
    feeds: Record<string, Feed>,
    outputNames?: readonly string[],
    options?: RunOptions,
  ): Promise<Record<string, Tensor | GpuTensor>>;
  release(): Promise<void>;
}

export interface Runtime {
  readonly decision: ProviderDecision;
  /** The onnxruntime-node version the worker loaded (e.g. '1.30.0'): optimized graphs are cached per version. */
  readonly ortVersion: string;
  /** Loads a model from a file path (external data beside it is found) or from bytes. */
  createSession(model: string | Uint8Array, options?: SessionOptions): Promise<Session>;
  /**
   * Copies a GPU tensor to the host. A host tensor is returned as it is, so code written for GPU-resident
   * outputs also runs on the CPU provider (where keepOutputsOnGpu is ignored).
   */
  read(t: GpuTensor | Tensor): Promise<Tensor>;
  /**
   * Copies a host tensor into GPU memory once, for feeds reused across many runs (fixed noise, text embeddings,
   * weights being trained). On providers without GPU outputs (CPU) the tensor itself is returned.
   */
  upload(t: Tensor): Promise<Feed>;
  /** Frees GPU tensors (host tensors in the list are skipped, for the same reason). */
  dispose(t: Feed | readonly Feed[]): Promise<void>;
  /** Releases every session and stops the worker. */
  close(): Promise<void>;
}

export interface RuntimeOptions {
  ep: ExecutionProviderChoice;
  /** CPU provider threads (0 = ORT's default). */
  cpuThreads?: number;
}

export function isGpuTensor(t: unknown): t is GpuTensor {
  return typeof t === 'object' && t !== null && (t as GpuTensor).kind === 'gpu';
}
