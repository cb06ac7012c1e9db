/**
 * Loads a Stable Diffusion 1.x model in the diffusers ONNX folder layout (see folder.ts) into runtime sessions
 * and derives what the pipelines need from the models themselves:
 *   - latent channels: the VAE decoder's (or UNet's) static channel dim, else the encoder probe;
 *   - VAE scale factor: a probe run of the decoder on a 2×2 latent (output size / 2);
 *   - encoder output kind: a probe run of the encoder on one 2×2-latent image: C channels = the mean
 *     (`latent_sample`), 2C = mean and log-variance (`latent_parameters`, the mean is the first half);
 *   - text width: the text encoder's static hidden size, else a probe run; it must match the UNet's
 *     encoder_hidden_states width;
 *   - float types (float16/float32) and the timestep's element type from the input metadata;
 *   - opsets from each file's header.
 * The probes are tiny (a 2×2 latent) so they cost little even for SD 1.5 on a CPU.
 */
import { VidpriorError } from '../errors.js';
import type { Feed, GpuTensor, IoMeta, Runtime, Session, SessionOptions } from '../runtime/types.js';
import { isGpuTensor } from '../runtime/types.js';
import { type Tensor, castFloat, float32, tensor } from '../tensor.js';
import { ClipTokenizer } from '../tokenizer/clip.js';
import { type Component, type ModelFolder, COMPONENTS, readModelFolder } from './folder.js';
import { readOnnxHeader } from './onnx-header.js';
import type { FloatType, ModelFacts, ModelIoNames, StableDiffusionModel } from './types.js';
import { dirname } from 'node:path';

export interface LoadModelOptions {
  /** Extra session options per component (e.g. keepOutputsOnGpu for the UNet, freeDimensionOverrides). */
  sessionOptions?: Partial<Record<Component, SessionOptions>>;
  /**
   * A UNet session to use instead of loading unet/model.onnx (e.g. one with a LoRA adapter merged in).
   * It must have the same inputs as the folder's UNet; the loader does not release it.
   */
  unet?: Session;
  /** A text encoder session to use instead of loading text_encoder/model.onnx (e.g. with LoRAs merged); not released. */
  textEncoder?: Session;
  /** Called with one line per derived fact (for `models inspect` and verbose logs). */
  onNote?: (line: string) => void;
}

const FLOAT_TYPES = new Set(['float32', 'float16']);
const TIMESTEP_TYPES = new Set(['int64', 'int32', 'float32', 'float16']);

function modelInputError(component: string, message: string, details: Record<string, unknown>): VidpriorError {
  return new VidpriorError('E_MODEL_INPUT', `${component}/model.onnx: ${message}`, { component, ...details });
}

function findIo(
  list: readonly IoMeta[],
  names: readonly string[],
  component: string,
  kind: 'input' | 'output',
  fallbackFirst: boolean,
): IoMeta {
  for (const n of names) {
    const hit = list.find((m) => m.name === n);
    if (hit) return hit;
  }
  if (fallbackFirst && list.length > 0) return list[0]!;
  throw modelInputError(
    component,
    `has no ${kind} named ${names.map((n) => `"${n}"`).join(' or ')} (its ${kind}s: ${list.map((m) => m.name).join(', ') || 'none'})`,
    { [kind]: names[0] },
  );
}

function floatType(meta: IoMeta, component: string): FloatType {
  if (!FLOAT_TYPES.has(meta.type)) {
    throw modelInputError(component, `${meta.name} is ${meta.type}, expected float32 or float16`, {
      input: meta.name,
      type: meta.type,
    });
  }
  return meta.type as FloatType;
}

function staticDim(meta: IoMeta, axis: number): number | null {
  const d = meta.dims[axis];
  return typeof d === 'number' && d > 0 ? d : null;
}

async function toHost(runtime: Runtime, t: Tensor | GpuTensor): Promise<Tensor> {
  if (!isGpuTensor(t)) return t;
  try {
    return await runtime.read(t);
  } finally {
    await runtime.dispose(t);
  }
}

/** Runs `session` once and returns the dims of one output (for probes). */
async function probeDims(
  runtime: Runtime,
  session: Session,
  feeds: Record<string, Feed>,
  output: string,
): Promise<readonly number[]> {
  const out = await session.run(feeds, [output]);
  const t = out[output];
  if (!t) throw new VidpriorError('E_RUNTIME', `${session.label}: probe run returned no ${output}`);
  return isGpuTensor(t) ? (await toHost(runtime, t)).dims : t.dims;
}

