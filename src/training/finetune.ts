/**
 * Per-video fine-tuning (the method's steps 2–3): a LoRA on the UNet, or the whole UNet (`full`, as the method
 * is written), trained on ~30 frames of the clip with the empty prompt and on 1–2 (original, edited) keyframe
 * pairs with the prompt, only at late, low-noise timesteps (t < max_timestep). The whole step runs as one ONNX
 * graph (train-step.ts) in the runtime.
 *
 * finetune() runs in named phases: check the options, encode the clip once, build the step session, set up
 * the training state (fresh or from a checkpoint), plan the epochs, score the validation set, train.
 */
import type { Model } from '../onnx/ir.js';
import { createHash } from 'node:crypto';
import { VidpriorError, check } from '../errors.js';
import type { StableDiffusionModel } from '../models/types.js';
import { encodeText } from '../pipelines/text.js';
import { encodeImages } from '../pipelines/vae.js';
import type { Feed, Runtime } from '../runtime/types.js';
import { isGpuTensor } from '../runtime/types.js';
import { DdimScheduler } from '../schedulers/ddim.js';
import { type Tensor, float32 } from '../tensor.js';
import type { Adapter, AdapterRecord } from './adapter.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import type { FullDeltaAdapter } from './full-delta.js';
import type { TrainingMemory } from './memory.js';
import { noisedSample } from './objective.js';
import { createStepSession } from './step-session.js';
import { EpochPlan, TrainingState, rngFor, timestepFeed } from './train-state.js';
import { type AdamWConfig, adamScalars } from './train-step.js';

export interface FinetuneOptions {
  prompt: string;
  iterations: number;
  lr: number;
  rank: number;
  /** LoRA alpha (scale α/r); default: the rank (scale 1). */
  alpha?: number;
  /** Train only on timesteps in [0, maxTimestep). */
  maxTimestep: number;
  /** Share of each epoch given to the conditional (edited keyframe) samples, in (0, 1). */
  conditionalShare: number;
  seed: number;
  /** Also adapt the ResNet/projection convolutions. */
  convs?: boolean;
  /** Train every UNet weight (a delta on each) instead of a LoRA; the method's own setting (lr 1e-5). */
  full?: boolean;
  /** Samples per optimizer step, by gradient accumulation (default 1). */
  accumulate?: number;
  /** Compute precision of forward and backward; master values stay float32 (default float32). */
  precision?: 'float32' | 'float16';
  /** Recompute attention probabilities in the backward pass instead of keeping them (less memory). */
  recompute?: boolean;
  /** Memory the step may use, in bytes (default: the machine's memory on CPU; unchecked on GPUs). */
  memoryLimit?: number;
  /** Where `memoryLimit` comes from, for the refusal message. */
  memoryLimitSource?: string;
  adam?: Partial<AdamWConfig>;
  /** Write a checkpoint every K iterations (0 = never) to `checkpointPath`. */
  checkpointEvery: number;
  checkpointPath?: string;
  /** Continue from `checkpointPath` when it exists. */
  resume?: boolean;
  /**
   * The UNet to train on instead of `<model.dir>/unet/model.onnx` (e.g. with style LoRAs merged into it), and
   * what the adapter's record and the checkpoint's fingerprint say about it.
   */
  baseUnet?: { load: () => Promise<Model>; record: Record<string, unknown> };
  signal?: AbortSignal;
  onProgress?: (p: FinetuneProgress) => void;
}

export const FINETUNE_DEFAULTS = {
  iterations: 1000,
  lr: 1e-4,
  rank: 4,
  maxTimestep: 500,
  conditionalShare: 0.25,
  seed: 0,
  checkpointEvery: 100,
} as const;

/** The learning rate of full-UNet fine-tuning, as in the method. */
export const FULL_FINETUNE_LR = 1e-5;

export interface FinetuneProgress {
  stage: 'encoding' | 'building' | 'training' | 'checkpoint';
  iteration: number;
  iterations: number;
  loss?: number;
  /** Exponential moving average of the loss (β = 0.98, bias-corrected). */
  emaLoss?: number;
  etaSeconds?: number;
  message?: string;
}

/**
 * The clip as the trainer sees it: frames [3,H,W] in [-1,1] (src/io's convention), all of one working size
 * (sides multiples of the VAE factor; use the same fit as stylize so the adapter sees what it will stylize).
 */
export interface FinetuneData {
  /** Frames sampled evenly over the clip (unconditional samples). */
  frames: Tensor<'float32'>[];
  /** Keyframe pairs: the original frame and its edit (conditional samples). */
  edits: { original: Tensor<'float32'>; edited: Tensor<'float32'> }[];
  /** Names for the record (e.g. "12 frames of clip.mp4"). */
  description?: string;
}

