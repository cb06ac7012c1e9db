/**
 * Maps vidprior's SessionOptions onto onnxruntime-node's. Pure (no ORT import), so it is unit-tested without
 * a worker. Worker side only.
 */
import type { ExecutionProvider, SessionOptions } from './types.js';

/** The subset of ORT's InferenceSession.SessionOptions that vidprior sets. */
export interface OrtSessionOptions {
  executionProviders: (string | { name: string; [key: string]: unknown })[];
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  intraOpNumThreads?: number;
  freeDimensionOverrides?: Record<string, number>;
  preferredOutputLocation?: 'cpu' | 'gpu-buffer' | Record<string, 'cpu' | 'gpu-buffer'>;
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  externalData?: { path: string; data: Uint8Array }[];
  enableProfiling?: boolean;
  profileFilePrefix?: string;
  extra?: Record<string, Record<string, string>>;
}

/** True when this provider can keep outputs in GPU memory through ORT's 'gpu-buffer' location. */
export function supportsGpuOutputs(ep: ExecutionProvider): boolean {
  // Only the WebGPU provider is verified with gpu-buffer outputs in onnxruntime-node; on CPU (and on CUDA,
  // untested here) keepOutputsOnGpu is ignored and outputs come back as host tensors.
  return ep === 'webgpu';
}

/**
 * Builds ORT session options (without externalData, which the worker adds as bytes). Output names listed in
 * keepOutputsOnGpu are checked against the model by the worker once the session exists.
 */
export function toOrtSessionOptions(
  options: SessionOptions,
  ep: ExecutionProvider,
  cpuThreads: number,
): OrtSessionOptions {
  // Severity 4 (fatal only): every ORT error reaches the caller as a VidpriorError with ORT's message, so ORT's
  // own log lines would only repeat it on stderr.
  const out: OrtSessionOptions = { executionProviders: [providerEntry(ep, options)], logSeverityLevel: 4 };
  if (options.graphOptimization) out.graphOptimizationLevel = options.graphOptimization;
  if (cpuThreads > 0) out.intraOpNumThreads = cpuThreads;
  if (options.profilePrefix) {
    out.enableProfiling = true;
    out.profileFilePrefix = options.profilePrefix;
  }
  if (options.freeDimensionOverrides && Object.keys(options.freeDimensionOverrides).length > 0) {
    out.freeDimensionOverrides = { ...options.freeDimensionOverrides };
  }
  const extra: Record<string, Record<string, string>> = {};
  if (options.disabledOptimizers?.length) {
    extra.optimization = { disable_specified_optimizers: options.disabledOptimizers.join(',') };
  }
  // On the CPU provider there is nothing to fall back from (ORT would refuse every node).
  if (options.disallowCpuFallback && ep !== 'cpu') extra.session = { disable_cpu_ep_fallback: '1' };
  if (Object.keys(extra).length > 0) out.extra = extra;

  const keep = options.keepOutputsOnGpu;
  if (keep && supportsGpuOutputs(ep)) {
    if (keep === true) {
      out.preferredOutputLocation = 'gpu-buffer';
    } else if (keep.length > 0) {
      // Outputs missing from the map stay on the CPU.
      out.preferredOutputLocation = Object.fromEntries(keep.map((name) => [name, 'gpu-buffer' as const]));
    }
  }
  return out;
}

function providerEntry(
  ep: ExecutionProvider,
  options: SessionOptions,
): OrtSessionOptions['executionProviders'][number] {
  if (ep === 'webgpu')
    return options.preferredLayout ? { name: 'webgpu', preferredLayout: options.preferredLayout } : { name: 'webgpu' };
  if (ep === 'cuda') return { name: 'cuda', deviceId: 0 };
  return 'cpu';
}
