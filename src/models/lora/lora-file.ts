/**
 * Style LoRA files from other tools, read into one form: per adapted layer, `down` [r, in(, kh, kw)],
 * `up` [out, r(, 1, 1)] and alpha, so that W' = W + weight · (alpha / r) · up · down.
 *
 * Key layouts understood (plain LoRA only; LyCORIS LoHa/LoKr, DoRA and full-weight diffs are refused by name):
 *   kohya / A1111:  lora_unet_<module with _>.lora_down.weight | .lora_up.weight | .alpha
 *                   lora_te_<module with _>…   (the text encoder; lora_te1_/lora_te2_ are SDXL's two encoders)
 *   peft (diffusers ≥ 0.22, vidprior's own adapters):
 *                   unet.<module>.lora_A.weight | .lora_B.weight, text_encoder.<module>.…, alpha from the
 *                   `lora_adapter_metadata` JSON (peft's LoraConfig) or per layer `<module>.alpha`
 *   older diffusers: <prefix>.<module>.lora.down.weight | .lora.up.weight,
 *                   <prefix>.<module>.lora_linear_layer.down.weight | .up.weight,
 *                   unet.<block>.processor.to_q_lora.down.weight (attention processors: to_q/k/v/out)
 * The module names stay as written (dotted, or kohya's underscores); merge.ts matches them to a model's layers.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { VidpriorError } from '../../errors.js';
import { fromFloat16 } from '../../tensor.js';
import { type SafeTensor, decodeSafetensors } from '../../training/safetensors.js';

export type LoraComponent = 'unet' | 'text_encoder';

/** One adapted layer of a LoRA file. */
export interface LoraEntry {
  /** The layer's key stem as written in the file (e.g. `lora_unet_down_blocks_0_…_to_q`), for messages. */
  key: string;
  component: LoraComponent;
  /** The module name: dotted (`down_blocks.0.…to_q`) or kohya's underscored form. */
  name: string;
  style: 'dotted' | 'kohya';
  down: Float32Array;
  downDims: number[];
  up: Float32Array;
  upDims: number[];
  rank: number;
  alpha: number;
}

export interface LoraFile {
  /** The file path (or a label). */
  source: string;
  layout: 'kohya' | 'peft' | 'diffusers';
  entries: LoraEntry[];
  metadata: Record<string, string>;
  /** sha256 of the file's bytes (recorded with adapters trained on top of it). */
  sha256?: string;
}

/** What one tensor key of a LoRA file is. */
export interface LoraKeyPart {
  component: LoraComponent;
  name: string;
  style: 'dotted' | 'kohya';
  role: 'down' | 'up' | 'alpha';
  layout: LoraFile['layout'];
  /** The key without its down/up/alpha suffix. */
  stem: string;
}

const KOHYA = /^lora_(unet|te|te1|te2)_(.+)\.(lora_down\.weight|lora_up\.weight|alpha)$/;
const PEFT = /^(?:(unet|text_encoder|text_encoder_2|base_model\.model)\.)?(.+)\.(lora_A\.weight|lora_B\.weight|alpha)$/;
const DIFFUSERS =
  /^(?:(unet|text_encoder|text_encoder_2)\.)?(.+)\.(lora\.down\.weight|lora\.up\.weight|lora_linear_layer\.down\.weight|lora_linear_layer\.up\.weight)$/;
const PROCESSOR = /^(?:(unet)\.)?(.+)\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$/;
/** Tensors of adapter types that are not plain LoRA, refused with their name. */
const FOREIGN =
  /\.(hada_w[12]_[ab]|hada_t[12]|lokr_w[12](?:_[ab])?|lokr_t2|lora_mid\.weight|dora_scale|lora_magnitude_vector.*|diff|diff_b|on_input|w_norm|b_norm|lora_B\.bias)$/;

function refuse(source: string, key: string, why: string): VidpriorError {
  return new VidpriorError('E_ADAPTER', `${source}: ${key} ${why}`, { file: source, key });
}

/** The component a dotted module name without a prefix belongs to. */
function componentOf(name: string): LoraComponent {
  return /^(text_model|encoder\.layers|embeddings)\b/.test(name) ? 'text_encoder' : 'unet';
}

