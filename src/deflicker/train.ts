/**
 * Trains the Deep Video Prior network on one video: original frames in, processed frames as targets, epochs
 * over the frames in a seeded random order, the whole step in one ONNX graph (step-graph.ts) on the runtime.
 *
 * Schedule (DVP's guidance): 25 epochs of Adam (the paper's code trains 25 epochs at lr 1e-4; a short clip
 * gets few steps, so the default lr here is 5e-4); the network learns what the frames agree on first and the
 * per-frame flicker only later, so training stops early on purpose. With IRT the
 * first 5 epochs train on the first frame only with the initialisation loss (as DVP does), the rest with IRT.
 *
 * Early stopping: after each epoch (not counting IRT's initialisation epochs), once `minEpochs` are done, the
 * run stops when the last `patience` epochs lowered the mean training loss by less than `minImprovement`
 * (relative) below the best epoch before them. A plateau means the network has learnt what is consistent
 * across the frames; what it could still learn is the flicker itself.
 */
import { createHash } from 'node:crypto';
import { VidpriorError, check } from '../errors.js';
import { encodeModel } from '../onnx/codec.js';
import { Rng } from '../random.js';
import type { Feed, GpuTensor, Runtime } from '../runtime/types.js';
import { isGpuTensor } from '../runtime/types.js';
import { float32 } from '../tensor.js';
import { adamScalars } from '../training/train-step.js';
import { type DeflickerCheckpoint, loadDeflickerCheckpoint, saveDeflickerCheckpoint } from './checkpoint.js';
import { DVP_NET_DEFAULTS, checkNetConfig, sideMultiple } from './network.js';
import { LOSS_DEFAULTS } from './objective.js';
import { buildDeflickerStep } from './step-graph.js';

export interface EarlyStopRule {
  patience: number;
  minImprovement: number;
  minEpochs: number;
}

export interface DeflickerTrainOptions {
  width: number;
  scales: number;
  seed: number;
  irt: boolean;
  epochs: number;
  /** IRT only: epochs on the first frame with the initialisation loss (DVP: 5). */
  irtInitEpochs: number;
  lr: number;
  /** Frames per step. */
  batch: number;
  gradientWeight: number;
  gradientScales: number;
  /** null: train all `epochs`. */
  earlyStop: EarlyStopRule | null;
  /** Checkpoint every K steps and at the end of each epoch (0 = only at epoch ends), to `checkpointPath`. */
  checkpointEvery: number;
  checkpointPath?: string;
  /** Continue from `checkpointPath` when it exists. */
  resume?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: TrainProgress) => void;
}

export const TRAIN_DEFAULTS = {
  ...DVP_NET_DEFAULTS,
  seed: 0,
  irt: false,
  epochs: 25,
  irtInitEpochs: 5,
  // DVP: 1e-4 over thousands of steps; a short clip gets a few hundred (see README.md).
  lr: 5e-4,
  batch: 1,
  ...LOSS_DEFAULTS,
  earlyStop: { patience: 3, minImprovement: 0.02, minEpochs: 8 } as EarlyStopRule | null,
  checkpointEvery: 0,
} as const;

export interface TrainProgress {
  stage: 'building' | 'training' | 'checkpoint';
  epoch: number;
  epochs: number;
  step: number;
  /** Steps of the full schedule (an early stop ends before). */
  steps: number;
  loss?: number;
  etaSeconds?: number;
  message?: string;
}

/**
 * Frames [3, h, w], sides multiples of 2^(scales−1) (pad them: see deflicker.ts): float32 in [-1, 1], or 8-bit
 * values (0–255) that stand for exactly the floats src/io reads from 8-bit images (a quarter of the memory).
 */
export type TrainingFrame = Float32Array | Uint8Array;

export interface TrainingFrames {
  original: TrainingFrame[];
  processed: TrainingFrame[];
  width: number;
  height: number;
}

export interface TrainResult {
  /** Trained weights by parameter name. */
  weights: Map<string, { dims: number[]; data: Float32Array }>;
  epochLosses: number[];
  epochsRun: number;
  stoppedEarly: boolean;
  /** Step the run started from (> 0 when resumed). */
  startStep: number;
  stepsRun: number;
  secondsPerStep: number;
  parameters: number;
}

