/**
 * LoRA adapter files: safetensors with the key names diffusers/peft use for a UNet LoRA, so other Stable
 * Diffusion tools load them too:
 *   unet.<module>.lora_A.weight  [r, in]       (conv: [r, in, kh, kw])
 *   unet.<module>.lora_B.weight  [out, r]      (conv: [out, r, 1, 1])
 * and `lora_adapter_metadata` (peft's LoraConfig as JSON, keys prefixed with "unet.") plus vidprior's own
 * training record under `vidprior` (base model, prompt, frames, max_timestep, rank, iterations, …).
 * In the ONNX graph A and B are kept transposed for linear layers ([in, r], [r, out]): see lora.ts.
 */
import { VidpriorError } from '../errors.js';
import type { Model } from '../onnx/ir.js';
import { fromFloat16, toFloat16 } from '../tensor.js';
import type { LoraTarget } from './lora.js';
import { loraShapes } from './lora.js';
import { type SafeTensor, readSafetensors, writeSafetensors } from './safetensors.js';

/** What vidprior records about how an adapter was made. */
export interface AdapterRecord {
  baseModel: string;
  prompt: string;
  frames: number;
  maxTimestep: number;
  rank: number;
  alpha: number;
  iterations: number;
  [key: string]: unknown;
}

/** An adapter in graph layout (float32), keyed by module path. */
export interface Adapter {
  rank: number;
  alpha: number;
  weights: Map<string, { kind: 'linear' | 'conv'; a: Float32Array; b: Float32Array; aDims: number[]; bDims: number[] }>;
  record: Partial<AdapterRecord>;
}

function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

export async function saveAdapter(path: string, adapter: Adapter): Promise<void> {
  const tensors = new Map<string, SafeTensor>();
  const modules: string[] = [];
  for (const [module, w] of adapter.weights) {
    modules.push(module);
    if (w.kind === 'linear') {
      const [inF, r] = w.aDims as [number, number];
      const outF = w.bDims[1]!;
      tensors.set(`unet.${module}.lora_A.weight`, { type: 'float32', dims: [r, inF], data: transpose2d(w.a, inF, r) });
      tensors.set(`unet.${module}.lora_B.weight`, {
        type: 'float32',
        dims: [outF, r],
        data: transpose2d(w.b, r, outF),
      });
    } else {
      tensors.set(`unet.${module}.lora_A.weight`, { type: 'float32', dims: w.aDims, data: w.a });
      tensors.set(`unet.${module}.lora_B.weight`, { type: 'float32', dims: w.bDims, data: w.b });
    }
  }
  const leaves = [
    ...new Set(
      modules.map((m) =>
        m
          .split('.')
          .slice(-2)
          .join('.')
          .replace(/^attn[12]\./, ''),
      ),
    ),
  ].sort();
  const peftConfig = {
    'unet.r': adapter.rank,
    'unet.lora_alpha': adapter.alpha,
    'unet.target_modules': leaves,
    'unet.init_lora_weights': 'gaussian',
    'unet.use_dora': false,
  };
  await writeSafetensors(path, tensors, {
    format: 'pt',
    lora_adapter_metadata: JSON.stringify(peftConfig),
    vidprior: JSON.stringify({ ...adapter.record, rank: adapter.rank, alpha: adapter.alpha }),
  });
}

