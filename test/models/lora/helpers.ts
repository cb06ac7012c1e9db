/**
 * Test helpers for style LoRAs: LoRA files made from seeded random tensors in kohya's or peft's layout, for
 * given layers of a model, and the merged weight computed independently of src/models/lora/merge.ts.
 */
import type { Model } from '../../../src/onnx/ir.js';
import { Rng } from '../../../src/random.js';
import { fromFloat16 } from '../../../src/tensor.js';
import type { SafeTensor } from '../../../src/training/safetensors.js';

export interface LoraLayerSpec {
  component: 'unet' | 'text_encoder';
  /** diffusers / transformers module path. */
  module: string;
  /** [r, in] or [r, in, kh, kw]. */
  downDims: number[];
  /** [out, r] or [out, r, 1, 1]. */
  upDims: number[];
  alpha: number;
}

export interface LoraValues {
  spec: LoraLayerSpec;
  down: Float32Array;
  up: Float32Array;
}

const count = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

export function randomLora(specs: LoraLayerSpec[], seed: number): LoraValues[] {
  const rng = new Rng(seed);
  return specs.map((spec) => ({
    spec,
    down: rng.normalArray(count(spec.downDims), 0.2),
    up: rng.normalArray(count(spec.upDims), 0.2),
  }));
}

/** kohya / A1111 keys: lora_unet_<module_with_underscores>.lora_down.weight, .lora_up.weight, .alpha. */
export function kohyaTensors(values: LoraValues[], ldm?: Map<string, string>): Map<string, SafeTensor> {
  const out = new Map<string, SafeTensor>();
  for (const { spec, down, up } of values) {
    const name = (ldm?.get(spec.module) ?? spec.module).replace(/\./g, '_');
    const stem = `lora_${spec.component === 'unet' ? 'unet' : 'te'}_${name}`;
    out.set(`${stem}.lora_down.weight`, { type: 'float32', dims: spec.downDims, data: down });
    out.set(`${stem}.lora_up.weight`, { type: 'float32', dims: spec.upDims, data: up });
    out.set(`${stem}.alpha`, { type: 'float32', dims: [], data: Float32Array.of(spec.alpha) });
  }
  return out;
}

/** peft keys: unet.<module>.lora_A.weight / lora_B.weight, alpha per component in lora_adapter_metadata. */
export function peftTensors(values: LoraValues[]): {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
} {
  const tensors = new Map<string, SafeTensor>();
  const cfg: Record<string, unknown> = {};
  for (const { spec, down, up } of values) {
    tensors.set(`${spec.component}.${spec.module}.lora_A.weight`, { type: 'float32', dims: spec.downDims, data: down });
    tensors.set(`${spec.component}.${spec.module}.lora_B.weight`, { type: 'float32', dims: spec.upDims, data: up });
    cfg[`${spec.component}.lora_alpha`] = spec.alpha;
    cfg[`${spec.component}.r`] = spec.downDims[0];
  }
  return { tensors, metadata: { format: 'pt', lora_adapter_metadata: JSON.stringify(cfg) } };
}

/** The weight initializer's values as float32. */
export function weightValues(model: Model, name: string): Float32Array {
  const t = model.graph.initializers.find((i) => i.name === name);
  if (!t?.data) throw new Error(`no initializer ${name}`);
  return t.type === 'float16' ? fromFloat16(t.data as Uint16Array) : Float32Array.from(t.data as Float32Array);
}

/**
 * W + Σ multiplier · alpha/r · up·down in the stored layout ('rows' [out, K] or 'columns' [K, out]), the
 * deltas summed in float64 and rounded to float32 once (so another summation order gives the same float32).
 */
export function expectedMerge(
  base: Float32Array,
  layout: 'rows' | 'columns',
  parts: { values: LoraValues; multiplier: number }[],
): Float32Array {
  const out = parts[0]!.values.spec.upDims[0]!;
  const inner = count(parts[0]!.values.spec.downDims.slice(1));
  const delta = new Float64Array(out * inner);
  for (const { values, multiplier } of parts) {
    const r = values.spec.downDims[0]!;
    const scale = (multiplier * values.spec.alpha) / r;
    for (let o = 0; o < out; o++)
      for (let k = 0; k < r; k++) {
        const u = values.up[o * r + k]! * scale;
        for (let j = 0; j < inner; j++) delta[o * inner + j] += u * values.down[k * inner + j]!;
      }
  }
  const w = Float32Array.from(base);
  for (let o = 0; o < out; o++)
    for (let j = 0; j < inner; j++) {
      const at = layout === 'rows' ? o * inner + j : j * out + o;
      w[at] = w[at]! + delta[o * inner + j]!;
    }
  return w;
}
