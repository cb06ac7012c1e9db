/**
 * Stable Diffusion img2img over the frames of a video, as diffusers' StableDiffusionImg2ImgPipeline computes
 * it, with the SAME initial noise for every frame (the method's key to temporal consistency):
 *
 *   timesteps   = DDIM schedule[t_start:]  with  t_start = n − min(int(n·strength), n)
 *   latents₀    = VAE encoder mean × scaling_factor
 *   latents     = scheduler.add_noise(latents₀, noise, timesteps[0])
 *   denoise with classifier-free guidance (unconditional first), decode latents / scaling_factor,
 *   image       = (decoded / 2 + 0.5) clamped to [0, 1]
 *
 * txt2img is the same loop at strength 1 from pure noise (latents = noise × init_noise_sigma).
 * Frames go through the UNet `batch` at a time (×2 with guidance); the prompt is embedded once per run.
 * Frames are float32 tensors [3,H,W] in [-1,1], the convention of src/io/frames.ts (readFrame in,
 * writeFramePng out). The model works on sides that are multiples of f × 8 (VAE factor × SD's three UNet
 * halvings): a FrameSource delivers frames at such a working size (src/io/size.ts plans the resize or pad,
 * frames.ts here does it for folders and videos); img2img() on tensors pads and crops back itself.
 */
import { VidpriorError } from '../errors.js';
import type { StableDiffusionModel } from '../models/types.js';
import { Rng } from '../random.js';
import type { Feed, Runtime, Session } from '../runtime/types.js';
import { isGpuTensor } from '../runtime/types.js';
import { DdimScheduler } from '../schedulers/ddim.js';
import { img2imgTimesteps } from '../schedulers/img2img.js';
import { type Tensor, float32 } from '../tensor.js';
import { denoiseOnDevice, denoiseOnHost, throwIfAborted, type DenoiseContext } from './denoise.js';
import { type FitPlan, cropFrame, fitIsIdentity, padFrame, planFit } from '../io/size.js';
import { type StylizeOptions, type StylizeProgress, checkNoiseShape, resolveOptions } from './options.js';
import { cachedPromptEmbeddings, cachedStepSession } from './cache.js';
import { batchEmbeddings } from './text.js';
import { encodeImages, decodeLatents } from './vae.js';

export type { StylizeOptions, StylizeProgress } from './options.js';

/** SD 1.x's UNet halves the latent three times: latent sides must be multiples of 2³. */
export const UNET_LATENT_MULTIPLE = 8;

/** The multiple of the image sides the model takes: VAE scale factor × 8 (64 for SD 1.x). */
export function sizeMultiple(model: StableDiffusionModel): number {
  return model.facts.vaeScaleFactor * UNET_LATENT_MULTIPLE;
}

/**
 * The size the model was trained at, in pixels (512 for SD 1.x): the default short side of the working size, so
 * that a large frame costs what a 512-pixel one does (the VAE's attention grows with the square of the pixels).
 */
export function nativeSize(model: StableDiffusionModel): number {
  return model.facts.nativeSize ?? 64 * model.facts.vaeScaleFactor;
}

/**
 * Where frames come from: `count` frames of one working size (sides multiples of sizeMultiple(model)),
 * read on demand so that a video need not fit in memory.
 */
export interface FrameSource {
  count: number;
  width: number;
  height: number;
  /** Frame `index` as float32 [3,height,width] in [-1,1]. */
  read(index: number): Promise<Tensor<'float32'>> | Tensor<'float32'>;
}

/** Receives each finished frame ([3,H,W] in [-1,1], the source's size) as soon as its batch is decoded. */
export type FrameSink = (index: number, image: Tensor<'float32'>) => Promise<void> | void;

