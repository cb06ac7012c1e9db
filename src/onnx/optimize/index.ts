/**
 * Graph optimizations for GPU inference (ORT's WebGPU provider first): each pass takes a model and returns a
 * new one with a report of what it changed and what it left alone and why. `optimizeForGpu` chains them.
 *
 *   const { model, reports } = optimizeForGpu(unet, { attention: true, float16: true });
 *
 * Order matters: fusions match the float32 graph as exported, then float16 conversion (src/onnx/
 * convert-float16.ts) converts the fused graph, MultiHeadAttention included.
 *
 * These graphs are for inference. Training (src/training) builds its backward pass from the unfused model:
 * autodiff has no rule for com.microsoft ops, by design (see src/autodiff).
 */
import type { Model } from '../ir.js';
import { DEFAULT_FP32_OPS, type Float16Options, convertToFloat16 } from '../convert-float16.js';
import { fuseAttention } from './attention.js';
import { fuseBiasSplitGelu, fuseLayerNorm } from './norm-gelu.js';
import type { PassOptions, PassReport } from './match.js';

export { fuseAttention } from './attention.js';
export { fuseBiasSplitGelu, fuseLayerNorm } from './norm-gelu.js';
export { pipelineInputShapes, type PassEntry, type PassOptions, type PassReport, type PassResult } from './match.js';

export interface GpuOptimizeOptions extends PassOptions {
  /** Fuse attention blocks into com.microsoft MultiHeadAttention (default true). */
  attention?: boolean;
  /** Fuse LayerNorm chains of opset < 17 exports into LayerNormalization (default true; runs everywhere). */
  layerNorm?: boolean;
  /**
   * Fuse GEGLU into com.microsoft BiasSplitGelu (default false): ORT has that kernel on WebGPU and CUDA only,
   * so a model fused this way no longer runs on the CPU provider.
   */
  biasSplitGelu?: boolean;
  /** Convert to float16 after the fusions (default false); an object passes options to convertToFloat16. */
  float16?: boolean | Float16Options;
}

export interface GpuOptimizeResult {
  model: Model;
  reports: PassReport[];
}

/** Runs the chosen passes in order; the input model is not changed. */
export function optimizeForGpu(model: Model, opts: GpuOptimizeOptions = {}): GpuOptimizeResult {
  const reports: PassReport[] = [];
  let m = model;
  const passes = [
    [opts.layerNorm ?? true, fuseLayerNorm],
    [opts.attention ?? true, fuseAttention],
    [opts.biasSplitGelu ?? false, fuseBiasSplitGelu],
  ] as const;
  for (const [on, pass] of passes) {
    if (!on) continue;
    const r = pass(m, opts);
    m = r.model;
    reports.push(r.report);
  }
  if (opts.float16) {
    const before = m.graph.nodes.length;
    const f16: Float16Options = opts.float16 === true ? {} : { ...opts.float16 };
    // WebGPU's BiasSplitGelu gives non-finite values in float16 for moderate gates (3, 5.5 at width 256 on
    // lavapipe, ORT 1.30): it stays float32, between Casts.
    const keepF32 = m.graph.nodes.some((n) => n.opType === 'BiasSplitGelu');
    if (keepF32) f16.blockOps = [...(f16.blockOps ?? DEFAULT_FP32_OPS), 'BiasSplitGelu'];
    m = convertToFloat16(m, f16);
    const notes = [`${m.graph.nodes.length - before} Cast nodes added`];
    if (keepF32) notes.push('BiasSplitGelu kept in float32');
    reports.push({ pass: 'float16', fused: [], skipped: [], notes });
  }
  return { model: m, reports };
}

/** One line per pass: how many fused, how many skipped and the distinct reasons. */
export function formatReports(reports: readonly PassReport[]): string {
  return reports
    .map((r) => {
      const reasons = [...new Set(r.skipped.map((s) => s.reason))];
      const notes = r.notes?.length ? `; ${r.notes.join('; ')}` : '';
      return `${r.pass}: ${r.fused.length} fused, ${r.skipped.length} skipped${reasons.length ? ` (${reasons.join('; ')})` : ''}${notes}`;
    })
    .join('\n');
}
