/**
 * Merges style LoRAs into a model's weights before a session is made: for each adapted layer,
 *   W' = W + Σ_files weight · (alpha / r) · up · down
 * with the files' deltas summed in one product and added to W once (float16 weights are widened, merged and
 * narrowed); src/models/lora/product.ts computes the products (float64 JavaScript, or a MatMul on the runtime).
 * Layers are matched by module path in every naming the files use: diffusers/transformers dotted names,
 * kohya's underscored names, and for the UNet the original LDM names (`input_blocks.4.1.…`). A LoRA layer
 * that matches nothing, or whose shapes do not fit the layer, is an E_ADAPTER error naming its key.
 */
import { VidpriorError } from '../../errors.js';
import type { Model, TensorValue } from '../../onnx/ir.js';
import { fromFloat16, toFloat16 } from '../../tensor.js';
import { type LayerWeight, findLayers, kohyaName, ldmNames } from './layers.js';
import type { LoraComponent, LoraEntry, LoraFile } from './lora-file.js';
import { type LowRankProduct, jsProduct } from './product.js';

export interface WeightedLora {
  file: LoraFile;
  /** The multiplier (A1111's `<lora:name:weight>`). */
  weight: number;
}

export interface MergeReport {
  /** Layers whose weights changed. */
  layers: number;
  /** Layers adapted per file, in the order given. */
  perFile: { source: string; layers: number }[];
}

const COMPONENT_NAME: Record<LoraComponent, string> = { unet: 'UNet', text_encoder: 'text encoder' };

/** Every name a layer may be given in a LoRA file → the layer. */
function layerIndex(layers: Map<string, LayerWeight>, component: LoraComponent): Map<string, LayerWeight> {
  const index = new Map<string, LayerWeight>();
  const add = (name: string, layer: LayerWeight) => {
    if (!index.has(name)) index.set(name, layer);
    const k = kohyaName(name);
    if (!index.has(k)) index.set(k, layer);
  };
  for (const [module, layer] of layers) {
    add(module, layer);
    if (component === 'text_encoder') add(module.replace(/^text_model\./, ''), layer);
  }
  if (component === 'unet') for (const [module, ldm] of ldmNames(layers.keys())) add(ldm, layers.get(module)!);
  return index;
}

/** How many node inputs (and graph outputs) read each value. */
function useCounts(model: Model): Map<string, number> {
  const uses = new Map<string, number>();
  for (const n of model.graph.nodes) for (const i of n.inputs) if (i) uses.set(i, (uses.get(i) ?? 0) + 1);
  for (const o of model.graph.outputs) uses.set(o.name, (uses.get(o.name) ?? 0) + 1);
  return uses;
}

/** Gives `layer` its own copy of a weight other nodes share (exporters deduplicate equal tensors). */
function unshare(model: Model, layer: LayerWeight, uses: Map<string, number>): TensorValue {
  const t = layer.tensor;
  if ((uses.get(t.name) ?? 0) <= 1 && (!layer.via || (uses.get(layer.via.outputs[0]!) ?? 0) <= 1)) return t;
  const names = new Set(model.graph.initializers.map((i) => i.name));
  let name = `${t.name}.lora`;
  for (let k = 1; names.has(name); k++) name = `${t.name}.lora${k}`;
  const copy: TensorValue = { ...t, name, external: undefined };
  model.graph.initializers.push(copy);
  if (!layer.via || layer.via.opType === 'Identity') {
    layer.node.inputs[1] = name;
  } else if ((uses.get(layer.via.outputs[0]!) ?? 0) <= 1) {
    layer.via.inputs[0] = name;
  } else {
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `cannot merge a LoRA into ${layer.module}: its weight ${t.name} reaches other layers through ${layer.via.opType} node "${layer.via.name}"`,
      { module: layer.module },
    );
  }
  return copy;
}

/**
 * Merges `loras` (their entries for `component`) into `model` in place. `product` computes the low-rank
 * products (default: exact float64 JavaScript; `runtimeProduct` for speed).
 */