/** 8-bit value → the float src/io's hwcToTensor makes of it (the same float32 steps, so bit for bit). */
const BYTE_TO_UNIT = Float32Array.from({ length: 256 }, (_, v) => Math.fround(Math.fround(v / 255) * 2) - 1);

/** A float frame read from 8-bit pixels, back to those bytes (exact: every value is one of BYTE_TO_UNIT's). */
export function frameToBytes(frame: Float32Array): Uint8Array {
  const out = new Uint8Array(frame.length);
  for (let i = 0; i < frame.length; i++) out[i] = Math.round((frame[i]! + 1) * 127.5);
  return out;
}

/** True when every value of `frame` is the float of an 8-bit value (then frameToBytes loses nothing). */
export function isEightBit(frame: Float32Array): boolean {
  for (let i = 0; i < frame.length; i++) {
    const v = frame[i]!;
    if (BYTE_TO_UNIT[Math.round((v + 1) * 127.5)] !== v) return false;
  }
  return true;
}

/** A fresh generator for (seed, stream, index): an epoch's order depends on nothing else. */
function rngFor(seed: number, stream: string, index: number): Rng {
  const h = createHash('sha256').update(`deflicker/${seed}/${stream}/${index}`).digest();
  return new Rng(h.readUInt32LE(0) + 2 ** 32 * (h.readUInt32LE(4) & 0x1fffff));
}

/** True when the early-stopping rule ends training after these (post-initialisation) epoch losses. */
export function shouldStopEarly(losses: readonly number[], rule: EarlyStopRule): boolean {
  const k = losses.length;
  if (k < Math.max(rule.minEpochs, rule.patience + 1)) return false;
  const before = Math.min(...losses.slice(0, k - rule.patience));
  const recent = Math.min(...losses.slice(k - rule.patience));
  return recent > before * (1 - rule.minImprovement);
}

export function checkTrainOptions(o: DeflickerTrainOptions): void {
  checkNetConfig(o);
  check(Number.isInteger(o.epochs) && o.epochs >= 1 && o.epochs <= 10_000, 'epochs', o.epochs, 'a whole number ≥ 1');
  check(
    Number.isInteger(o.irtInitEpochs) && o.irtInitEpochs >= 0 && (!o.irt || o.irtInitEpochs < o.epochs),
    'irt-init-epochs',
    o.irtInitEpochs,
    `a whole number below the epochs (${o.epochs})`,
  );
  check(Number.isFinite(o.lr) && o.lr > 0 && o.lr < 1, 'lr', o.lr, 'a number in (0, 1)');
  check(Number.isInteger(o.batch) && o.batch >= 1 && o.batch <= 64, 'batch', o.batch, 'a whole number from 1 to 64');
  check(o.gradientWeight >= 0 && o.gradientWeight <= 100, 'gradient-weight', o.gradientWeight, 'a number in [0, 100]');
  check(
    Number.isInteger(o.gradientScales) && o.gradientScales >= 1 && o.gradientScales <= 6,
    'gradient-scales',
    o.gradientScales,
    'a whole number from 1 to 6',
  );
  check(Number.isSafeInteger(o.seed) && o.seed >= 0, 'seed', o.seed, 'a whole number ≥ 0');
  check(
    Number.isInteger(o.checkpointEvery) && o.checkpointEvery >= 0,
    'checkpoint-every',
    o.checkpointEvery,
    'a whole number ≥ 0',
  );
}

