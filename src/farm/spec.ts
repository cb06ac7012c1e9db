/**
 * A farm job as written to its shared folder: `farm.json` says what to run (the input frames copied there, the
 * vidprior command lines of the stages, the scheduler's options) so that every task on every node reads the
 * same thing, and a later `status`/`resume`/`assemble` needs nothing but the folder.
 *
 * Layout of the shared folder:
 *   farm.json          this spec            state.json   the submissions (job ids), see state.ts
 *   input/             the clip's frames    edits/       the edited keyframes (copies)
 *   frames/            stylized frames      adapter.safetensors  (unless an adapter was given)
 *   scripts/           the sbatch scripts   logs/        one log per task
 *   summary.json       written by the assembly when everything is done
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { VidpriorError } from '../errors.js';
import { writeJsonAtomic } from '../io/atomic-write.js';

export const FARM_SPEC_VERSION = 1;

/** Scheduler options every stage is submitted with (the GPU gres only for the fine-tune and the stylize). */
export interface SchedulerOptions {
  partition?: string;
  /** e.g. gpu:1 */
  gres?: string;
  account?: string;
  /** Slurm time limit, e.g. 02:00:00 */
  time?: string;
  cpusPerTask?: number;
  /** Further sbatch arguments, passed as they are. */
  extra?: string[];
}

export interface FarmSpec {
  version: number;
  /** A short name for job names and logs (the output's base name). */
  name: string;
  createdAt: string;
  /** The shared folder, absolute. */
  shared: string;
  input: {
    /** What the user gave (a video or a folder). */
    original: string;
    kind: 'video' | 'folder';
    /** The input frames' file names in order (in <shared>/input). */
    names: string[];
    /** For a video: its exact frame rate, and the file whose sound the output keeps. */
    fpsRational?: string;
    audioFrom?: string;
  };
  output: { path: string; kind: 'video' | 'folder' };
  /** The adapter the stylize uses: made by the fine-tune stage, or given (then no fine-tune stage). */
  adapter: { path: string; given: boolean };
  /** Frames per stylize task. */
  chunk: number;
  /** The program every task runs: [node, .../dist/cli/main.js]. */
  command: string[];
  /** Arguments of `vidprior finetune` (without --output) and `vidprior stylize` (without the range). */
  finetuneArgs: string[];
  stylizeArgs: string[];
  scheduler: SchedulerOptions;
}

export interface FarmPaths {
  spec: string;
  state: string;
  input: string;
  edits: string;
  frames: string;
  adapter: string;
  scripts: string;
  logs: string;
  summary: string;
}

export function farmPaths(shared: string): FarmPaths {
  const root = resolve(shared);
  return {
    spec: join(root, 'farm.json'),
    state: join(root, 'state.json'),
    input: join(root, 'input'),
    edits: join(root, 'edits'),
    frames: join(root, 'frames'),
    adapter: join(root, 'adapter.safetensors'),
    scripts: join(root, 'scripts'),
    logs: join(root, 'logs'),
    summary: join(root, 'summary.json'),
  };
}

/** Number of stylize tasks. */
export function chunkCount(spec: FarmSpec): number {
  return Math.ceil(spec.input.names.length / spec.chunk);
}

/** The frames of chunk `index`, 0-based and inclusive. */
export function chunkRange(spec: FarmSpec, index: number): [number, number] {
  const first = index * spec.chunk;
  return [first, Math.min(first + spec.chunk, spec.input.names.length) - 1];
}

export async function writeSpec(spec: FarmSpec): Promise<void> {
  await writeJsonAtomic(farmPaths(spec.shared).spec, spec);
}

/** Reads the spec of a farm folder (or of its farm.json). */
export async function readSpec(folder: string): Promise<FarmSpec> {
  const path = folder.endsWith('farm.json') ? folder : farmPaths(folder).spec;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new VidpriorError(
      'E_NOT_FOUND',
      `${folder} is not a farm job folder (no farm.json): give the folder that \`farm slurm submit\` printed, or a job id`,
      { job: folder },
      { cause: err },
    );
  }
  let spec: FarmSpec;
  try {
    spec = JSON.parse(text) as FarmSpec;
  } catch (err) {
    throw new VidpriorError('E_BAD_INPUT', `${path} is not valid JSON: ${(err as Error).message}`, { path });
  }
  if (spec.version !== FARM_SPEC_VERSION || !Array.isArray(spec.input?.names) || !(spec.chunk >= 1)) {
    throw new VidpriorError('E_BAD_INPUT', `${path} is not a farm spec of version ${FARM_SPEC_VERSION}`, { path });
  }
  return spec;
}
