/**
 * The builder's seeded random weights written in the layouts users' models come in, for tests and
 * benchmarks of the checkpoint converter (never a trained model):
 *
 *   - a single-file LDM checkpoint (.safetensors; optionally with the extra keys full training checkpoints
 *     carry: EMA copies, schedule buffers, position_ids, the VAE's loss);
 *   - a diffusers folder (model_index.json, unet/ vae/ text_encoder/ with config.json and safetensors, plain
 *     or an fp16 variant, tokenizer/, scheduler/).
 *
 * Weights are in PyTorch's layouts (nn.Linear [out, in], norms [C], the LDM VAE attention as 1×1 convs) and
 * float32, float16 or bfloat16. Files are streamed one tensor at a time, so an SD 1.5-sized checkpoint is
 * written without holding its weights.
 */
import { type FileHandle, mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ElemType, type TypedData, bytesOf, elementCount } from '../../onnx/ir.js';
import { toFloat16 } from '../../tensor.js';
import type { SdConfig } from './config.js';
import { MODEL_INDEX, SCHEDULER_CONFIG, componentConfig } from './folder.js';
import { buildComponent } from './index.js';
import { ldmNamer } from './ldm-names.js';
import { syntheticTokenizer } from './tokenizer-files.js';
import { type ParamSpec, paramValues } from './weights.js';

export type StoredType = 'float32' | 'float16' | 'bfloat16';

export interface WriteCheckpointOptions {
  seed?: number;
  dtype?: StoredType;
  /** LDM only: add the keys a full training checkpoint carries besides the model (all to be ignored). */
  extraKeys?: boolean;
  /** diffusers only: write `*.<variant>.safetensors` (e.g. fp16) instead of the plain files. */
  variant?: string;
}

interface Entry {
  name: string;
  type: ElemType;
  dims: number[];
  data: () => TypedData;
}

const DTYPE: Partial<Record<ElemType, string>> = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  int32: 'I32',
};

type Part = 'unet' | 'vae' | 'text_encoder';

function toStored(values: Float32Array, type: StoredType): TypedData {
  if (type === 'float32') return values;
  if (type === 'float16') return toFloat16(values);
  // bfloat16: round to nearest even on the upper 16 bits.
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < u.length; i++) out[i] = (u[i]! + 0x7fff + ((u[i]! >>> 16) & 1)) >>> 16;
  return out;
}

/** A parameter in PyTorch's layout: Linear weights back to [out, in], norm affines [C]. */
function torchParam(spec: ParamSpec, seed: number, type: StoredType, conv1x1: boolean): Omit<Entry, 'name'> {
  let dims = spec.dims;
  if ((spec.init === 'norm-scale' || spec.init === 'small') && dims.length > 1) dims = [elementCount(dims)];
  if (spec.transposed) dims = [spec.dims[1]!, spec.dims[0]!];
  if (conv1x1) dims = [...dims, 1, 1];
  return {
    type,
    dims,
    data: () => {
      let v = paramValues(spec, seed);
      if (spec.transposed) {
        const [rows, cols] = spec.dims as [number, number];
        const t = new Float32Array(v.length);
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = v[r * cols + c]!;
        v = t;
      }
      return toStored(v, type);
    },
  };
}

/** Every parameter of the model, by part, in build order. */
function partParams(cfg: SdConfig): Record<Part, ParamSpec[]> {
  const specs = (c: Parameters<typeof buildComponent>[0]) => [
    ...buildComponent(c, cfg, { weights: 'none' }).params.values(),
  ];
  return {
    text_encoder: specs('text_encoder'),
    unet: specs('unet'),
    vae: [...specs('vae_encoder'), ...specs('vae_decoder')],
  };
}

async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.byteLength; ) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done, position + done);
    done += bytesWritten;
  }
}

/** Streams `entries` into a safetensors file; returns its size. */
async function writeSafetensorsStream(
  path: string,
  entries: Entry[],
  metadata?: Record<string, string>,
): Promise<number> {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const e of entries) {
    const size = elementCount(e.dims) * (e.type === 'float32' || e.type === 'int32' ? 4 : e.type === 'int64' ? 8 : 2);
    header[e.name] = { dtype: DTYPE[e.type], shape: e.dims, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8);
  const head = Buffer.alloc(8 + Buffer.byteLength(json));
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  head.write(json, 8, 'utf8');
  const fh = await open(path, 'w');
  try {
    await writeAll(fh, head, 0);
    let pos = head.byteLength;
    for (const e of entries) {
      const bytes = bytesOf(e.data());
      await writeAll(fh, bytes, pos);
      pos += bytes.byteLength;
    }
    return pos;
  } finally {
    await fh.close();
  }
}

