/**
 * Per-video fine-tuning (the method's steps 2–3): a LoRA on the UNet, trained on ~30 frames of the clip with
 * the empty prompt and on 1–2 (original, edited) keyframe pairs with the prompt, only at late, low-noise
 * timesteps (t < max_timestep). The whole step runs as one ONNX graph (train-step.ts) in the runtime.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VidpriorError, check } from '../errors.js';
import { loadModel, saveModel } from '../onnx/external-data.js';
import type { StableDiffusionModel } from '../models/types.js';
import { encodeText } from '../pipelines/text.js';
import { encodeImages } from '../pipelines/vae.js';
import { Rng } from '../random.js';
import type { Feed, GpuTensor, Runtime } from '../runtime/types.js';
import { isGpuTensor } from '../runtime/types.js';
import { DdimScheduler } from '../schedulers/ddim.js';
import { type Tensor, float32, int64, tensor } from '../tensor.js';
import type { Adapter, AdapterRecord } from './adapter.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { findLoraTargets } from './lora.js';
import { noisedSample } from './objective.js';
import { type AdamWConfig, adamScalars, buildTrainStep } from './train-step.js';

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
  adam?: Partial<AdamWConfig>;
  /** Write a checkpoint every K iterations (0 = never) to `checkpointPath`. */
  checkpointEvery: number;
  checkpointPath?: string;
  /** Continue from `checkpointPath` when it exists. */
  resume?: boolean;
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
  adapter: Adapter;
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

/** A fresh generator for (seed, stream, index): each iteration's draws depend on nothing else. */
function rngFor(seed: number, stream: string, index: number): Rng {
  const h = createHash('sha256').update(`${seed}/${stream}/${index}`).digest();
  return new Rng(h.readUInt32LE(0) + 2 ** 32 * (h.readUInt32LE(4) & 0x1fffff));
}