export interface StylizeSummary {
  frames: number;
  /** The size the model worked on. */
  width: number;
  height: number;
  /** Shape of the initial noise: [1, C, height/f, width/f]. */
  noiseShape: number[];
  /** Denoising steps actually run per frame (after strength slicing) and their timesteps. */
  steps: number;
  timesteps: number[];
  guidance: boolean;
  batch: number;
  /** 'device' when latents stayed in the runtime between steps (guidance + DDIM in a step graph). */
  loop: 'host' | 'device';
  promptTruncated: boolean;
  seconds: number;
  /** Where the seconds went (the UNet's share is `denoise`; the rest is text, VAE and host work). */
  timings: StylizeTimings;
}

/** Seconds per part of a run, and until the first frame was handed over. */
export interface StylizeTimings {
  /** Text encoder (0 when the embeddings were cached from an earlier call). */
  prompt: number;
  /** Reading frames from the source, VAE encoder, denoising loop (UNet + guidance + DDIM), VAE decoder, sink. */
  read: number;
  encode: number;
  denoise: number;
  decode: number;
  sink: number;
  firstFrame: number | null;
}

/** The latent shape for frames of a working size (what `--noise-file` must hold): [1, C, H/f, W/f]. */
export function noiseShapeFor(model: StableDiffusionModel, width: number, height: number): number[] {
  const f = model.facts.vaeScaleFactor;
  return [1, model.facts.latentChannels, Math.floor(height / f), Math.floor(width / f)];
}

function checkFrame(image: Tensor, index: number, width: number, height: number): Tensor<'float32'> {
  const d = image.dims;
  if (image.type !== 'float32' || d.length !== 3 || d[0] !== 3 || d[1] !== height || d[2] !== width) {
    throw new VidpriorError(
      'E_BAD_INPUT',
      `frame ${index + 1} is ${image.type} [${d.join(', ')}], expected float32 [3, ${height}, ${width}] like the first frame`,
      { frame: index + 1, dims: d },
    );
  }
  return image as Tensor<'float32'>;
}

/** `n` copies of one latent [1,C,h,w] stacked into [n,C,h,w]. */
function repeatBatch(x: Tensor<'float32'>, n: number): Tensor<'float32'> {
  const data = new Float32Array(x.data.length * n);
  for (let i = 0; i < n; i++) data.set(x.data, i * x.data.length);
  return float32([n, ...x.dims.slice(1)], data);
}

/** Item `i` of a batch [N, ...] without the batch axis. */
function sliceBatch(x: Tensor<'float32'>, i: number): Tensor<'float32'> {
  const per = x.data.length / x.dims[0]!;
  return float32(x.dims.slice(1), x.data.slice(i * per, (i + 1) * per));
}

/** Stacks tensors of one shape along a new batch axis. */
function stackBatch(items: Tensor<'float32'>[]): Tensor<'float32'> {
  const per = items[0]!.data.length;
  const data = new Float32Array(per * items.length);
  items.forEach((t, i) => {
    data.set(t.data, i * per);
  });
  return float32([items.length, ...items[0]!.dims], data);
}

interface RunPlan {
  mode: 'img2img' | 'txt2img';
  source: FrameSource;
}