function constant(name: string, type: ElemType, dims: number[], fill: (i: number) => number): Entry {
  return {
    name,
    type,
    dims,
    data: () => {
      const n = elementCount(dims);
      if (type === 'int64') return BigInt64Array.from({ length: n }, (_, i) => BigInt(fill(i)));
      if (type === 'int32') return Int32Array.from({ length: n }, (_, i) => fill(i));
      return Float32Array.from({ length: n }, (_, i) => fill(i));
    },
  };
}

/** The keys of a full training checkpoint that are not the model (a loader must ignore them). */
function trainingExtras(cfg: SdConfig): Entry[] {
  const ch = cfg.unet.block_out_channels[0]!;
  const schedule = ['alphas_cumprod', 'alphas_cumprod_prev', 'betas', 'sqrt_alphas_cumprod', 'posterior_variance'];
  return [
    ...schedule.map((n, k) => constant(n, 'float32', [1000], (i) => (k + 1) / (i + 2))),
    constant('model_ema.decay', 'float32', [], () => 0.9999),
    constant('model_ema.num_updates', 'int32', [], () => 1234),
    constant('model_ema.diffusion_modelinput_blocks00bias', 'float32', [ch], (i) => i / 100),
    constant('model_ema.diffusion_modeltime_embed0bias', 'float32', [4 * ch], (i) => -i / 100),
    constant(
      'cond_stage_model.transformer.text_model.embeddings.position_ids',
      'int64',
      [1, cfg.text_encoder.max_position_embeddings],
      (i) => i,
    ),
    constant('first_stage_model.loss.logvar', 'float32', [], () => 0),
  ];
}

/** Writes a single-file checkpoint with LDM keys; returns its size in bytes. */
export async function writeLdmCheckpoint(path: string, cfg: SdConfig, o: WriteCheckpointOptions = {}): Promise<number> {
  const seed = o.seed ?? 0;
  const type = o.dtype ?? 'float32';
  const name = ldmNamer(cfg);
  const entries: Entry[] = [];
  for (const [part, specs] of Object.entries(partParams(cfg)) as [Part, ParamSpec[]][]) {
    for (const spec of specs) {
      const conv1x1 = part === 'vae' && /attentions\.0\.to_(q|k|v|out\.0)\.weight$/.test(spec.name);
      entries.push({ name: name(part, spec.name), ...torchParam(spec, seed, type, conv1x1) });
    }
  }
  if (o.extraKeys) entries.push(...trainingExtras(cfg));
  return writeSafetensorsStream(path, entries, { format: 'pt' });
}

const WEIGHT_FILE: Record<Part, string> = {
  unet: 'diffusion_pytorch_model',
  vae: 'diffusion_pytorch_model',
  text_encoder: 'model',
};

/** Writes a diffusers folder (which must not exist yet) with the model's configs, tokenizer and scheduler. */
export async function writeDiffusersFolder(dir: string, cfg: SdConfig, o: WriteCheckpointOptions = {}): Promise<void> {
  const seed = o.seed ?? 0;
  const type = o.dtype ?? 'float32';
  const suffix = o.variant ? `.${o.variant}` : '';
  const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
  await mkdir(dir, { recursive: true });
  const params = partParams(cfg);
  for (const part of ['unet', 'vae', 'text_encoder'] as Part[]) {
    await mkdir(join(dir, part));
    const entries = params[part].map((spec) => ({ name: spec.name, ...torchParam(spec, seed, type, false) }));
    await writeSafetensorsStream(join(dir, part, `${WEIGHT_FILE[part]}${suffix}.safetensors`), entries, {
      format: 'pt',
    });
    const config = componentConfig(part === 'vae' ? 'vae_encoder' : part, cfg, type);
    await writeFile(join(dir, part, 'config.json'), json(config));
  }
  const tok = syntheticTokenizer(cfg.text_encoder.vocab_size);
  await mkdir(join(dir, 'tokenizer'));
  await writeFile(join(dir, 'tokenizer', 'vocab.json'), JSON.stringify(tok.vocab));
  await writeFile(join(dir, 'tokenizer', 'merges.txt'), tok.merges);
  await mkdir(join(dir, 'scheduler'));
  await writeFile(join(dir, 'scheduler', 'scheduler_config.json'), json(SCHEDULER_CONFIG));
  await writeFile(
    join(dir, 'model_index.json'),
    json({
      ...MODEL_INDEX,
      _class_name: 'StableDiffusionPipeline',
      text_encoder: ['transformers', 'CLIPTextModel'],
      unet: ['diffusers', 'UNet2DConditionModel'],
      vae: ['diffusers', 'AutoencoderKL'],
      vae_decoder: undefined,
      vae_encoder: undefined,
    }),
  );
}
