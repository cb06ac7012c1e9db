/**
 * Test helper: the shared fixture's model D (../shared/fixtures/sd1-checkpoint-d, a tiny SD 1.x saved by the
 * reference implementation as a diffusers folder with safetensors weights) as an ONNX model folder, made with
 * the project's builder from the folder's configs and filled with its weights. Until vidprior loads diffusers
 * folders itself, this is how the LoRA tests get a model whose reference outputs are known.
 *
 * Weights go in by name (the builder names parameters by their state-dict keys); a Linear weight consumed by
 * a MatMul is stored transposed, a GroupNorm's [C] affine as [C, 1, 1] or [C, 1].
 */
import { mkdir, readFile, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildComponent, mergeConfig, preset, validateConfig } from '../../../src/models/builder/index.js';
import type { PartialSdConfig } from '../../../src/models/builder/index.js';
import { COMPONENTS, type Component } from '../../../src/models/folder.js';
import { encodeModel } from '../../../src/onnx/codec.js';
import type { Model } from '../../../src/onnx/ir.js';
import { fromFloat16 } from '../../../src/tensor.js';
import { readSafetensors } from '../../../src/training/safetensors.js';

export const MODEL_D = '../shared/fixtures/sd1-checkpoint-d';

const WEIGHT_FILE: Record<Component, string> = {
  text_encoder: 'text_encoder/model.safetensors',
  unet: 'unet/diffusion_pytorch_model.safetensors',
  vae_encoder: 'vae/diffusion_pytorch_model.safetensors',
  vae_decoder: 'vae/diffusion_pytorch_model.safetensors',
};

async function json(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
}

function fill(model: Model, weights: Map<string, { dims: number[]; data: Float32Array }>): void {
  const matmulWeights = new Set(model.graph.nodes.filter((n) => n.opType === 'MatMul').map((n) => n.inputs[1]!));
  for (const t of model.graph.initializers) {
    if (t.data) continue;
    const src = weights.get(t.name);
    if (!src) throw new Error(`model D has no weight ${t.name}`);
    if (matmulWeights.has(t.name)) {
      const [out, inF] = src.dims as [number, number];
      const data = new Float32Array(src.data.length);
      for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) data[i * out + o] = src.data[o * inF + i]!;
      t.data = data;
    } else {
      if (src.data.length !== t.dims.reduce((a, b) => a * b, 1))
        throw new Error(`${t.name}: [${src.dims}] vs [${t.dims}]`);
      t.data = src.data;
    }
  }
}

/** Writes model D as a diffusers ONNX folder into `dir` (which must exist) and returns `dir`. */
export async function writeModelD(dir: string): Promise<string> {
  const te = await json(join(MODEL_D, 'diffusers/text_encoder/config.json'));
  const unet = await json(join(MODEL_D, 'diffusers/unet/config.json'));
  const vae = await json(join(MODEL_D, 'diffusers/vae/config.json'));
  const pick = (o: Record<string, unknown>, base: object) =>
    Object.fromEntries(
      Object.keys(base)
        .filter((k) => k in o)
        .map((k) => [k, o[k]]),
    );
  const tiny = preset('tiny');
  const cfg = validateConfig(
    mergeConfig(tiny, {
      text_encoder: pick(te, tiny.text_encoder),
      unet: pick(unet, tiny.unet),
      vae: pick(vae, tiny.vae),
    } as PartialSdConfig),
  );
  for (const c of COMPONENTS) {
    const file = await readSafetensors(join(MODEL_D, 'diffusers', WEIGHT_FILE[c]));
    const weights = new Map<string, { dims: number[]; data: Float32Array }>();
    for (const [k, t] of file.tensors) {
      if (t.type !== 'float32' && t.type !== 'float16') continue;
      const data = t.type === 'float16' ? fromFloat16(t.data as Uint16Array) : (t.data as Float32Array);
      weights.set(k, { dims: t.dims, data });
    }
    const built = buildComponent(c, cfg, { weights: 'none', opset: 17 });
    fill(built.model, weights);
    await mkdir(join(dir, c), { recursive: true });
    await writeFile(join(dir, c, 'model.onnx'), encodeModel(built.model));
  }
  await writeFile(join(dir, 'vae_decoder', 'config.json'), JSON.stringify(vae));
  for (const sub of ['tokenizer', 'scheduler']) await mkdir(join(dir, sub), { recursive: true });
  for (const f of [
    'tokenizer/vocab.json',
    'tokenizer/merges.txt',
    'tokenizer/tokenizer_config.json',
    'scheduler/scheduler_config.json',
  ])
    await copyFile(join(MODEL_D, 'diffusers', f), join(dir, f));
  return dir;
}