export async function trainDeflicker(
  runtime: Runtime,
  frames: TrainingFrames,
  o: DeflickerTrainOptions,
): Promise<TrainResult> {
  const progress = o.onProgress ?? (() => {});
  // 1. Check the options and the frames.
  checkTrainOptions(o);
  const n = frames.original.length;
  if (n === 0 || frames.processed.length !== n)
    throw new VidpriorError(
      'E_BAD_INPUT',
      `training needs as many processed frames as original ones, at least one (got ${n} and ${frames.processed.length})`,
    );
  const { width: w, height: h } = frames;
  const m = sideMultiple(o);
  if (w % m !== 0 || h % m !== 0)
    throw new VidpriorError('E_INTERNAL', `training frames are ${w}×${h}, not multiples of ${m}`);
  const plane = 3 * w * h;
  for (const f of [...frames.original, ...frames.processed])
    if (f.length !== plane)
      throw new VidpriorError('E_INTERNAL', `a training frame has ${f.length} values, not ${plane}`);
  const throwIfCancelled = (): void => {
    if (o.signal?.aborted) throw new VidpriorError('E_CANCELLED', 'deflicker training was cancelled');
  };

  // 2. The step graph and its session.
  const stepsPerEpoch = Math.ceil(n / o.batch);
  const totalSteps = o.epochs * stepsPerEpoch;
  progress({
    stage: 'building',
    epoch: 0,
    epochs: o.epochs,
    step: 0,
    steps: totalSteps,
    message: 'building the training graph',
  });
  const loss = { irt: o.irt, gradientWeight: o.gradientWeight, gradientScales: o.gradientScales };
  const net = { width: o.width, scales: o.scales, seed: o.seed, outputs: (o.irt ? 2 : 1) as 1 | 2 };
  const step = buildDeflickerStep(net, loss, { batch: o.batch, height: h, width: w });
  const stateOutputs = step.state.flatMap((s) => [s.newParam, s.newM, s.newV]);
  const session = await runtime.createSession(encodeModel(step.model), {
    label: 'deflicker-train',
    keepOutputsOnGpu: stateOutputs,
    // Autodiff recomputes some forward values on purpose; do not let ORT merge them back.
    disabledOptimizers: ['CommonSubexpressionElimination'],
  });

  // 3. Initial or resumed state.
  const fingerprint = createHash('sha256')
    .update(JSON.stringify({ net, loss, o: [o.epochs, o.irtInitEpochs, o.lr, o.batch, o.earlyStop, step.adam], w, h }))
    .update(
      createHash('sha256')
        .update(
          Buffer.concat(
            [...frames.original, ...frames.processed].map((f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength)),
          ),
        )
        .digest(),
    )
    .digest('hex');
  const resumed = o.resume && o.checkpointPath ? await loadDeflickerCheckpoint(o.checkpointPath, fingerprint) : null;
  let current = new Map<string, Feed>();
  for (const s of step.state) {
    const init = step.params.find((p) => p.name === s.param)!.init;
    const zeros = () => new Float32Array(init.length);
    current.set(s.param, float32(s.dims, resumed?.tensors.get(s.param)?.data ?? init));
    current.set(s.m, float32(s.dims, resumed?.tensors.get(s.m)?.data ?? zeros()));
    current.set(s.v, float32(s.dims, resumed?.tensors.get(s.v)?.data ?? zeros()));
  }
  const state = {
    step: resumed?.step ?? 0,
    epochLosses: [...(resumed?.epochLosses ?? [])],
    partial: { ...(resumed?.partial ?? { sum: 0, count: 0 }) },
    stoppedEarly: resumed?.stoppedEarly ?? false,
  };
  const startStep = state.step;
  const nameFor = new Map<string, string>();
  for (const s of step.state) {
    nameFor.set(s.newParam, s.param);
    nameFor.set(s.newM, s.m);
    nameFor.set(s.newV, s.v);
  }
  const snapshot = async (): Promise<DeflickerCheckpoint['tensors']> => {
    const out: DeflickerCheckpoint['tensors'] = new Map();
    for (const [name, t] of current) {
      const host = isGpuTensor(t) ? await runtime.read(t) : t;
      out.set(name, { dims: [...host.dims], data: host.data as Float32Array });
    }
    return out;
  };
  const checkpoint = async (): Promise<void> => {
    if (!o.checkpointPath) return;
    progress({
      stage: 'checkpoint',
      epoch: Math.floor(state.step / stepsPerEpoch),
      epochs: o.epochs,
      step: state.step,
      steps: totalSteps,
    });
    await saveDeflickerCheckpoint(o.checkpointPath, fingerprint, { ...state, tensors: await snapshot() });
  };

  // 4. The epochs: a seeded order per epoch, `batch` frames per step (the last step wraps to the order's start).
  const initEpochs = o.irt ? o.irtInitEpochs : 0;
  const batchOf = (epoch: number, k: number): number[] => {
    if (epoch < initEpochs) return new Array<number>(o.batch).fill(0);
    const order = rngFor(o.seed, 'epoch', epoch).shuffle([...Array(n).keys()]);
    return Array.from({ length: o.batch }, (_, j) => order[(k * o.batch + j) % n]!);
  };
  const stack = (source: TrainingFrame[], picks: number[]): Float32Array => {
    const out = new Float32Array(picks.length * plane);
    for (const [j, p] of picks.entries()) {
      const f = source[p]!;
      if (f instanceof Float32Array) out.set(f, j * plane);
      else for (let i = 0; i < plane; i++) out[j * plane + i] = BYTE_TO_UNIT[f[i]!]!;
    }
    return out;
  };
  const started = Date.now();
  try {
    while (!state.stoppedEarly && state.step < totalSteps) {
      throwIfCancelled();
      const epoch = Math.floor(state.step / stepsPerEpoch);
      const picks = batchOf(epoch, state.step % stepsPerEpoch);
      const scalars = adamScalars(step.adam, o.lr, state.step + 1);
      const feeds: Record<string, Feed> = {
        [step.inputs.original]: float32([o.batch, 3, h, w], stack(frames.original, picks)),
        [step.inputs.processed]: float32([o.batch, 3, h, w], stack(frames.processed, picks)),
        [step.inputs.lr]: float32([], [scalars.lr]),
        [step.inputs.decay]: float32([], [scalars.decay]),
        [step.inputs.bc1]: float32([], [scalars.bc1]),
        [step.inputs.bc2]: float32([], [scalars.bc2]),
      };
      if (step.inputs.irt) feeds[step.inputs.irt] = float32([], [epoch < initEpochs ? 0 : 1]);
      for (const [name, value] of current) feeds[name] = value;
      const out = await session.run(feeds);
      const lossT = out[step.loss]!;
      const lossValue = (isGpuTensor(lossT) ? await runtime.read(lossT) : lossT).data[0] as number;
      if (!Number.isFinite(lossValue))
        throw new VidpriorError(
          'E_RUNTIME',
          `training diverged at step ${state.step + 1} (loss ${lossValue}): lower --lr`,
        );
      const next = new Map<string, Feed>();
      for (const [outName, value] of Object.entries(out)) {
        const inName = nameFor.get(outName);
        if (inName) next.set(inName, value);
      }
      const old = [...current.values()].filter(isGpuTensor) as GpuTensor[];
      current = next;
      if (old.length) await runtime.dispose(old);
      state.step++;
      state.partial.sum += lossValue;
      state.partial.count++;
      const epochDone = state.step % stepsPerEpoch === 0;
      if (epochDone) {
        if (epoch >= initEpochs) state.epochLosses.push(state.partial.sum / state.partial.count);
        state.partial = { sum: 0, count: 0 };
        if (o.earlyStop && epoch >= initEpochs && shouldStopEarly(state.epochLosses, o.earlyStop))
          state.stoppedEarly = true;
      }
      const perStep = (Date.now() - started) / 1000 / (state.step - startStep);
      progress({
        stage: 'training',
        epoch: epoch + 1,
        epochs: o.epochs,
        step: state.step,
        steps: totalSteps,
        loss: lossValue,
        etaSeconds: perStep * (totalSteps - state.step),
      });
      const due = o.checkpointEvery > 0 && state.step % o.checkpointEvery === 0;
      if (epochDone || due || o.signal?.aborted) await checkpoint();
    }
    const weights: TrainResult['weights'] = new Map();
    const values = await snapshot();
    for (const p of step.params) weights.set(p.name, values.get(p.name)!);
    return {
      weights,
      epochLosses: state.epochLosses,
      epochsRun: Math.ceil(state.step / stepsPerEpoch),
      stoppedEarly: state.stoppedEarly,
      startStep,
      stepsRun: state.step - startStep,
      secondsPerStep: state.step > startStep ? (Date.now() - started) / 1000 / (state.step - startStep) : 0,
      parameters: step.params.reduce((a, p) => a + p.init.length, 0),
    };
  } finally {
    const gpu = [...current.values()].filter(isGpuTensor) as GpuTensor[];
    if (gpu.length) await runtime.dispose(gpu).catch(() => {});
    await session.release().catch(() => {});
  }
}