async function runPipeline(
  model: StableDiffusionModel,
  runtime: Runtime,
  plan: RunPlan,
  sink: FrameSink,
  options: StylizeOptions,
): Promise<StylizeSummary> {
  const started = Date.now();
  // 1. Check inputs: options, frame size, noise shape.
  const o = resolveOptions(model, options);
  const { source } = plan;
  if (!Number.isInteger(source.count) || source.count < 1) {
    throw new VidpriorError('E_BAD_INPUT', `no frames to stylize (got ${source.count})`, { frames: source.count });
  }
  const { width, height } = source;
  const multiple = sizeMultiple(model);
  if (
    !(
      Number.isInteger(width) &&
      Number.isInteger(height) &&
      width >= multiple &&
      height >= multiple &&
      width % multiple === 0 &&
      height % multiple === 0
    )
  ) {
    throw new VidpriorError(
      'E_BAD_INPUT',
      `frame size ${width}×${height} is not a multiple of ${multiple} (VAE factor ${model.facts.vaeScaleFactor} × ${UNET_LATENT_MULTIPLE}): resize or pad the frames first (src/io/size.ts)`,
      { width, height, multiple },
    );
  }
  const noiseShape = noiseShapeFor(model, width, height);
  if (o.noise) checkNoiseShape(o.noise, noiseShape, `${width}×${height}`);
  const strength = plan.mode === 'txt2img' ? 1 : o.strength;

  // 2. Encode the prompt once (and the negative prompt when guidance is on); kept for later calls.
  throwIfAborted(options.signal);
  const timings: StylizeTimings = { prompt: 0, read: 0, encode: 0, denoise: 0, decode: 0, sink: 0, firstFrame: null };
  let mark = performance.now();
  const lap = (part: Exclude<keyof StylizeTimings, 'firstFrame'>): void => {
    const now = performance.now();
    timings[part] += (now - mark) / 1000;
    mark = now;
  };
  const prompts = await cachedPromptEmbeddings(model, o.prompt, o.negativePrompt, o.cfg);
  lap('prompt');

  // 3. Set the timesteps: strength keeps the last int(n·strength) of the n-step DDIM schedule.
  const scheduler = new DdimScheduler(model.schedulerConfig);
  const schedule = scheduler.setTimesteps(o.steps);
  const { timesteps, latentTimestep } =
    plan.mode === 'txt2img'
      ? { timesteps: schedule, latentTimestep: schedule[0]! }
      : img2imgTimesteps(schedule, o.steps, strength, scheduler.order);

  // 4. The initial noise: given, or drawn once from the seed; the same for every frame.
  const noise = o.noise ?? float32(noiseShape, new Rng(o.seed).normalArray(noiseShape.reduce((a, b) => a * b, 1)));

  // 5. Where the loop runs: on the GPU (step graph, kept for later calls) or the host.
  const wantDevice = options.latentsOnDevice ?? 'auto';
  const canDevice = !model.schedulerConfig.thresholding && !model.schedulerConfig.clip_sample;
  const onDevice = canDevice && (wantDevice === 'auto' ? runtime.decision.ep === 'webgpu' : wantDevice);
  let stepSession: Session | null = null;
  if (onDevice) {
    stepSession = await cachedStepSession(runtime, {
      guidance: o.cfg,
      prediction: model.schedulerConfig.prediction_type,
      unetType: model.facts.unetType,
    });
  }

  const frames = source.count;
  const progress = (p: StylizeProgress): void => options.onProgress?.(p);
  for (let first = 0; first < frames; first += o.batch) {
    const n = Math.min(o.batch, frames - first);
    // 6. Encode this batch's frames and noise them to the first timestep (txt2img: the noise alone).
    throwIfAborted(options.signal);
    const noiseBatch = repeatBatch(noise, n);
    let start: Tensor<'float32'>;
    if (plan.mode === 'txt2img') {
      start = float32(
        noiseBatch.dims,
        noiseBatch.data.map((v) => Math.fround(v * scheduler.initNoiseSigma)),
      );
    } else {
      const images: Tensor<'float32'>[] = [];
      for (let i = first; i < first + n; i++) images.push(checkFrame(await source.read(i), i, width, height));
      lap('read');
      const initLatents = await encodeImages(model, stackBatch(images));
      start = float32(initLatents.dims, scheduler.addNoise(initLatents.data, noiseBatch.data, latentTimestep));
      lap('encode');
    }
    progress({ phase: 'encode', frame: first + n, frames, step: 0, steps: timesteps.length });

    // 7. Denoise (the text embeddings, batched for n frames, go to the GPU once per batch).
    const textHost = batchEmbeddings(prompts, n, model.facts.unetTextType);
    const text: Feed = onDevice ? await runtime.upload(textHost) : textHost;
    const ctx: DenoiseContext = {
      runtime,
      model,
      unet: o.unet,
      scheduler,
      timesteps,
      guidance: o.cfg ? o.guidance : null,
      text,
      signal: options.signal,
      onStep: (step, steps) => progress({ phase: 'denoise', frame: first + n, frames, step, steps }),
    };
    let latents: Tensor<'float32'>;
    try {
      latents = stepSession ? await denoiseOnDevice(ctx, start, stepSession) : await denoiseOnHost(ctx, start);
    } finally {
      if (isGpuTensor(text)) await runtime.dispose(text);
    }
    lap('denoise');

    // 8. Decode and hand over each frame.
    throwIfAborted(options.signal);
    const decoded = await decodeLatents(model, latents);
    lap('decode');
    for (let i = 0; i < n; i++) {
      await sink(first + i, sliceBatch(decoded, i));
      lap('sink');
      timings.firstFrame ??= (Date.now() - started) / 1000;
      progress({ phase: 'frame', frame: first + i + 1, frames, step: timesteps.length, steps: timesteps.length });
    }
  }
  return {
    frames,
    width,
    height,
    noiseShape,
    steps: timesteps.length,
    timesteps: [...timesteps],
    guidance: o.cfg,
    batch: o.batch,
    loop: onDevice ? 'device' : 'host',
    promptTruncated: prompts.truncated,
    seconds: (Date.now() - started) / 1000,
    timings,
  };
}