/** Token ids (or an attention mask) [1, L] in the text encoder's integer type. */
export function idsTensor(type: 'int32' | 'int64', ids: Int32Array): Tensor {
  return type === 'int32'
    ? tensor('int32', [1, ids.length], ids)
    : tensor(
        'int64',
        [1, ids.length],
        BigInt64Array.from(ids, (v) => BigInt(v)),
      );
}

function zeros(type: FloatType, dims: number[]): Tensor {
  return castFloat(float32(dims), type);
}

/**
 * Loads the model folder `dir` with `runtime`. Throws E_MODEL_MISSING naming a missing file, E_MODEL_INPUT
 * naming an input or output that does not fit, E_ONNX for a file that is not ONNX, E_RUNTIME when ORT fails.
 */
export async function loadModelFolder(
  dir: string,
  runtime: Runtime,
  opts: LoadModelOptions = {},
): Promise<StableDiffusionModel> {
  // 1. Check the folder layout and read its configs (fails before any session is made).
  const folder = await readModelFolder(dir);
  const note = opts.onNote ?? (() => {});
  const opsets = {} as Record<Component, number>;
  for (const c of COMPONENTS) {
    if (c === 'unet' && opts.unet) {
      opsets[c] = 0;
      continue;
    }
    const header = await readOnnxHeader(folder.onnx[c]);
    const opset = header.opsets[''];
    if (!opset) throw modelInputError(c, 'imports no default-domain ONNX opset', { file: folder.onnx[c] });
    opsets[c] = opset;
  }
  const tokenizer = await ClipTokenizer.fromFolder(dirname(folder.vocab));

  // 2. Create the sessions (external data beside each model.onnx is found from the path).
  const created: Session[] = [];
  const open = async (c: Component): Promise<Session> => {
    const s = await runtime.createSession(folder.onnx[c], { label: c, ...opts.sessionOptions?.[c] });
    created.push(s);
    return s;
  };
  try {
    const textEncoder = opts.textEncoder ?? (await open('text_encoder'));
    const unet = opts.unet ?? (await open('unet'));
    const vaeEncoder = await open('vae_encoder');
    const vaeDecoder = await open('vae_decoder');

    // 3. Derive the facts from metadata and probe runs.
    const { facts, io } = await deriveFacts(
      runtime,
      folder,
      { textEncoder, unet, vaeEncoder, vaeDecoder },
      tokenizer,
      opsets,
    );
    note(
      `model ${folder.dir}: latent ${facts.latentChannels}ch ×1/${facts.vaeScaleFactor}, text ${facts.textLength}×${facts.textWidth}, ` +
        `unet ${facts.unetType} (timestep ${facts.timestepType}), vae encoder → ${facts.encoderOutput}, ` +
        `scaling ${facts.scalingFactor} (${facts.scalingFactorSource}), opsets ${COMPONENTS.map((c) => `${c} ${opsets[c] || '?'}`).join(', ')}`,
    );
    return {
      dir: folder.dir,
      textEncoder,
      unet,
      vaeEncoder,
      vaeDecoder,
      tokenizer,
      schedulerConfig: folder.schedulerConfig,
      schedulerConfigSource: folder.schedulerConfigSource,
      schedulerNotes: folder.schedulerNotes,
      facts,
      io,
      async release() {
        for (const s of created.splice(0)) await s.release();
      },
    };
  } catch (err) {
    for (const s of created) await s.release().catch(() => {});
    throw err;
  }
}

interface Sessions {
  textEncoder: Session;
  unet: Session;
  vaeEncoder: Session;
  vaeDecoder: Session;
}