export interface FinetuneResult {
  /** The LoRA adapter, or (full) the delta of every UNet weight. */
  adapter: Adapter | FullDeltaAdapter;
  /** What the step needed by the estimate (memory.ts). */
  memory: TrainingMemory;
  losses: number[];
  /** Iteration the run started from (> 0 when resumed). */
  startIteration: number;
  secondsPerIteration: number;
  /** Mean loss on a fixed validation set (same samples, timesteps and noise) before and after training. */
  validationBefore: number;
  validationAfter: number;
}

/** Picks `count` indices spread evenly over `total` frames (first and last included). */
export function sampleFrameIndices(total: number, count: number): number[] {
  if (total <= 0) return [];
  const n = Math.min(count, total);
  if (n === 1) return [Math.floor((total - 1) / 2)];
  return Array.from({ length: n }, (_, i) => Math.round((i * (total - 1)) / (n - 1)));
}

export async function finetune(
  runtime: Runtime,
  model: StableDiffusionModel,
  data: FinetuneData,
  options: FinetuneOptions,
): Promise<FinetuneResult> {
  const o = options;
  const progress = o.onProgress ?? (() => {});
  const throwIfCancelled = (): void => {
    if (o.signal?.aborted) throw new VidpriorError('E_CANCELLED', 'fine-tuning was cancelled');
  };
  // 1. Check the options and the data.
  const { prediction, alpha, accumulate } = checkOptions(model, data, o);
  // 2. Encode the clip and the prompts once.
  progress({
    stage: 'encoding',
    iteration: 0,
    iterations: o.iterations,
    message: `encoding ${data.frames.length} frames and ${data.edits.length} edits`,
  });
  const clip = await encodeClip(model, data, o.prompt, throwIfCancelled);
  // 3. The training step's session (UNet + trainable values + loss + backward + AdamW), memory checked.
  progress({ stage: 'building', iteration: 0, iterations: o.iterations, message: 'building the training graph' });
  const built = await createStepSession(runtime, model, clip.latentDims, [...clip.prompt.dims], {
    full: !!o.full,
    rank: o.rank,
    alpha,
    convs: !!o.convs,
    adam: o.adam,
    accumulate: accumulate > 1,
    precision: o.precision ?? 'float32',
    recompute: !!o.recompute,
    memoryLimit: o.memoryLimit,
    memoryLimitSource: o.memoryLimitSource,
    baseUnet: o.baseUnet?.load,
  });
  const { step, session } = built;
  const state = new TrainingState(runtime, built);
  try {
    // 4. Training state: fresh, or from a checkpoint of the same settings.
    const fingerprint = runFingerprint(model, o, alpha, accumulate, step.adam, clip);
    const resumed = o.resume && o.checkpointPath ? await loadCheckpoint(o.checkpointPath, fingerprint) : null;
    state.init(o.seed, resumed);
    let ema = resumed?.emaLoss ?? null;
    const startIteration = resumed?.iteration ?? 0;
    // 5. The epoch plan and the per-sample feeds.
    const plan = new EpochPlan(clip.uncond.length, clip.cond.length, o.conditionalShare, o.seed);
    const scheduler = new DdimScheduler(model.schedulerConfig);
    const timestepType = model.facts.timestepType;
    const feedsFor = (pick: number, t: number, noise: Float32Array, lr: number, stepNumber: number, apply = true) => {
      const isCond = pick >= clip.uncond.length;
      const source = isCond ? clip.cond[pick - clip.uncond.length]!.original : clip.uncond[pick]!;
      const goal = isCond ? clip.cond[pick - clip.uncond.length]!.edited : source;
      const sample = noisedSample(source, goal, noise, scheduler.alphasCumprod[t]!, prediction);
      const sc = adamScalars(step.adam, lr, stepNumber);
      const feeds: Record<string, Feed> = {
        [step.inputs.sample]: float32(clip.latentDims, sample.noisy),
        [step.inputs.target]: float32(clip.latentDims, sample.target),
        [step.inputs.timestep]: timestepFeed(timestepType, t),
        [step.inputs.context]: isCond ? clip.prompt : clip.empty,
        [step.inputs.lr]: float32([], [sc.lr]),
        [step.inputs.decay]: float32([], [lr === 0 ? 1 : sc.decay]),
        [step.inputs.bc1]: float32([], [sc.bc1]),
        [step.inputs.bc2]: float32([], [sc.bc2]),
      };
      if (step.inputs.decayComplement)
        feeds[step.inputs.decayComplement] = float32([], [lr === 0 ? 0 : sc.decayComplement]);
      if (step.inputs.apply) {
        feeds[step.inputs.apply] = float32([], [apply ? 1 : 0]);
        feeds[step.inputs.gradScale!] = float32([], [1 / accumulate]);
      }
      for (const [name, value] of state.current) feeds[name] = value;
      return feeds;
    };
    const readLoss = async (out: Record<string, Feed>): Promise<number> => {
      const lossT = out[step.loss]!;
      return (isGpuTensor(lossT) ? await runtime.read(lossT) : lossT).data[0] as number;
    };

    // 6. A fixed validation set (samples, timesteps, noise), scored by running the step with lr = 0 (which
    //    leaves the trained values as they are): the loss before and after training on the same draws.
    const validationPicks = [...clip.uncond.keys()]
      .slice(0, clip.cond.length ? 6 : 8)
      .concat(clip.cond.map((_, k) => clip.uncond.length + k).slice(0, 2));
    const validation = validationPicks.map((pick, i) => ({
      pick,
      t: Math.floor(((i + 0.5) * o.maxTimestep) / validationPicks.length),
      noise: rngFor(o.seed, 'validation', i).normalArray(clip.uncond[0]!.length),
    }));
    const validate = async (): Promise<number> => {
      let sum = 0;
      for (const v of validation) {
        const out = await session.run(feedsFor(v.pick, v.t, v.noise, 0, 1, false), [step.loss]);
        sum += await readLoss(out);
      }
      return sum / validation.length;
    };
    const validationBefore = await validate();

    // 7. Train: each iteration is one AdamW step over `accumulate` samples.
    const losses: number[] = [];
    const started = Date.now();
    for (let it = startIteration; it < o.iterations; it++) {
      throwIfCancelled();
      let loss = 0;
      for (let k = 0; k < accumulate; k++) {
        const draw = it * accumulate + k;
        const r = rngFor(o.seed, 'iteration', draw);
        const t = r.int(o.maxTimestep);
        const noise = r.normalArray(clip.uncond[0]!.length);
        const out = await session.run(feedsFor(plan.pick(draw), t, noise, o.lr, it + 1, k === accumulate - 1));
        loss += (await readLoss(out)) / accumulate;
        await state.advance(out);
      }
      if (!Number.isFinite(loss)) {
        throw new VidpriorError('E_RUNTIME', `training diverged at iteration ${it + 1} (loss ${loss}): lower --lr`, {
          iteration: it + 1,
        });
      }
      losses.push(loss);
      ema = ema === null ? loss : 0.98 * ema + 0.02 * loss;
      const perIt = (Date.now() - started) / 1000 / (it + 1 - startIteration);
      progress({
        stage: 'training',
        iteration: it + 1,
        iterations: o.iterations,
        loss,
        emaLoss: ema,
        etaSeconds: perIt * (o.iterations - it - 1),
      });
      const last = it + 1 === o.iterations;
      if (
        o.checkpointPath &&
        o.checkpointEvery > 0 &&
        ((it + 1) % o.checkpointEvery === 0 || last || o.signal?.aborted)
      ) {
        progress({ stage: 'checkpoint', iteration: it + 1, iterations: o.iterations });
        await saveCheckpoint(o.checkpointPath, {
          iteration: it + 1,
          tensors: await state.snapshot(),
          fingerprint,
          emaLoss: ema,
        });
      }
    }

    // 8. The result, in graph layout.
    const validationAfter = await validate();
    const record: Partial<AdapterRecord> = {
      baseModel: model.dir,
      prompt: o.prompt,
      frames: data.frames.length,
      edits: data.edits.length,
      maxTimestep: o.maxTimestep,
      ...(o.full ? { kind: 'full' } : { rank: o.rank, alpha }),
      iterations: o.iterations,
      lr: o.lr,
      seed: o.seed,
      conditionalShare: o.conditionalShare,
      ...(accumulate > 1 ? { accumulate } : {}),
      clip: data.description ?? '',
      finalLoss: ema ?? undefined,
      validationLossBefore: validationBefore,
      validationLossAfter: validationAfter,
      ...o.baseUnet?.record,
    };
    return {
      adapter: await state.result(o.rank, alpha, record),
      memory: built.memory,
      losses,
      startIteration,
      validationBefore,
      validationAfter,
      secondsPerIteration: losses.length ? (Date.now() - started) / 1000 / losses.length : 0,
    };
  } finally {
    await state.release();
    await session.release().catch(() => {});
  }
}

