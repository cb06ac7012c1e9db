/**
 * Training checkpoints: LoRA tensors and Adam moments (graph layout) plus the iteration and a fingerprint of
 * the run's settings, in one safetensors file written atomically. Resuming from iteration k reproduces the
 * uninterrupted run exactly, because every random draw of iteration i is derived from (seed, i) alone.
 */
import { existsSync } from 'node:fs';
import { VidpriorError } from '../errors.js';
import { type SafeTensor, readSafetensors, writeSafetensors } from './safetensors.js';

export interface CheckpointState {
  iteration: number;
  /** name → values, for every parameter value and its `.m` / `.v` moments. */
  tensors: Map<string, { dims: number[]; data: Float32Array }>;
  fingerprint: string;
  /** Loss history so far (moving average resumes from it). */
  emaLoss: number | null;
}

export async function saveCheckpoint(path: string, state: CheckpointState): Promise<void> {
  const tensors = new Map<string, SafeTensor>();
  for (const [name, t] of state.tensors) tensors.set(name, { type: 'float32', dims: t.dims, data: t.data });
  await writeSafetensors(path, tensors, {
    vidprior_checkpoint: JSON.stringify({
      iteration: state.iteration,
      fingerprint: state.fingerprint,
      ema_loss: state.emaLoss,
    }),
  });
}

/** Loads a checkpoint, or returns null when none exists. A checkpoint of other settings is an error. */
export async function loadCheckpoint(path: string, fingerprint: string): Promise<CheckpointState | null> {
  if (!existsSync(path)) return null;
  const file = await readSafetensors(path);
  let meta: { iteration?: number; fingerprint?: string; ema_loss?: number | null };
  try {
    meta = JSON.parse(file.metadata.vidprior_checkpoint ?? '') as typeof meta;
  } catch {
    throw new VidpriorError('E_BAD_INPUT', `${path} is not a vidprior training checkpoint`, { file: path });
  }
  if (meta.fingerprint !== fingerprint) {
    throw new VidpriorError(
      'E_BAD_INPUT',
      `checkpoint ${path} was made with other settings (frames, edits, prompt, rank, seed or model differ): delete it or drop --resume`,
      { file: path },
    );
  }
  const tensors = new Map<string, { dims: number[]; data: Float32Array }>();
  for (const [name, t] of file.tensors)
    tensors.set(name, { dims: t.dims, data: Float32Array.from(t.data as Float32Array) });
  return { iteration: meta.iteration ?? 0, tensors, fingerprint, emaLoss: meta.ema_loss ?? null };
}