export async function finetune(
  runtime: Runtime,
  model: StableDiffusionModel,
  data: FinetuneData,
  options: FinetuneOptions,
): Promise<FinetuneResult> {
  const o = options;
  const progress = o.onProgress ?? (() => {});
  // 1. Check inputs.
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
  const alpha = o.alpha ?? o.rank;
  const throwIfCancelled = (): void => {
    if (o.signal?.aborted) throw new VidpriorError('E_CANCELLED', 'fine-tuning was cancelled');
  };

  // 2. Encode the clip and the prompts once.
  progress({
    stage: 'encoding',
    iteration: 0,
    iterations: o.iterations,
    message: `encoding ${data.frames.length} frames and ${data.edits.length} edits`,
  });
  // Frames arrive as [3,H,W] in [-1,1] (src/io's convention), the VAE stage's range; it takes a batch.
  const latent = async (img: Tensor<'float32'>): Promise<Tensor<'float32'>> =>
    encodeImages(model, float32([1, ...img.dims.slice(-3)], img.data));
  const uncond: Float32Array[] = [];
  for (const f of data.frames) {
    throwIfCancelled();
    uncond.push((await latent(f)).data);
  }
  const cond: { original: Float32Array; edited: Float32Array }[] = [];
  for (const e of data.edits)
    cond.push({ original: (await latent(e.original)).data, edited: (await latent(e.edited)).data });
  const latentDims = [1, model.facts.latentChannels, ...(await latent(data.frames[0]!)).dims.slice(2)];
  const empty = (await encodeText(model, '')).hidden;
  const prompt = (await encodeText(model, o.prompt)).hidden;
  const scheduler = new DdimScheduler(model.schedulerConfig);

  // 3. Build the training step graph (UNet + LoRA + loss + backward + AdamW) and its session.
  progress({ stage: 'building', iteration: 0, iterations: o.iterations, message: 'building the training graph' });
  const unetPath = join(model.dir, 'unet', 'model.onnx');
  const unet = await loadModel(unetPath);
  const targets = findLoraTargets(unet, { convs: o.convs });
  if (targets.length === 0)
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `${unetPath}: found no attention projections (to_q/to_k/to_v/to_out) to adapt`,
    );
  const step = buildTrainStep(unet, {
    targets,
    rank: o.rank,
    alpha,
    latentShape: latentDims,
    textShape: [...prompt.dims],
    adam: o.adam,
  });
  const stateOutputs = step.state.flatMap((s) => [s.newParam, s.newM, s.newV]);
  const tmp = await mkdtemp(join(tmpdir(), 'vidprior-train-'));
  let session: Awaited<ReturnType<Runtime['createSession']>>;
  try {
    const path = join(tmp, 'train_step.onnx');
    await saveModel(step.model, path, { externalData: { threshold: 1024 * 1024, fileName: 'train_step.onnx.data' } });
    session = await runtime.createSession(path, {
      label: 'train-step',
      keepOutputsOnGpu: stateOutputs,
      // Autodiff recomputes some forward values on purpose; do not let ORT merge them back.
      disabledOptimizers: ['CommonSubexpressionElimination'],
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }

  // 4. Initial state: A ~ U(±1/√fan_in) like peft's default, B = 0 (the model starts unchanged), moments 0.
  const fingerprint = createHash('sha256')
    .update(
      JSON.stringify({
        model: model.dir,
        prompt: o.prompt,
        rank: o.rank,
        alpha,
        lr: o.lr,
        maxT: o.maxTimestep,
        share: o.conditionalShare,
        seed: o.seed,
        convs: !!o.convs,
        adam: step.adam,
        iterations: o.iterations,
        data: createHash('sha256')
          .update(
            Buffer.concat(
              [...uncond, ...cond.flatMap((c) => [c.original, c.edited])].map((a) =>
                Buffer.from(a.buffer, a.byteOffset, a.byteLength),
              ),
            ),
          )
          .digest('hex'),
      }),
    )
    .digest('hex');
  let current = new Map<string, Feed>();
  let startIteration = 0;
  let ema: number | null = null;
  const resumed = o.resume && o.checkpointPath ? await loadCheckpoint(o.checkpointPath, fingerprint) : null;
  for (const s of step.state) {
    const saved = resumed?.tensors;
    const init = new Float32Array(s.dims.reduce((a, b) => a * b, 1));
    if (!saved && s.param.endsWith('.A')) {
      const fanIn = s.dims.length === 2 ? s.dims[0]! : s.dims.slice(1).reduce((a, b) => a * b, 1);
      const r = rngFor(o.seed, `init/${s.param}`, 0);
      const bound = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < init.length; i++) init[i] = (2 * r.uniform() - 1) * bound;
    }
    current.set(s.param, float32(s.dims, saved?.get(s.param)?.data ?? init));
    current.set(s.m, float32(s.dims, saved?.get(s.m)?.data ?? new Float32Array(init.length)));
    current.set(s.v, float32(s.dims, saved?.get(s.v)?.data ?? new Float32Array(init.length)));
  }
  if (resumed) {
    startIteration = resumed.iteration;
    ema = resumed.emaLoss;
  }

  // 5. The epoch plan: every frame once, plus the edited keyframes for their share of the epoch.
  const condPerEpoch = cond.length
    ? Math.max(1, Math.round((uncond.length * o.conditionalShare) / (1 - o.conditionalShare)))
    : 0;
  const epochLength = uncond.length + condPerEpoch;
  const epochOrder = (epoch: number): number[] => {
    const order = [
      ...uncond.keys(),
      ...Array.from({ length: condPerEpoch }, (_, i) => uncond.length + (i % cond.length)),
    ];
    return rngFor(o.seed, 'epoch', epoch).shuffle(order);
  };
  const timestepType = model.facts.timestepType;
  const timestepFeed = (t: number): Tensor =>
    timestepType === 'int64'
      ? int64([1], [t])
      : timestepType === 'int32'
        ? tensor('int32', [1], Int32Array.of(t))
        : float32([1], [t]);
  const snapshot = async (): Promise<Map<string, { dims: number[]; data: Float32Array }>> => {
    const out = new Map<string, { dims: number[]; data: Float32Array }>();
    for (const [name, t] of current) {
      const host = isGpuTensor(t) ? await runtime.read(t) : t;
      out.set(name, { dims: [...host.dims], data: host.data as Float32Array });
    }
    return out;
  };
  const nameFor = new Map<string, string>();
  for (const s of step.state) {
    nameFor.set(s.newParam, s.param);
    nameFor.set(s.newM, s.m);
    nameFor.set(s.newV, s.v);
  }

  // A fixed validation set (samples, timesteps, noise), scored by running the step with lr = 0, which leaves
  // the LoRA tensors as they are: the loss before and after training on the same draws.
  const validationPicks = [...uncond.keys()]
    .slice(0, cond.length ? 6 : 8)
    .concat(cond.map((_, k) => uncond.length + k).slice(0, 2));
  const validation = validationPicks.map((pick, i) => ({
    pick,
    t: Math.floor(((i + 0.5) * o.maxTimestep) / validationPicks.length),
    noise: rngFor(o.seed, 'validation', i).normalArray(uncond[0]!.length),
  }));
  const feedsFor = (
    pick: number,
    t: number,
    noise: Float32Array,
    lr: number,
    stepNumber: number,
  ): Record<string, Feed> => {
    const isCond = pick >= uncond.length;
    const source = isCond ? cond[pick - uncond.length]!.original : uncond[pick]!;
    const goal = isCond ? cond[pick - uncond.length]!.edited : source;
    const sample = noisedSample(source, goal, noise, scheduler.alphasCumprod[t]!, prediction);
    const scalars = adamScalars(step.adam, lr, stepNumber);
    const feeds: Record<string, Feed> = {
      [step.inputs.sample]: float32(latentDims, sample.noisy),
      [step.inputs.target]: float32(latentDims, sample.target),
      [step.inputs.timestep]: timestepFeed(t),
      [step.inputs.context]: isCond ? prompt : empty,
      [step.inputs.lr]: float32([], [scalars.lr]),
      [step.inputs.decay]: float32([], [lr === 0 ? 1 : scalars.decay]),
      [step.inputs.bc1]: float32([], [scalars.bc1]),
      [step.inputs.bc2]: float32([], [scalars.bc2]),
    };
    for (const [name, value] of current) feeds[name] = value;
    return feeds;
  };
  const readLoss = async (out: Record<string, Feed>): Promise<number> => {
    const lossT = out[step.loss]!;
    return (isGpuTensor(lossT) ? await runtime.read(lossT) : lossT).data[0] as number;
  };
  const validate = async (): Promise<number> => {
    let sum = 0;
    for (const v of validation) {
      const out = await session.run(feedsFor(v.pick, v.t, v.noise, 0, 1), [step.loss]);
      sum += await readLoss(out);
    }
    return sum / validation.length;
  };

  // 6. Train.
  const losses: number[] = [];
  const validationBefore = await validate();
  const started = Date.now();
  let plan: number[] = [];
  let planEpoch = -1;
  try {
    for (let it = startIteration; it < o.iterations; it++) {
      throwIfCancelled();
      const epoch = Math.floor(it / epochLength);
      if (epoch !== planEpoch) {
        plan = epochOrder(epoch);
        planEpoch = epoch;
      }
      const pick = plan[it % epochLength]!;
      const r = rngFor(o.seed, 'iteration', it);
      const t = r.int(o.maxTimestep);
      const noise = r.normalArray(uncond[0]!.length);
      const out = await session.run(feedsFor(pick, t, noise, o.lr, it + 1));
      const loss = await readLoss(out);
      if (!Number.isFinite(loss)) {
        throw new VidpriorError('E_RUNTIME', `training diverged at iteration ${it + 1} (loss ${loss}): lower --lr`, {
          iteration: it + 1,
        });
      }
      const next = new Map<string, Feed>();
      for (const [outName, value] of Object.entries(out)) {
        const inName = nameFor.get(outName);
        if (inName) next.set(inName, value);
      }
      const old = [...current.values()].filter(isGpuTensor) as GpuTensor[];
      current = next;
      if (old.length) await runtime.dispose(old);
      losses.push(loss);
      ema = ema === null ? loss : 0.98 * ema + 0.02 * loss;
      const done = it + 1 - startIteration;
      const perIt = (Date.now() - started) / 1000 / done;
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
          tensors: await snapshot(),
          fingerprint,
          emaLoss: ema,
        });
      }
    }

    // 7. The adapter, in graph layout.
    const validationAfter = await validate();
    const values = await snapshot();
    const weights: Adapter['weights'] = new Map();
    for (const p of step.params) {
      weights.set(p.target.module, {
        kind: p.target.kind,
        a: values.get(p.a)!.data,
        b: values.get(p.b)!.data,
        aDims: p.aDims,
        bDims: p.bDims,
      });
    }
    const record: Partial<AdapterRecord> = {
      baseModel: model.dir,
      prompt: o.prompt,
      frames: data.frames.length,
      edits: data.edits.length,
      maxTimestep: o.maxTimestep,
      rank: o.rank,
      alpha,
      iterations: o.iterations,
      lr: o.lr,
      seed: o.seed,
      conditionalShare: o.conditionalShare,
      clip: data.description ?? '',
      finalLoss: ema ?? undefined,
      validationLossBefore: validationBefore,
      validationLossAfter: validationAfter,
    };
    return {
      adapter: { rank: o.rank, alpha, weights, record },
      losses,
      startIteration,
      validationBefore,
      validationAfter,
      secondsPerIteration: losses.length ? (Date.now() - started) / 1000 / losses.length : 0,
    };
  } finally {
    const gpu = [...current.values()].filter(isGpuTensor) as GpuTensor[];
    if (gpu.length) await runtime.dispose(gpu).catch(() => {});
    await session.release().catch(() => {});
  }
}
