/**
 * The messages between the runtime's main-thread side (index.ts) and its worker (worker.ts). Both sides import
 * only types from here (plus the error (de)serialisers), so the worker protocol lives in one place.
 *
 * Every request carries an `id`; the worker answers each with exactly one response of the same id, in order
 * (ORT's create/run block the worker, so requests are naturally serialised).
 */
import { type ErrorCode, VidpriorError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type {
  ExecutionProvider,
  ExecutionProviderChoice,
  GpuTensor,
  IoMeta,
  ProviderDecision,
  SessionOptions,
} from './types.js';

/** A feed as it crosses the thread boundary: a host tensor, or a reference to a tensor the worker holds. */
export type WireFeed = Tensor | GpuTensor;

export type Request =
  /** `tensorIdBase`: GPU tensor ids start there, so handles of different runtimes never collide. */
  | { id: number; op: 'init'; ep: ExecutionProviderChoice; cpuThreads: number; tensorIdBase: number }
  | { id: number; op: 'create'; model: string | Uint8Array; options: WireSessionOptions }
  | { id: number; op: 'run'; session: number; feeds: Record<string, WireFeed>; outputNames?: string[] }
  | { id: number; op: 'release'; session: number }
  | { id: number; op: 'read'; tensor: number }
  | { id: number; op: 'upload'; tensor: Tensor }
  | { id: number; op: 'dispose'; tensors: number[] }
  | { id: number; op: 'close' };

/** SessionOptions as posted: the label is always set (externalData given as paths is read in the worker). */
export type WireSessionOptions = SessionOptions & { label: string };

export interface InitResult {
  decision: ProviderDecision;
  ortVersion: string;
}
export interface CreateResult {
  session: number;
  inputs: IoMeta[];
  outputs: IoMeta[];
  ep: ExecutionProvider;
}
export type RunResult = Record<string, Tensor | GpuTensor>;

export type Response = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: WireError };

export interface WireError {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

/** Flattens any error for postMessage (structured clone keeps neither the class nor the code). */
export function toWireError(err: unknown): WireError {
  if (err instanceof VidpriorError) return { code: err.code, message: err.message, details: err.details };
  const message = err instanceof Error ? err.message : String(err);
  return { code: 'E_RUNTIME', message };
}

export function fromWireError(e: WireError): VidpriorError {
  return new VidpriorError(e.code, e.message, e.details);
}
