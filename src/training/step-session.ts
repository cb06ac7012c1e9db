/**
 * The training step's session: the UNet turned into its training graph (train-step.ts), checked against the
 * memory it will need, written to a temporary folder and opened by the runtime.
 *
 * The base weights are in memory once. A UNet stored with external data is read WITHOUT its weights
 * (`loadExternal: false`): the graph is built from the structure alone and the weights are copied from file
 * to file; a UNet with inline weights has them dropped from the graph object once written. Either way only
 * the runtime's session holds them while training. (float16 compute converts weights, so it reads them.)
 */
import type { Model } from '../onnx/ir.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { VidpriorError } from '../errors.js';
import { loadModel, saveModel } from '../onnx/external-data.js';
import type { StableDiffusionModel } from '../models/types.js';
import type { Runtime, Session } from '../runtime/types.js';
import { findFullParams, parameterCount } from './full.js';
import { findLoraTargets, loraShapes } from './lora.js';
import { type TrainingMemory, checkTrainingMemory, estimateTrainingMemory } from './memory.js';
import { type AdamWConfig, type TrainStepGraph, buildTrainStep } from './train-step.js';

export interface StepSessionOptions {
  full: boolean;
  rank: number;
  alpha: number;
  convs: boolean;
  adam?: Partial<AdamWConfig>;
  accumulate: boolean;
  precision: 'float32' | 'float16';
  recompute: boolean;
  /** Bytes the step may use; createStepSession's default: this machine's memory on CPU, no check elsewhere. */
  memoryLimit?: number;
  memoryLimitSource?: string;
  /** The UNet to train on instead of the folder's (e.g. with style LoRAs merged), weights in memory. */
  baseUnet?: () => Promise<Model>;
}

export interface StepSession {
  /** The step graph's names (its model's weights are gone once the session holds them). */
  step: Omit<TrainStepGraph, 'model'>;
  session: Session;
  memory: TrainingMemory;
  /** Seconds spent building the graph (autodiff included) and creating the session. */
  buildSeconds: number;
  sessionSeconds: number;
}

export async function createStepSession(
  runtime: Runtime,
  model: Pick<StableDiffusionModel, 'dir'>,
  latentShape: number[],
  textShape: number[],
  o: StepSessionOptions,
): Promise<StepSession> {
  const built = await buildStepGraph(model, latentShape, textShape, {
    ...o,
    ...(o.memoryLimit === undefined && runtime.decision.ep === 'cpu'
      ? { memoryLimit: totalmem(), memoryLimitSource: "this machine's memory" }
      : {}),
  });
  return openStepSession(runtime, built);
}

export interface StepGraph {
  graph: TrainStepGraph['model'];
  step: Omit<TrainStepGraph, 'model'>;
  memory: TrainingMemory;
  buildSeconds: number;
}

/** Phases 1–3: the step graph from the UNet's structure, and the memory check (against `memoryLimit` only). */
export async function buildStepGraph(
  model: Pick<StableDiffusionModel, 'dir'>,
  latentShape: number[],
  textShape: number[],
  o: StepSessionOptions,
): Promise<StepGraph> {
  const started = performance.now();
  // 1. The UNet's structure (and its weights only where float16 conversion needs them).
  const unetPath = join(model.dir, 'unet', 'model.onnx');
  const unet = o.baseUnet ? await o.baseUnet() : await loadModel(unetPath, { loadExternal: o.precision === 'float16' });
  const baseParameters = parameterCount(findFullParams(unet));

  // 2. The trainable values and the step graph.
  let trainable: Parameters<typeof buildTrainStep>[1]['trainable'];
  let trainedParameters: number;
  if (o.full) {
    const params = findFullParams(unet);
    trainable = { kind: 'full', params };
    trainedParameters = parameterCount(params);
  } else {
    const targets = findLoraTargets(unet, { convs: o.convs });
    if (targets.length === 0)
      throw new VidpriorError(
        'E_MODEL_INPUT',
        `${unetPath}: found no attention projections (to_q/to_k/to_v/to_out) to adapt`,
      );
    trainable = { kind: 'lora', targets, rank: o.rank, alpha: o.alpha };
    trainedParameters = targets.reduce((s, t) => {
      const { aDims, bDims } = loraShapes(t, o.rank);
      return s + aDims.reduce((a, b) => a * b, 1) + bDims.reduce((a, b) => a * b, 1);
    }, 0);
  }
  const { model: graph, ...step } = buildTrainStep(unet, {
    trainable,
    latentShape,
    textShape,
    adam: o.adam,
    accumulate: o.accumulate,
    precision: o.precision,
    recompute: o.recompute,
  });

  // 3. Will it fit? Checked before the runtime loads anything.
  const memory = estimateTrainingMemory({
    baseParameters,
    trainedParameters,
    full: o.full,
    precision: o.precision,
    accumulate: o.accumulate,
    savedActivationBytes: step.savedActivationBytes,
    largestValueBytes: step.largestValueBytes,
  });
  checkTrainingMemory(memory, o.memoryLimit, o.memoryLimitSource ?? 'the memory limit', o.full);
  return { graph, step, memory, buildSeconds: (performance.now() - started) / 1000 };
}

/** Phase 4: the graph written out (weights copied file to file) and opened by the runtime. */
export async function openStepSession(runtime: Runtime, built: StepGraph): Promise<StepSession> {
  const { graph, step, memory, buildSeconds } = built;
  // The graph object lets its weights go before the runtime reads its own copy.
  const sessionStarted = performance.now();
  const tmp = await mkdtemp(join(tmpdir(), 'vidprior-train-'));
  try {
    const path = join(tmp, 'train_step.onnx');
    await saveModel(graph, path, { externalData: { threshold: 1024 * 1024, fileName: 'train_step.onnx.data' } });
    graph.graph.initializers = [];
    const session = await runtime.createSession(path, {
      label: 'train-step',
      keepOutputsOnGpu: step.state.flatMap((s) => [s.newParam, s.newM, s.newV, ...(s.newAcc ? [s.newAcc] : [])]),
      // Autodiff recomputes some forward values on purpose; do not let ORT merge them back.
      disabledOptimizers: ['CommonSubexpressionElimination'],
    });
    return { step, session, memory, buildSeconds, sessionSeconds: (performance.now() - sessionStarted) / 1000 };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