/** img2img over a frame source, streaming finished frames to `sink`. */
export function stylizeFrames(
  model: StableDiffusionModel,
  runtime: Runtime,
  source: FrameSource,
  sink: FrameSink,
  options: StylizeOptions,
): Promise<StylizeSummary> {
  return runPipeline(model, runtime, { mode: 'img2img', source }, sink, options);
}

/**
 * img2img of frames in memory ([3,H,W] float32 in [-1,1], all one size, any size): frames whose sides are not
 * multiples of f × 8 are padded (reflection) and the results cropped back, so each output has its input's size.
 */
export async function img2img(
  model: StableDiffusionModel,
  runtime: Runtime,
  images: readonly Tensor<'float32'>[],
  options: StylizeOptions,
): Promise<Tensor<'float32'>[]> {
  if (images.length === 0) throw new VidpriorError('E_BAD_INPUT', 'no images given', { frames: 0 });
  const first = images[0]!;
  if (first.dims.length !== 3 || first.dims[0] !== 3 || first.dims[1]! < 1 || first.dims[2]! < 1) {
    throw new VidpriorError('E_BAD_INPUT', `image 1 has dims [${first.dims.join(', ')}], expected [3, H, W]`, {
      dims: first.dims,
    });
  }
  const plan: FitPlan = planFit(first.dims[2]!, first.dims[1]!, sizeMultiple(model), 'pad', 'reflect');
  const identity = fitIsIdentity(plan);
  const out: Tensor<'float32'>[] = [];
  await stylizeFrames(
    model,
    runtime,
    {
      count: images.length,
      width: plan.working.width,
      height: plan.working.height,
      read: (i) => {
        const img = checkFrame(images[i]!, i, plan.original.width, plan.original.height);
        return identity ? img : padFrame(img, plan);
      },
    },
    (i, img) => {
      out[i] = identity ? img : cropFrame(img, plan);
    },
    options,
  );
  return out;
}

/** txt2img: `count` images of `width`×`height` (multiples of f × 8) from the noise alone (strength 1). */
export async function txt2img(
  model: StableDiffusionModel,
  runtime: Runtime,
  shape: { width: number; height: number; count?: number },
  options: StylizeOptions,
): Promise<Tensor<'float32'>[]> {
  const out: Tensor<'float32'>[] = [];
  const source: FrameSource = {
    count: shape.count ?? 1,
    width: shape.width,
    height: shape.height,
    read: () => {
      throw new VidpriorError('E_INTERNAL', 'txt2img reads no frames');
    },
  };
  await runPipeline(
    model,
    runtime,
    { mode: 'txt2img', source },
    (i, img) => {
      out[i] = img;
    },
    options,
  );
  return out;
}
