/**
 * Shared by the checkpoint tests: module outputs of a loaded model for fixed inputs (text encoder states,
 * UNet ε, VAE encoder mean and decoder image), and their comparison.
 */
import assert from 'node:assert/strict';
import { loadModelFolder } from '../../../src/models/loader.js';
import type { StableDiffusionModel } from '../../../src/models/types.js';
import { Rng } from '../../../src/random.js';
import type { Runtime } from '../../../src/runtime/index.js';
import { type Tensor, asFloat32, castFloat, float32, int32, int64 } from '../../../src/tensor.js';
import { maxAbsDiff } from '../../assert-close.js';

export interface ModuleOutputs {
  text: Float32Array;
  unet: Float32Array;
  vaeMean: Float32Array;
  vaeDecoded: Float32Array;
}

export interface ModuleInputs {
  ids: { dims: number[]; data: number[] };
  latent: { dims: number[]; data: Float32Array };
  /** Used as the UNet's context when given (else the text encoder's output). */
  context?: { dims: number[]; data: Float32Array };
  timestep: number;
  image: { dims: number[]; data: Float32Array };
  decoderIn: { dims: number[]; data: Float32Array };
}

function host(t: unknown): Float32Array {
  return asFloat32(t as Tensor).data;
}

/** Deterministic inputs for a model with `latentChannels`, a VAE factor and a text vocabulary. */
export function randomInputs(o: {
  vocab: number;
  factor: number;
  latentChannels?: number;
  seed?: number;
}): ModuleInputs {
  const rng = new Rng(o.seed ?? 7);
  const c = o.latentChannels ?? 4;
  const ids = [o.vocab - 2, ...Array.from({ length: 6 }, (_, i) => (i * 37 + 5) % (o.vocab - 2)), o.vocab - 1];
  while (ids.length < 77) ids.push(o.vocab - 1);
  const side = 8;
  return {
    ids: { dims: [1, 77], data: ids },
    latent: { dims: [1, c, side, side], data: rng.normalArray(c * side * side) },
    timestep: 501,
    image: {
      dims: [1, 3, side * o.factor, side * o.factor],
      data: Float32Array.from(rng.normalArray(3 * side * side * o.factor * o.factor), (v) => Math.tanh(v)),
    },
    decoderIn: { dims: [1, c, side, side], data: rng.normalArray(c * side * side) },
  };
}

/** Runs each module of `model` once on `inputs`. */
export async function moduleOutputs(model: StableDiffusionModel, inputs: ModuleInputs): Promise<ModuleOutputs> {
  const { io, facts } = model;
  const te = await model.textEncoder.run({ [io.textIds]: int32(inputs.ids.dims, inputs.ids.data) }, [io.textHidden]);
  const text = host(te[io.textHidden]);
  const context = inputs.context ?? { dims: [1, 77, facts.textWidth], data: text };
  const u = await model.unet.run(
    {
      [io.unetSample]: castFloat(float32(inputs.latent.dims, inputs.latent.data), facts.unetType),
      [io.unetTimestep]: int64([1], [inputs.timestep]),
      [io.unetText]: castFloat(float32(context.dims, context.data), facts.unetTextType),
    },
    [io.unetOut],
  );
  const enc = await model.vaeEncoder.run(
    { [io.vaeEncoderIn]: castFloat(float32(inputs.image.dims, inputs.image.data), facts.vaeEncoderType) },
    [io.vaeEncoderOut],
  );
  const dec = await model.vaeDecoder.run(
    { [io.vaeDecoderIn]: castFloat(float32(inputs.decoderIn.dims, inputs.decoderIn.data), facts.vaeDecoderType) },
    [io.vaeDecoderOut],
  );
  return {
    text,
    unet: host(u[io.unetOut]),
    vaeMean: host(enc[io.vaeEncoderOut]),
    vaeDecoded: host(dec[io.vaeDecoderOut]),
  };
}

/** Loads the folder, runs the modules, releases it. */
export async function outputsOf(dir: string, runtime: Runtime, inputs: ModuleInputs): Promise<ModuleOutputs> {
  const model = await loadModelFolder(dir, runtime);
  try {
    return await moduleOutputs(model, inputs);
  } finally {
    await model.release();
  }
}

/** Asserts every module output of `got` is within `tol` of `want`. */
export function assertOutputsClose(got: ModuleOutputs, want: ModuleOutputs, tol: number, label: string): void {
  for (const k of ['text', 'unet', 'vaeMean', 'vaeDecoded'] as const) {
    const err = maxAbsDiff(got[k], want[k]);
    assert.ok(err <= tol, `${label}: ${k} differs by ${err} (tolerance ${tol})`);
  }
}
