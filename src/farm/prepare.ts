/**
 * A farm job's shared folder, made ready before anything is submitted:
 *   1. check the request (chunk, output kind, input, edits, adapter, an earlier job in the folder) and that
 *      sbatch can be run — a mistake is refused here, with nothing written and nothing submitted;
 *   2. copy the clip's frames (or decode the video) into <shared>/input, the edits into <shared>/edits;
 *   3. write farm.json and the batch scripts.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { VidpriorError } from '../errors.js';
import { isImageFile, listFrameFiles } from '../io/frames.js';
import { decodeVideo, isVideoFile, probeVideo } from '../io/video.js';
import { writeStageScripts } from './sbatch-script.js';
import type { Slurm } from './slurm.js';
import { FARM_SPEC_VERSION, type FarmSpec, type SchedulerOptions, farmPaths, writeSpec } from './spec.js';
import { readState } from './state.js';

export interface FarmRequest {
  input: string;
  output: string;
  /** Default: beside the output, <output>.farm */
  shared?: string;
  edits: { frame: number; path: string }[];
  /** A ready adapter: no fine-tune stage. */
  adapter?: string;
  chunk: number;
  /** [node, .../dist/cli/main.js] */
  command: string[];
  /** `vidprior finetune` arguments other than --input, --edit and --output. */
  finetuneArgs: string[];
  /** `vidprior stylize` arguments other than --input, --output and --adapter. */
  stylizeArgs: string[];
  scheduler: SchedulerOptions;
  /** Progress notes (decoding, copying). */
  onNote?: (text: string) => void;
}

/** The default shared folder: beside the output (clip_styled.mp4 → clip_styled.farm). */
export function defaultSharedFolder(output: string): string {
  const abs = resolve(output).replace(/[/\\]+$/, '');
  const ext = extname(abs);
  return `${ext ? abs.slice(0, -ext.length) : abs}.farm`;
}

const bad = (message: string, details: Record<string, unknown>): VidpriorError =>
  new VidpriorError('E_BAD_REQUEST', message, details);

async function checkRequest(req: FarmRequest, shared: string): Promise<'video' | 'folder'> {
  if (!(Number.isInteger(req.chunk) && req.chunk >= 1))
    throw bad(`--chunk must be a whole number ≥ 1, got ${req.chunk}`, { chunk: req.chunk });
  const out = extname(req.output).toLowerCase();
  if (out && !isVideoFile(req.output))
    throw bad(`--output must be a folder or a video file (.mp4, .mov, .mkv, .webm, .avi, .m4v), got ${req.output}`, {
      output: req.output,
    });
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(req.input);
  } catch {
    throw new VidpriorError('E_BAD_INPUT', `input not found: ${req.input}`, { input: req.input });
  }
  const kind = info.isDirectory() ? 'folder' : 'video';
  if (kind === 'video' && isImageFile(req.input))
    throw bad(`a farm job stylizes a clip: give a video or a folder of frames, not one image (${req.input})`, {
      input: req.input,
    });
  if (resolve(req.output) === resolve(req.input))
    throw bad(`--output is the input itself: ${req.output}`, { output: req.output });
  const seen = new Set<number>();
  for (const e of req.edits) {
    if (!Number.isInteger(e.frame) || e.frame < 0 || seen.has(e.frame))
      throw bad(`--edit frame ${e.frame} is not a frame index or is given twice`, { edit: e.frame });
    seen.add(e.frame);
    if (!existsSync(e.path))
      throw new VidpriorError('E_BAD_INPUT', `edited image ${e.path} (--edit ${e.frame}=…) does not exist`, {
        edit: e.path,
      });
  }
  if (req.adapter !== undefined && !existsSync(req.adapter))
    throw new VidpriorError('E_BAD_INPUT', `adapter ${req.adapter} does not exist`, { adapter: req.adapter });
  if (existsSync(farmPaths(shared).spec)) {
    const earlier = await readState({ shared } as FarmSpec);
    if (earlier.submissions.length > 0)
      throw bad(
        `${shared} already holds a submitted farm job: \`vidprior farm slurm resume ${shared}\` continues it, or give another --shared-dir`,
        { shared },
      );
  }
  return kind;
}

/** Checks, copies and writes everything a farm job needs; returns its spec (nothing is submitted). */
export async function prepareFarm(req: FarmRequest, slurm: Slurm): Promise<FarmSpec> {
  // 1. Refuse mistakes before anything is written or submitted.
  const shared = resolve(req.shared ?? defaultSharedFolder(req.output));
  const kind = await checkRequest(req, shared);
  await slurm.checkAvailable();
  const paths = farmPaths(shared);

  // 2. The clip's frames and the edits, into the shared folder.
  await rm(paths.input, { recursive: true, force: true });
  await mkdir(paths.input, { recursive: true });
  let names: string[];
  let fpsRational: string | undefined;
  if (kind === 'folder') {
    const frames = await listFrameFiles(req.input);
    req.onNote?.(`copying ${frames.length} frames to ${paths.input}`);
    for (const f of frames) await copyFile(f.path, join(paths.input, f.name));
    names = frames.map((f) => f.name);
  } else {
    fpsRational = (await probeVideo(req.input)).fpsRational;
    req.onNote?.(`decoding ${req.input} to ${paths.input}`);
    names = (await decodeVideo(req.input, paths.input)).map((f) => f.name);
  }
  for (const e of req.edits) {
    if (e.frame >= names.length)
      throw bad(`--edit frame ${e.frame} is outside the clip's frames 0..${names.length - 1}`, { edit: e.frame });
  }
  await mkdir(paths.edits, { recursive: true });
  const edits: string[] = [];
  for (const e of req.edits) {
    const copy = join(paths.edits, `${e.frame}-${basename(e.path)}`);
    await copyFile(e.path, copy);
    edits.push(`--edit=${e.frame}=${copy}`);
  }
  await mkdir(paths.frames, { recursive: true });

  // 3. The spec and the scripts.
  const adapter = req.adapter ? resolve(req.adapter) : paths.adapter;
  const spec: FarmSpec = {
    version: FARM_SPEC_VERSION,
    name: basename(shared, '.farm').replace(/[^A-Za-z0-9_.-]/g, '_') || 'job',
    createdAt: new Date().toISOString(),
    shared,
    input: {
      original: resolve(req.input),
      kind,
      names,
      fpsRational,
      audioFrom: kind === 'video' ? resolve(req.input) : undefined,
    },
    output: { path: resolve(req.output), kind: extname(req.output) ? 'video' : 'folder' },
    adapter: { path: adapter, given: req.adapter !== undefined },
    chunk: req.chunk,
    command: req.command,
    finetuneArgs: [`--input=${paths.input}`, ...edits, ...req.finetuneArgs],
    stylizeArgs: [`--input=${paths.input}`, `--output=${paths.frames}`, `--adapter=${adapter}`, ...req.stylizeArgs],
    scheduler: req.scheduler,
  };
  await mkdir(dirname(spec.output.path), { recursive: true });
  await writeSpec(spec);
  await writeStageScripts(spec);
  return spec;
}