/** Classifies one tensor key (null: not a LoRA key); throws for SDXL keys. */
export function classifyLoraKey(key: string, source: string): LoraKeyPart | null {
  let m = KOHYA.exec(key);
  if (m) {
    if (m[1] === 'te1' || m[1] === 'te2')
      throw refuse(source, key, 'is for SDXL (two text encoders): vidprior runs SD 1.x models');
    const role = m[3] === 'alpha' ? 'alpha' : m[3] === 'lora_down.weight' ? 'down' : 'up';
    const component = m[1] === 'te' ? 'text_encoder' : 'unet';
    return { component, name: m[2]!, style: 'kohya', role, layout: 'kohya', stem: `lora_${m[1]}_${m[2]}` };
  }
  m = PROCESSOR.exec(key);
  if (m) {
    const module = `${m[2]}.${m[3] === 'to_out' ? 'to_out.0' : m[3]}`;
    const stem = key.replace(/_lora\.(down|up)\.weight$/, '');
    return { component: 'unet', name: module, style: 'dotted', role: m[4] as 'down' | 'up', layout: 'diffusers', stem };
  }
  m = DIFFUSERS.exec(key);
  if (m) {
    if (m[1] === 'text_encoder_2') throw refuse(source, key, 'is for SDXL (a second text encoder)');
    const component = m[1] ? (m[1] === 'unet' ? 'unet' : 'text_encoder') : componentOf(m[2]!);
    const role = m[3]!.endsWith('down.weight') ? 'down' : 'up';
    const stem = key.slice(0, -m[3]!.length - 1);
    return { component, name: m[2]!, style: 'dotted', role, layout: 'diffusers', stem };
  }
  m = PEFT.exec(key);
  if (m) {
    if (m[1] === 'text_encoder_2') throw refuse(source, key, 'is for SDXL (a second text encoder)');
    const component =
      m[1] === 'unet' ? 'unet' : m[1] === 'text_encoder' ? 'text_encoder' : componentOf(m[2]!.replace(/\.lora$/, ''));
    const role = m[3] === 'alpha' ? 'alpha' : m[3] === 'lora_A.weight' ? 'down' : 'up';
    return { component, name: m[2]!, style: 'dotted', role, layout: 'peft', stem: key.slice(0, -m[3]!.length - 1) };
  }
  return null;
}

function floats(t: SafeTensor, source: string, key: string): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array;
  if (t.type === 'float16') return fromFloat16(t.data as Uint16Array);
  if (t.type === 'bfloat16') {
    const raw = t.data as Uint16Array;
    const out = new Float32Array(raw.length);
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < raw.length; i++) bits[i] = raw[i]! << 16;
    return out;
  }
  if (t.type === 'float64') return Float32Array.from(t.data as Float64Array);
  throw refuse(source, key, `is ${t.type}: LoRA tensors must be float32, float16 or bfloat16`);
}

/** peft's lora_alpha for a component, from `lora_adapter_metadata` (prefixed `unet.` / `text_encoder.` or not). */
export function peftAlpha(
  metadata: Record<string, string>,
  component: LoraComponent,
  module: string,
): number | undefined {
  if (!metadata.lora_adapter_metadata) return undefined;
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(metadata.lora_adapter_metadata) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const pick = (k: string): unknown => cfg[`${component}.${k}`] ?? cfg[k];
  // alpha_pattern: per-module alphas keyed by a name (or its tail), as peft writes them.
  const pattern = pick('alpha_pattern');
  if (pattern && typeof pattern === 'object') {
    for (const [k, v] of Object.entries(pattern as Record<string, unknown>)) {
      if (typeof v === 'number' && (module === k || module.endsWith(`.${k}`))) return v;
    }
  }
  const alpha = pick('lora_alpha');
  return typeof alpha === 'number' && alpha > 0 ? alpha : undefined;
}