/** Phase 1: the options and the data, checked; what the later phases derive from them. */
function checkOptions(
  model: StableDiffusionModel,
  data: FinetuneData,
  o: FinetuneOptions,
): { prediction: 'epsilon' | 'v_prediction'; alpha: number; accumulate: number } {
  check(typeof o.prompt === 'string', 'prompt', o.prompt, 'a string');
  check(Number.isInteger(o.iterations) && o.iterations >= 1, 'iterations', o.iterations, 'an integer ≥ 1');
  check(o.lr > 0 && Number.isFinite(o.lr), 'lr', o.lr, 'a positive number');
  check(Number.isInteger(o.rank) && o.rank >= 1 && o.rank <= 256, 'rank', o.rank, 'an integer from 1 to 256');
  const N = model.schedulerConfig.num_train_timesteps;
  check(
    Number.isInteger(o.maxTimestep) && o.maxTimestep >= 1 && o.maxTimestep <= N,
    'max_timestep',
    o.maxTimestep,
    `an integer from 1 to ${N}`,
  );
  check(
    o.conditionalShare > 0 && o.conditionalShare < 1,
    'conditional_share',
    o.conditionalShare,
    'a number in (0, 1)',
  );
  check(
    Number.isInteger(o.checkpointEvery) && o.checkpointEvery >= 0,
    'checkpoint_every',
    o.checkpointEvery,
    'an integer ≥ 0',
  );
  const accumulate = o.accumulate ?? 1;
  check(Number.isInteger(accumulate) && accumulate >= 1, 'accumulate', accumulate, 'an integer ≥ 1');
  check(
    o.precision === undefined || o.precision === 'float32' || o.precision === 'float16',
    'precision',
    o.precision,
    'float32 or float16',
  );
  if (data.frames.length === 0)
    throw new VidpriorError('E_BAD_INPUT', 'fine-tuning needs at least one frame of the clip');
  const size = data.frames[0]!.dims.join('×');
  for (const img of [...data.frames, ...data.edits.flatMap((e) => [e.original, e.edited])]) {
    if (img.dims.join('×') !== size) {
      throw new VidpriorError(
        'E_BAD_INPUT',
        `all frames and edits must have one size: got ${img.dims.slice(-2).reverse().join('×')} and ${data.frames[0]!.dims.slice(-2).reverse().join('×')}`,
      );
    }
  }
  const prediction = model.schedulerConfig.prediction_type;
  if (prediction !== 'epsilon' && prediction !== 'v_prediction') {
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `fine-tuning supports epsilon and v_prediction models; this scheduler predicts ${prediction}`,
    );
  }
  return { prediction, alpha: o.alpha ?? o.rank, accumulate };
}

