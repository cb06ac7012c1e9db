/**
 * What a training step needs in memory, and the refusal when that is more than there is. The parts follow
 * how the step graph holds them (train-step.ts): base weights (initializers), the weights in use (W0 + Δ, full
 * mode), the trained values and their Adam moments as inputs AND outputs of one run (old and new side by
 * side), gradients, accumulators, and the forward activations the backward pass reads, plus the largest
 * single intermediate twice over as working room.
 */
import { VidpriorError } from '../errors.js';

export interface TrainingMemoryInput {
  /** Parameters of the UNet (base weights). */
  baseParameters: number;
  /** Trained values (LoRA tensors, or every weight in full mode). */
  trainedParameters: number;
  full: boolean;
  precision: 'float32' | 'float16';
  accumulate: boolean;
  /** Bytes of forward values the backward pass reads (TrainStepGraph.savedActivationBytes). */
  savedActivationBytes: number;
  largestValueBytes: number;
}

export interface TrainingMemory {
  baseWeights: number;
  weightsInUse: number;
  trained: number;
  moments: number;
  gradients: number;
  accumulators: number;
  activations: number;
  total: number;
}

const GiB = 2 ** 30;

export function estimateTrainingMemory(i: TrainingMemoryInput): TrainingMemory {
  const half = i.precision === 'float16';
  // LoRA in float16 keeps the frozen base in float16; full mode keeps float32 master base weights.
  const baseWeights = i.baseParameters * (half && !i.full ? 2 : 4);
  // Full mode reads W0 + Δ (float32; and its float16 cast in float16 mode) where it read W0.
  const weightsInUse = i.full ? i.baseParameters * (half ? 6 : 4) : 0;
  const trained = 2 * 4 * i.trainedParameters;
  const moments = 4 * 4 * i.trainedParameters;
  const gradients = i.trainedParameters * (half ? 6 : 4);
  const accumulators = i.accumulate ? 2 * 4 * i.trainedParameters : 0;
  const activations = i.savedActivationBytes + 2 * i.largestValueBytes;
  return {
    baseWeights,
    weightsInUse,
    trained,
    moments,
    gradients,
    accumulators,
    activations,
    total: baseWeights + weightsInUse + trained + moments + gradients + accumulators + activations,
  };
}

/** "41.3 GiB (base weights 3.2, …)" */
export function describeMemory(m: TrainingMemory): string {
  const g = (b: number): string => (b / GiB).toFixed(b < GiB / 10 ? 3 : 1);
  const parts = [
    ['base weights', m.baseWeights],
    ['weights in use', m.weightsInUse],
    ['trained values (old and new)', m.trained],
    ['Adam moments (old and new)', m.moments],
    ['gradients', m.gradients],
    ['accumulators', m.accumulators],
    ['activations', m.activations],
  ] as const;
  return `${g(m.total)} GiB (${parts
    .filter(([, b]) => b > 0)
    .map(([n, b]) => `${n} ${g(b)}`)
    .join(', ')})`;
}

/**
 * Throws E_TOO_LARGE when the estimate exceeds `limit` bytes, naming both and what to try.
 * `limitSource` says where the limit comes from (e.g. "this machine's memory").
 */
export function checkTrainingMemory(
  m: TrainingMemory,
  limit: number | undefined,
  limitSource: string,
  full: boolean,
): void {
  if (limit === undefined || m.total <= limit) return;
  const tips = full
    ? 'use LoRA instead (drop --full), or train at a smaller frame size'
    : 'lower the rank, drop --convs, or train at a smaller frame size';
  throw new VidpriorError(
    'E_TOO_LARGE',
    `${full ? 'full-UNet fine-tuning' : 'LoRA fine-tuning'} needs about ${describeMemory(m)}, but the limit is ${(limit / GiB).toFixed(1)} GiB (${limitSource}): ${tips}`,
    { needBytes: m.total, limitBytes: limit },
  );
}