/** Reads a LoRA safetensors file; throws E_ADAPTER naming the first key it cannot use. */
export async function readLoraFile(path: string): Promise<LoraFile> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new VidpriorError(
      code === 'ENOENT' ? 'E_NOT_FOUND' : 'E_ADAPTER',
      `cannot read LoRA file ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
      { file: path },
    );
  }
  const file = decodeSafetensors(bytes, path);
  // peft's own save_pretrained keeps r and lora_alpha in adapter_config.json beside adapter_model.safetensors.
  const config = join(dirname(path), 'adapter_config.json');
  if (!file.metadata.lora_adapter_metadata && existsSync(config)) {
    file.metadata = { ...file.metadata, lora_adapter_metadata: await readFile(config, 'utf8').catch(() => '{}') };
  }
  const lora = parseLora(file, path);
  lora.sha256 = createHash('sha256').update(bytes).digest('hex');
  return lora;
}

/** Reads the LoRA layers of decoded safetensors (`source` names it in messages). */
export function parseLora(
  file: { tensors: Map<string, SafeTensor>; metadata: Record<string, string> },
  source: string,
): LoraFile {
  const groups = new Map<string, LoraKeyPart & { key: string; down?: SafeTensor; up?: SafeTensor; alpha?: number }>();
  const layouts = new Set<LoraFile['layout']>();
  for (const [key, t] of file.tensors) {
    if (FOREIGN.test(key))
      throw refuse(
        source,
        key,
        'is not a plain LoRA tensor (LyCORIS LoHa/LoKr, DoRA, full-weight diffs and LoRA biases are not supported)',
      );
    const part = classifyLoraKey(key, source);
    if (!part) {
      throw refuse(
        source,
        key,
        'is not a LoRA key vidprior knows (kohya lora_unet_*/lora_te_* with lora_down/lora_up/alpha, or peft/diffusers unet.*/text_encoder.* with lora_A/lora_B)',
      );
    }
    layouts.add(part.layout);
    const id = `${part.component}|${part.name}`;
    const g = groups.get(id) ?? { ...part, key: part.stem };
    if (part.role === 'alpha') {
      const v = floats(t, source, key);
      if (v.length !== 1) throw refuse(source, key, `should hold one number, it has shape [${t.dims}]`);
      g.alpha = v[0]!;
    } else if (g[part.role]) {
      throw refuse(source, key, `repeats the ${part.role} weight of ${g.key}`);
    } else {
      g[part.role] = t;
    }
    groups.set(id, g);
  }
  const entries: LoraEntry[] = [];
  for (const g of groups.values()) {
    if (!g.down || !g.up) {
      const missing = g.down ? 'up (lora_up / lora_B)' : 'down (lora_down / lora_A)';
      throw refuse(source, g.key, `has no ${missing} weight`);
    }
    const rank = g.down.dims[0]!;
    if (g.down.dims.length < 2 || g.up.dims.length < 2 || g.up.dims[1] !== rank) {
      throw refuse(source, g.key, `has down [${g.down.dims}] and up [${g.up.dims}], which do not make a rank-r pair`);
    }
    if (g.up.dims.slice(2).some((d) => d !== 1)) {
      throw refuse(
        source,
        g.key,
        `has an up weight with a kernel [${g.up.dims}]: only 1×1 up projections are plain LoRA`,
      );
    }
    const alpha = g.alpha ?? (g.layout !== 'kohya' ? peftAlpha(file.metadata, g.component, g.name) : undefined) ?? rank;
    if (!Number.isFinite(alpha)) throw refuse(source, g.key, `has alpha ${alpha}`);
    entries.push({
      key: g.key,
      component: g.component,
      name: g.name,
      style: g.style,
      down: floats(g.down, source, `${g.key} down`),
      downDims: g.down.dims,
      up: floats(g.up, source, `${g.key} up`),
      upDims: g.up.dims,
      rank,
      alpha,
    });
  }
  if (entries.length === 0) {
    throw new VidpriorError('E_ADAPTER', `${source} holds no LoRA weights`, { file: source });
  }
  const layout = layouts.has('kohya') ? 'kohya' : layouts.has('peft') ? 'peft' : 'diffusers';
  return { source, layout, entries, metadata: file.metadata };
}

/** A style LoRA and its multiplier, as given on the command line: `file.safetensors[:weight]`. */
export interface LoraSpec {
  path: string;
  weight: number;
}

/** Parses `file.safetensors[:weight]` (weight default 1; a Windows drive letter is not a weight). */
export function parseLoraSpec(spec: string): LoraSpec {
  const m = /^(.+):([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$/.exec(spec);
  const path = m ? m[1]! : spec;
  const weight = m ? Number(m[2]) : 1;
  if (!path) throw new VidpriorError('E_BAD_REQUEST', `--lora ${JSON.stringify(spec)} names no file`, { lora: spec });
  if (!Number.isFinite(weight) || Math.abs(weight) > 10) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `--lora ${JSON.stringify(spec)}: the weight must be a number from -10 to 10, got ${m?.[2]}`,
      { lora: spec },
    );
  }
  return { path, weight };
}

/** A short label for messages: the file name and weight. */
export function loraLabel(spec: LoraSpec): string {
  return `${basename(spec.path)}${spec.weight === 1 ? '' : `:${spec.weight}`}`;
}