export async function mergeLoras(
  model: Model,
  component: LoraComponent,
  loras: WeightedLora[],
  product: LowRankProduct = jsProduct,
): Promise<MergeReport> {
  const layers = findLayers(model, component);
  const index = layerIndex(layers, component);
  // 1. Match every entry to a layer and check its shapes, before any weight changes.
  const byLayer = new Map<LayerWeight, { entry: LoraEntry; scale: number }[]>();
  const perFile: MergeReport['perFile'] = [];
  for (const { file, weight } of loras) {
    let count = 0;
    for (const entry of file.entries) {
      if (entry.component !== component) continue;
      const layer = index.get(entry.name);
      if (!layer) {
        throw new VidpriorError(
          'E_ADAPTER',
          `${file.source}: ${entry.key} matches no layer of this model's ${COMPONENT_NAME[component]}` +
            (layers.size === 0
              ? ' (no layers were found by name: is this an optimized or renamed export?)'
              : /to_[qkv]|[qkv]_proj/.test(entry.name)
                ? ' (exports optimized for inference fuse q/k/v into one MatMul: use an unoptimized export)'
                : ''),
          { file: file.source, key: entry.key },
        );
      }
      const out = entry.upDims[0]!;
      const inner = entry.downDims.slice(1).reduce((a, b) => a * b, 1);
      if (out !== layer.outFeatures || inner !== layer.inFeatures) {
        throw new VidpriorError(
          'E_ADAPTER',
          `${file.source}: ${entry.key} has down [${entry.downDims}] and up [${entry.upDims}], which do not fit ${layer.module} ` +
            `(${layer.outFeatures} outputs × ${layer.inFeatures} inputs${layer.op === 'Conv' ? ` = [${layer.tensor.dims}]` : ''})`,
          { file: file.source, key: entry.key },
        );
      }
      const list = byLayer.get(layer) ?? [];
      list.push({ entry, scale: (weight * entry.alpha) / entry.rank });
      byLayer.set(layer, list);
      count++;
    }
    perFile.push({ source: file.source, layers: count });
  }
  // 2. Merge layer by layer (one delta at a time keeps the extra memory to the largest layer).
  const uses = useCounts(model);
  for (const [layer, parts] of byLayer) {
    const tensor = unshare(model, layer, uses);
    if (!tensor.data) {
      throw new VidpriorError('E_MODEL_INPUT', `weight ${tensor.name} of ${layer.module} is not loaded`, {
        module: layer.module,
      });
    }
    if (tensor.type !== 'float32' && tensor.type !== 'float16') {
      throw new VidpriorError(
        'E_MODEL_INPUT',
        `weight ${tensor.name} of ${layer.module} is ${tensor.type}: LoRAs merge into float32 or float16 weights`,
        { module: layer.module },
      );
    }
    const out = layer.outFeatures;
    const inner = layer.inFeatures;
    // All files' LoRAs on this layer as one product Δ = U·D, stacked along the rank with the scales folded
    // into U [out, R]; D [R, K]. Computed in the weight's stored layout: U·D for rows, Dᵀ·Uᵀ for columns.
    const R = parts.reduce((a, p) => a + p.entry.rank, 0);
    const U = new Float64Array(out * R);
    const D = new Float64Array(R * inner);
    let offset = 0;
    for (const { entry, scale } of parts) {
      const r = entry.rank;
      for (let o = 0; o < out; o++) for (let k = 0; k < r; k++) U[o * R + offset + k] = entry.up[o * r + k]! * scale;
      D.set(entry.down, offset * inner);
      offset += r;
    }
    const delta =
      layer.layout === 'rows'
        ? await product(U, D, out, R, inner)
        : await product(transpose(D, R, inner), transpose(U, out, R), inner, R, out);
    const w =
      tensor.type === 'float16'
        ? fromFloat16(tensor.data as Uint16Array)
        : Float32Array.from(tensor.data as Float32Array);
    for (let i = 0; i < w.length; i++) w[i] = w[i]! + delta[i]!;
    const merged: TensorValue = { ...tensor, data: tensor.type === 'float16' ? toFloat16(w) : w };
    const at = model.graph.initializers.indexOf(tensor);
    model.graph.initializers[at] = merged;
  }
  return { layers: byLayer.size, perFile };
}

/** [rows, cols] → [cols, rows]. */
function transpose(m: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(m.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = m[i * cols + j]!;
  return t;
}