export async function loadAdapter(path: string): Promise<Adapter> {
  const file = await readSafetensors(path);
  let record: Partial<AdapterRecord> = {};
  let peft: Record<string, unknown> = {};
  try {
    if (file.metadata.vidprior) record = JSON.parse(file.metadata.vidprior) as Partial<AdapterRecord>;
  } catch {
    /* foreign adapter */
  }
  try {
    if (file.metadata.lora_adapter_metadata)
      peft = JSON.parse(file.metadata.lora_adapter_metadata) as Record<string, unknown>;
  } catch {
    /* ignore */
  }
  const weights: Adapter['weights'] = new Map();
  const asFloat = (t: SafeTensor): Float32Array =>
    t.type === 'float32'
      ? (t.data as Float32Array)
      : t.type === 'float16'
        ? fromFloat16(t.data as Uint16Array)
        : (() => {
            throw new VidpriorError('E_ADAPTER', `${path}: LoRA tensors must be float32 or float16, got ${t.type}`);
          })();
  let rank = 0;
  for (const [key, a] of file.tensors) {
    const m = /^(?:unet\.|base_model\.model\.)?(.+)\.lora_A\.weight$/.exec(key);
    if (!m) continue;
    const module = m[1]!;
    const b = file.tensors.get(key.replace('lora_A', 'lora_B'));
    if (!b) throw new VidpriorError('E_ADAPTER', `${path}: ${key} has no matching lora_B`, { file: path, key });
    const r = a.dims[0]!;
    rank = rank || r;
    if (a.dims.length === 2) {
      const inF = a.dims[1]!,
        outF = b.dims[0]!;
      if (b.dims[1] !== r)
        throw new VidpriorError('E_ADAPTER', `${path}: ${module} has lora_A rank ${r} but lora_B [${b.dims}]`);
      weights.set(module, {
        kind: 'linear',
        a: transpose2d(asFloat(a), r, inF),
        b: transpose2d(asFloat(b), outF, r),
        aDims: [inF, r],
        bDims: [r, outF],
      });
    } else {
      weights.set(module, { kind: 'conv', a: asFloat(a), b: asFloat(b), aDims: a.dims, bDims: b.dims });
    }
  }
  if (weights.size === 0)
    throw new VidpriorError('E_ADAPTER', `${path} holds no UNet LoRA weights (no "*.lora_A.weight" keys)`, {
      file: path,
    });
  const alpha = Number(record.alpha ?? peft['unet.lora_alpha'] ?? rank);
  return { rank: Number(record.rank ?? peft['unet.r'] ?? rank), alpha, weights, record };
}

/** Checks that `adapter` fits the targets found in a model; the error names the first misfit. */
export function checkAdapterFits(adapter: Adapter, targets: LoraTarget[], source = 'adapter'): void {
  const byModule = new Map(targets.map((t) => [t.module, t]));
  for (const [module, w] of adapter.weights) {
    const t = byModule.get(module);
    if (!t) {
      throw new VidpriorError(
        'E_ADAPTER',
        `${source} does not fit this model: it adapts ${module}, which the model does not have`,
        { module },
      );
    }
    const { aDims, bDims } = loraShapes(t, adapter.rank);
    if (aDims.join() !== w.aDims.join() || bDims.join() !== w.bDims.join()) {
      throw new VidpriorError(
        'E_ADAPTER',
        `${source} does not fit this model: ${module} needs A [${aDims}] and B [${bDims}] at rank ${adapter.rank}, the file has [${w.aDims}] and [${w.bDims}]`,
        { module },
      );
    }
  }
}

/**
 * Folds an adapter into the model's weights (W += α/r · A·B), for inference at the base model's speed.
 * The model's weight tensors are replaced (not mutated), so a decoded model's buffer stays intact.
 */
export function mergeAdapter(model: Model, targets: LoraTarget[], adapter: Adapter, source = 'adapter'): void {
  checkAdapterFits(adapter, targets, source);
  const inits = new Map(model.graph.initializers.map((t, i) => [t.name, i]));
  const scale = adapter.alpha / adapter.rank;
  for (const t of targets) {
    const w = adapter.weights.get(t.module);
    if (!w) continue;
    const idx = inits.get(t.weight);
    const tensor = idx === undefined ? undefined : model.graph.initializers[idx];
    if (!tensor?.data) throw new VidpriorError('E_MODEL_INPUT', `weight ${t.weight} of ${t.module} is not loaded`);
    const base =
      tensor.type === 'float16'
        ? fromFloat16(tensor.data as Uint16Array)
        : Float32Array.from(tensor.data as Float32Array);
    const r = adapter.rank;
    if (t.kind === 'linear') {
      const inF = t.inFeatures,
        outF = t.outFeatures;
      for (let i = 0; i < inF; i++) {
        for (let k = 0; k < r; k++) {
          const aik = w.a[i * r + k]! * scale;
          if (aik === 0) continue;
          for (let o = 0; o < outF; o++) base[i * outF + o] += aik * w.b[k * outF + o]!;
        }
      }
    } else {
      const inner = t.inFeatures * t.kernel![0]! * t.kernel![1]!;
      for (let o = 0; o < t.outFeatures; o++) {
        for (let k = 0; k < r; k++) {
          const bok = w.b[o * r + k]! * scale;
          if (bok === 0) continue;
          for (let j = 0; j < inner; j++) base[o * inner + j] += bok * w.a[k * inner + j]!;
        }
      }
    }
    model.graph.initializers[idx!] = { ...tensor, data: tensor.type === 'float16' ? toFloat16(base) : base };
  }
}