interface EncodedClip {
  uncond: Float32Array[];
  cond: { original: Float32Array; edited: Float32Array }[];
  latentDims: number[];
  empty: Tensor<'float32'>;
  prompt: Tensor<'float32'>;
}

/** Phase 2: every frame and edit through the VAE once, the empty prompt and the prompt through CLIP once. */
async function encodeClip(
  model: StableDiffusionModel,
  data: FinetuneData,
  prompt: string,
  throwIfCancelled: () => void,
): Promise<EncodedClip> {
  // Frames arrive as [3,H,W] in [-1,1] (src/io's convention), the VAE stage's range; it takes a batch.
  let latentDims: number[] = [];
  const latent = async (img: Tensor<'float32'>): Promise<Float32Array> => {
    const z = await encodeImages(model, float32([1, ...img.dims.slice(-3)], img.data));
    latentDims = [1, model.facts.latentChannels, ...z.dims.slice(2)];
    return z.data;
  };
  const uncond: Float32Array[] = [];
  for (const f of data.frames) {
    throwIfCancelled();
    uncond.push(await latent(f));
  }
  const cond: EncodedClip['cond'] = [];
  for (const e of data.edits) cond.push({ original: await latent(e.original), edited: await latent(e.edited) });
  return {
    uncond,
    cond,
    latentDims,
    empty: (await encodeText(model, '')).hidden,
    prompt: (await encodeText(model, prompt)).hidden,
  };
}

/** What a checkpoint must match: every setting that changes the result, and the encoded data. */
function runFingerprint(
  model: StableDiffusionModel,
  o: FinetuneOptions,
  alpha: number,
  accumulate: number,
  adam: AdamWConfig,
  clip: EncodedClip,
): string {
  const arrays = [...clip.uncond, ...clip.cond.flatMap((c) => [c.original, c.edited])];
  const dataHash = createHash('sha256')
    .update(Buffer.concat(arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength))))
    .digest('hex');
  return createHash('sha256')
    .update(
      JSON.stringify({
        model: model.dir,
        ...(o.baseUnet ? { base: o.baseUnet.record } : {}),
        prompt: o.prompt,
        rank: o.rank,
        alpha,
        lr: o.lr,
        maxT: o.maxTimestep,
        share: o.conditionalShare,
        seed: o.seed,
        convs: !!o.convs,
        adam,
        iterations: o.iterations,
        ...(o.full ? { full: true } : {}),
        ...(accumulate > 1 ? { accumulate } : {}),
        ...(o.precision === 'float16' ? { precision: 'float16' } : {}),
        data: dataHash,
      }),
    )
    .digest('hex');
}
