/**
 * What to submit, from what is already on disk: the fine-tune (unless its adapter exists or was given), the
 * stylize chunks that still miss frames (one job array, after the fine-tune), and the assembly (after the
 * array). A first submission and a resume are the same plan over different progress.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { outputFrameName } from '../io/inputs.js';
import { type FarmSpec, chunkCount, chunkRange, farmPaths } from './spec.js';

export type StageName = 'finetune' | 'stylize' | 'assemble';

export interface Stage {
  name: StageName;
  /** For the stylize stage: the chunks (array task ids) to run. */
  chunks?: number[];
}

/** What is done, read from the shared folder. */
export interface FarmProgress {
  adapterReady: boolean;
  framesDone: number;
  framesTotal: number;
  /** Chunks with at least one frame missing. */
  missingChunks: number[];
  assembled: boolean;
}

export function farmProgress(spec: FarmSpec): FarmProgress {
  const paths = farmPaths(spec.shared);
  const has = spec.input.names.map((name) => existsSync(join(paths.frames, outputFrameName(name))));
  const missingChunks: number[] = [];
  for (let c = 0; c < chunkCount(spec); c++) {
    const [first, last] = chunkRange(spec, c);
    if (has.slice(first, last + 1).some((h) => !h)) missingChunks.push(c);
  }
  return {
    adapterReady: existsSync(spec.adapter.path),
    framesDone: has.filter(Boolean).length,
    framesTotal: has.length,
    missingChunks,
    assembled: existsSync(paths.summary),
  };
}

/** The stages to submit, in order; each depends on the one before it (when there is one). */
export function planStages(progress: FarmProgress): Stage[] {
  if (progress.assembled && progress.missingChunks.length === 0) return [];
  const stages: Stage[] = [];
  if (!progress.adapterReady && progress.missingChunks.length > 0) stages.push({ name: 'finetune' });
  if (progress.missingChunks.length > 0) stages.push({ name: 'stylize', chunks: progress.missingChunks });
  stages.push({ name: 'assemble' });
  return stages;
}

/** Slurm's --array value for a list of task ids: 0-3,7,9-10. */
export function arraySpec(chunks: number[]): string {
  const sorted = [...new Set(chunks)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