async function deriveFacts(
  runtime: Runtime,
  folder: ModelFolder,
  s: Sessions,
  tokenizer: ClipTokenizer,
  opsets: Record<Component, number>,
): Promise<{ facts: ModelFacts; io: ModelIoNames }> {
  // Text encoder: int ids in, hidden states out.
  const textIds = findIo(
    s.textEncoder.inputs,
    ['input_ids'],
    'text_encoder',
    'input',
    s.textEncoder.inputs.length === 1,
  );
  if (textIds.type !== 'int32' && textIds.type !== 'int64') {
    throw modelInputError('text_encoder', `${textIds.name} is ${textIds.type}, expected int32 or int64 token ids`, {
      input: textIds.name,
    });
  }
  const textHidden = findIo(s.textEncoder.outputs, ['last_hidden_state'], 'text_encoder', 'output', true);
  const textMask = s.textEncoder.inputs.find((m) => m.name === 'attention_mask')?.name ?? null;
  const unexpected = s.textEncoder.inputs.filter((m) => m.name !== textIds.name && m.name !== textMask);
  if (unexpected.length) {
    throw modelInputError(
      'text_encoder',
      `has inputs vidprior cannot feed: ${unexpected.map((m) => m.name).join(', ')} (expected input_ids and optionally attention_mask)`,
      { input: unexpected[0]!.name },
    );
  }
  const textLength = staticDim(textIds, 1) ?? tokenizer.maxLength;
  if (textLength !== tokenizer.maxLength) {
    throw modelInputError(
      'text_encoder',
      `${textIds.name} takes ${textLength} tokens but the tokenizer makes ${tokenizer.maxLength}`,
      { input: textIds.name, expected: tokenizer.maxLength },
    );
  }
  let textWidth = staticDim(textHidden, 2);
  if (textWidth === null) {
    const ids = tokenizer.encode('').ids;
    const feeds: Record<string, Tensor> = { [textIds.name]: idsTensor(textIds.type as 'int32' | 'int64', ids) };
    if (textMask) feeds[textMask] = idsTensor(textIds.type as 'int32' | 'int64', new Int32Array(textLength).fill(1));
    textWidth = (await probeDims(runtime, s.textEncoder, feeds, textHidden.name))[2]!;
  }

  // UNet: sample, timestep, encoder_hidden_states.
  const unetSample = findIo(s.unet.inputs, ['sample'], 'unet', 'input', false);
  const unetTimestep = findIo(s.unet.inputs, ['timestep'], 'unet', 'input', false);
  const unetText = findIo(s.unet.inputs, ['encoder_hidden_states'], 'unet', 'input', false);
  const unetOut = findIo(s.unet.outputs, ['out_sample'], 'unet', 'output', true);
  const unetType = floatType(unetSample, 'unet');
  const unetTextType = floatType(unetText, 'unet');
  if (!TIMESTEP_TYPES.has(unetTimestep.type)) {
    throw modelInputError('unet', `timestep is ${unetTimestep.type}, expected int64, int32, float32 or float16`, {
      input: 'timestep',
    });
  }
  const unetWidth = staticDim(unetText, 2);
  if (unetWidth !== null && unetWidth !== textWidth) {
    throw modelInputError(
      'unet',
      `encoder_hidden_states width is ${unetWidth} but the text encoder outputs ${textWidth}`,
      { input: 'encoder_hidden_states', got: unetWidth, expected: textWidth },
    );
  }

  // VAE: the decoder probe gives the scale factor, the encoder probe the output kind.
  const vaeEncoderIn = findIo(
    s.vaeEncoder.inputs,
    ['sample'],
    'vae_encoder',
    'input',
    s.vaeEncoder.inputs.length === 1,
  );
  const vaeEncoderOut = findIo(
    s.vaeEncoder.outputs,
    ['latent_sample', 'latent_parameters'],
    'vae_encoder',
    'output',
    true,
  );
  const vaeDecoderIn = findIo(
    s.vaeDecoder.inputs,
    ['latent_sample'],
    'vae_decoder',
    'input',
    s.vaeDecoder.inputs.length === 1,
  );
  const vaeDecoderOut = findIo(s.vaeDecoder.outputs, ['sample'], 'vae_decoder', 'output', true);
  const vaeEncoderType = floatType(vaeEncoderIn, 'vae_encoder');
  const vaeDecoderType = floatType(vaeDecoderIn, 'vae_decoder');
  if (staticDim(vaeEncoderIn, 1) !== null && staticDim(vaeEncoderIn, 1) !== 3) {
    throw modelInputError(
      'vae_encoder',
      `${vaeEncoderIn.name} has ${staticDim(vaeEncoderIn, 1)} channels, expected 3 (RGB)`,
      { input: vaeEncoderIn.name, expected: 3 },
    );
  }
  let latentChannels = staticDim(vaeDecoderIn, 1) ?? staticDim(unetSample, 1);
  const probeLatent = 2;
  let vaeScaleFactor: number;
  let encoderChannels: number;
  if (latentChannels === null) {
    // Nothing states the channel count: encode a 64×64 image first (any factor up to 32 leaves ≥ 2×2).
    const enc = await probeDims(
      runtime,
      s.vaeEncoder,
      { [vaeEncoderIn.name]: zeros(vaeEncoderType, [1, 3, 64, 64]) },
      vaeEncoderOut.name,
    );
    vaeScaleFactor = 64 / enc[2]!;
    encoderChannels = enc[1]!;
    latentChannels = vaeEncoderOut.name === 'latent_parameters' ? encoderChannels / 2 : encoderChannels;
  } else {
    const dec = await probeDims(
      runtime,
      s.vaeDecoder,
      { [vaeDecoderIn.name]: zeros(vaeDecoderType, [1, latentChannels, probeLatent, probeLatent]) },
      vaeDecoderOut.name,
    );
    if (dec.length !== 4 || dec[1] !== 3 || dec[2]! % probeLatent !== 0) {
      throw modelInputError(
        'vae_decoder',
        `a [1,${latentChannels},2,2] latent decodes to [${dec.join(',')}], expected [1,3,2f,2f]`,
        { output: vaeDecoderOut.name },
      );
    }
    vaeScaleFactor = dec[2]! / probeLatent;
    const side = probeLatent * vaeScaleFactor;
    const enc = await probeDims(
      runtime,
      s.vaeEncoder,
      { [vaeEncoderIn.name]: zeros(vaeEncoderType, [1, 3, side, side]) },
      vaeEncoderOut.name,
    );
    if (enc.length !== 4 || enc[2] !== probeLatent || enc[3] !== probeLatent) {
      throw modelInputError(
        'vae_encoder',
        `a ${side}×${side} image encodes to [${enc.join(',')}], expected [1,C,${probeLatent},${probeLatent}] (the decoder scales by ${vaeScaleFactor})`,
        { output: vaeEncoderOut.name },
      );
    }
    encoderChannels = enc[1]!;
  }
  if (!Number.isInteger(vaeScaleFactor) || vaeScaleFactor < 1) {
    throw modelInputError('vae_encoder', `gives a non-integer scale factor ${vaeScaleFactor}`, {});
  }
  let encoderOutput: ModelFacts['encoderOutput'];
  if (encoderChannels === 2 * latentChannels) encoderOutput = 'latent_parameters';
  else if (encoderChannels === latentChannels) encoderOutput = 'latent_sample';
  else {
    throw modelInputError(
      'vae_encoder',
      `${vaeEncoderOut.name} has ${encoderChannels} channels, expected ${latentChannels} (mean) or ${2 * latentChannels} (mean and log-variance)`,
      { output: vaeEncoderOut.name, got: encoderChannels, expected: latentChannels },
    );
  }
  const unetChannels = staticDim(unetSample, 1);
  if (unetChannels !== null && unetChannels !== latentChannels) {
    throw modelInputError('unet', `sample has ${unetChannels} channels but the VAE's latents have ${latentChannels}`, {
      input: 'sample',
      got: unetChannels,
      expected: latentChannels,
    });
  }
  const unetOutChannels = staticDim(unetOut, 1);
  if (unetOutChannels !== null && unetOutChannels !== latentChannels) {
    throw modelInputError(
      'unet',
      `${unetOut.name} has ${unetOutChannels} channels, expected ${latentChannels} (the noise prediction of a latent)`,
      { output: unetOut.name, got: unetOutChannels, expected: latentChannels },
    );
  }

  const facts: ModelFacts = {
    vaeScaleFactor,
    latentChannels,
    textWidth,
    textLength,
    textIdsType: textIds.type as 'int32' | 'int64',
    textEncoderOutputType: FLOAT_TYPES.has(textHidden.type) ? (textHidden.type as FloatType) : 'float32',
    unetType,
    unetTextType,
    vaeEncoderType,
    vaeDecoderType,
    timestepType: unetTimestep.type as ModelFacts['timestepType'],
    timestepDims: unetTimestep.dims.length === 0 ? [] : [1],
    encoderOutput,
    scalingFactor: folder.scalingFactor,
    scalingFactorSource: folder.scalingFactorSource,
    ...(folder.vaeSampleSize || folder.unetSampleSize
      ? { nativeSize: folder.vaeSampleSize ?? folder.unetSampleSize! * vaeScaleFactor }
      : {}),
    ...(folder.unetAttention ? { unetAttention: folder.unetAttention } : {}),
    opsets,
  };
  const io: ModelIoNames = {
    textIds: textIds.name,
    textMask,
    textHidden: textHidden.name,
    unetSample: unetSample.name,
    unetTimestep: unetTimestep.name,
    unetText: unetText.name,
    unetOut: unetOut.name,
    vaeEncoderIn: vaeEncoderIn.name,
    vaeEncoderOut: vaeEncoderOut.name,
    vaeDecoderIn: vaeDecoderIn.name,
    vaeDecoderOut: vaeDecoderOut.name,
  };
  return { facts, io };
}
