/**
 * Deflicker training checkpoints: the network's weights and Adam moments plus where the run stands (steps done,
 * the per-epoch losses the early-stopping rule reads, the running sum of the current epoch), in one safetensors
 * file written atomically. Every random draw of epoch e depends on (seed, e) alone and the session computes
 * the same values from the same inputs, so resuming from step k gives the uninterrupted run's weights bit for
 * bit. A checkpoint of other settings or other frames is refused (its fingerprint differs).
 */
import { existsSync } from 'node:fs';
import { VidpriorError } from '../errors.js';
import { type SafeTensor, readSafetensors, writeSafetensors } from '../training/safetensors.js';

export interface TrainingProgressState {
  /** Optimisation steps done. */
  step: number;
  /** Mean loss of each finished epoch. */
  epochLosses: number[];
  /** Loss sum and step count of the epoch in progress. */
  partial: { sum: number; count: number };
  /** Set when the early-stopping rule ended training (resuming then goes straight to applying). */
  stoppedEarly: boolean;
}

export interface DeflickerCheckpoint extends TrainingProgressState {
  /** Weights and their `.m` / `.v` moments, by graph input name. */
  tensors: Map<string, { dims: number[]; data: Float32Array }>;
}

const KEY = 'vidprior_deflicker_checkpoint';

export async function saveDeflickerCheckpoint(
  path: string,
  fingerprint: string,
  state: DeflickerCheckpoint,
): Promise<void> {
  const tensors = new Map<string, SafeTensor>();
  for (const [name, t] of state.tensors) tensors.set(name, { type: 'float32', dims: t.dims, data: t.data });
  const meta = {
    fingerprint,
    step: state.step,
    epoch_losses: state.epochLosses,
    partial: state.partial,
    stopped_early: state.stoppedEarly,
  };
  try {
    await writeSafetensors(path, tensors, { [KEY]: JSON.stringify(meta) });
  } catch (err) {
    throw new VidpriorError(
      'E_IO',
      `cannot write the checkpoint ${path}: ${(err as Error).message}`,
      { file: path },
      { cause: err },
    );
  }
}

/** The checkpoint at `path`, or null when there is none. One of other settings or frames is an error. */
export async function loadDeflickerCheckpoint(path: string, fingerprint: string): Promise<DeflickerCheckpoint | null> {
  if (!existsSync(path)) return null;
  const notOurs = (why: string) =>
    new VidpriorError('E_BAD_INPUT', `${path} is not a vidprior deflicker checkpoint (${why})`, { file: path });
  let file: Awaited<ReturnType<typeof readSafetensors>>;
  try {
    file = await readSafetensors(path);
  } catch (err) {
    throw notOurs((err as Error).message);
  }
  let meta: {
    fingerprint?: string;
    step?: number;
    epoch_losses?: number[];
    partial?: { sum: number; count: number };
    stopped_early?: boolean;
  };
  try {
    meta = JSON.parse(file.metadata[KEY] ?? '') as typeof meta;
  } catch {
    throw notOurs('no deflicker metadata');
  }
  if (meta.fingerprint !== fingerprint) {
    throw new VidpriorError(
      'E_BAD_INPUT',
      `checkpoint ${path} was made with other frames or settings (network, loss, epochs, lr, batch, size or seed differ): delete it or drop --resume`,
      { file: path },
    );
  }
  const tensors = new Map<string, { dims: number[]; data: Float32Array }>();
  for (const [name, t] of file.tensors) {
    if (t.type !== 'float32') throw notOurs(`tensor ${name} is ${t.type}`);
    tensors.set(name, { dims: t.dims, data: Float32Array.from(t.data as Float32Array) });
  }
  return {
    tensors,
    step: meta.step ?? 0,
    epochLosses: meta.epoch_losses ?? [],
    partial: meta.partial ?? { sum: 0, count: 0 },
    stoppedEarly: meta.stopped_early ?? false,
  };
}
