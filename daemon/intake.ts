/**
 * Turns a job request — a websocket `submit` or a watched folder's job.json — into a job the queue can
 * store: parameters checked per kind, frames read (bytes, or paths checked against the allowed folders) and
 * checked to be images of one size, edits and noise checked, output names planned by the executor.
 * Everything is checked before anything is written, so a refused request leaves nothing behind.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { VidpriorError } from '../src/errors.js';
import { checkPixels, readImageHeader, type PixelLimits } from '../src/io/image-header.js';
import { readRegularFile } from '../src/io/pinned-dir.js';
import type { EditInput, FrameInput, NoiseInput } from '../protocol/messages.js';
import { parseParams, type JobKind, type StyleLoraParam } from '../protocol/params.js';
import type { JobExecutor } from './jobs/executor.js';
import { probeImage } from './jobs/images.js';
import type { NewJob } from './jobs/store.js';
import type { JobSpec } from './jobs/types.js';
import { admitJob, jobPlan, type WorkModel } from './jobs/frames.js';
import type { PathPolicy } from './paths.js';

export interface JobRequest {
  kind: JobKind;
  params: unknown;
  frames: FrameInput[];
  edits?: EditInput[];
  noise?: NoiseInput;
  name?: string;
  output_dir?: string;
}

export interface IntakeOptions {
  maxFrameBytes: number;
  maxFrames: number;
  /** Where `path` fields may point; null when this client may not send paths at all (not on loopback). */
  paths: PathPolicy | null;
  /** Where `output_dir` may point; null or absent when nowhere. */
  outputPaths?: PathPolicy | null;
  /** Finished chunked uploads that `upload` fields may name; null or absent when none. */
  uploads?: { completedFile(upload: string, field: string): string } | null;
  origin: JobSpec['origin'];
  /** Pixel caps, checked from each image's header before it is decoded. */
  pixels: PixelLimits;
  /** The size the model will work on for a frame of this size (default: from `memory.work`, else the frame's own). */
  workingSize?: (size: { width: number; height: number }) => { width: number; height: number };
  /**
   * The model's working-size rule and the bytes a job may use beyond the model: a stylize, edit or training job
   * whose frames cannot fit at their working size is refused here (E_TOO_LARGE), before anything is stored.
   */
  memory?: { work: WorkModel; limit: number };
}

/** Kinds that run the SD pipeline at a working size (deflicker works at the frames' own size). */
const WORKING_KINDS: readonly JobKind[] = ['stylize', 'edit-keyframe', 'finetune', 'run'];

/** The frame's header against the pixel caps: a decompression bomb stops here, before sharp or the model. */
function checkHeader(bytes: Uint8Array, field: string, opts: IntakeOptions): void {
  const header = readImageHeader(bytes, field);
  checkPixels(header, field, opts.pixels, opts.workingSize?.(header));
}

/** Output and input names are file names in the job folder: no separators, no dot-names, no control chars. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what names may not hold
const SAFE_NAME = /^(?!\.)[^/\\\x00-\x1f]{1,200}$/;

export async function intake(executor: JobExecutor, req: JobRequest, opts: IntakeOptions): Promise<NewJob> {
  // 1. Parameters of the kind (defaults filled in); style LoRA paths checked and resolved like frame paths.
  const params = parseParams(req.kind, req.params) as Record<string, unknown>;
  for (const [i, lora] of ((params.loras ?? []) as StyleLoraParam[]).entries()) {
    if (lora.path === undefined) continue;
    const field = `params.loras[${i}].path`;
    lora.path = checkPath(lora.path, field, opts.paths);
    const st = await stat(lora.path).catch(() => null);
    if (!st?.isFile())
      throw new VidpriorError('E_NOT_FOUND', `${field} ${JSON.stringify(lora.path)} is not a file`, { field });
  }
  // The working size of each frame size (for the pixel caps and the memory check).
  const work = opts.memory && WORKING_KINDS.includes(req.kind) ? opts.memory.work : null;
  const workSize = params.work_size as number | undefined;
  if (work && !opts.workingSize)
    opts = { ...opts, workingSize: (z) => jobPlan(work, z.width, z.height, workSize).working };
  if (req.frames.length > opts.maxFrames) {
    throw new VidpriorError('E_TOO_LARGE', `${req.frames.length} frames is more than the limit of ${opts.maxFrames}`, {
      field: 'frames',
      limit: opts.maxFrames,
    });
  }

  // 2. Frames: bytes or an allowed path; images of one size; unique, safe names.
  const inputs: NewJob['inputs'] = [];
  let size: { width: number; height: number } | null = null;
  const names = new Set<string>();
  for (const [i, frame] of req.frames.entries()) {
    const field = `frames[${i}]`;
    const { bytes, path } = await frameBytes(frame, field, opts);
    checkHeader(bytes, field, opts);
    const info = await probeImage(bytes, field);
    if (size && (info.width !== size.width || info.height !== size.height)) {
      throw new VidpriorError(
        'E_BAD_INPUT',
        `${field} is ${info.width}×${info.height} but frames[0] is ${size.width}×${size.height}: all frames of a job must have one size`,
        { field },
      );
    }
    if (!size && work) {
      // The memory the job will need at its working size: known from the first frame, checked before the rest.
      // Guidance doubles the UNet's batch (finetune has none: its training step has its own memory check).
      const run = { batch: (params.batch as number) ?? 1, guided: ((params.guidance as number) ?? 0) > 1 };
      admitJob(jobPlan(work, info.width, info.height, workSize), run, work, opts.memory!.limit);
    }
    size ??= { width: info.width, height: info.height };
    const name = frame.name ?? (frame.path ? basename(frame.path) : `frame-${String(i).padStart(5, '0')}.png`);
    if (!SAFE_NAME.test(name))
      throw new VidpriorError('E_BAD_REQUEST', `${field}.name ${JSON.stringify(name)} is not a plain file name`, {
        field: `${field}.name`,
      });
    if (names.has(name))
      throw new VidpriorError('E_BAD_REQUEST', `${field}.name ${JSON.stringify(name)} is used by an earlier frame`, {
        field: `${field}.name`,
      });
    names.add(name);
    // A file is copied into the job when it is stored, not held here: a long clip need not fit in memory.
    inputs.push({ name, data: path ? { path } : { bytes }, ext: info.format === 'png' ? 'png' : 'jpg' });
  }
  if (!size) throw new VidpriorError('E_BAD_REQUEST', 'a job needs at least one frame', { field: 'frames' });

  // 3. Edited keyframes: of an existing frame, the same size.
  const edits: NewJob['edits'] = [];
  const editKinds = ['finetune', 'run', 'deflicker', 'farm'];
  if (req.edits?.length && !editKinds.includes(req.kind)) {
    throw new VidpriorError('E_BAD_REQUEST', `edits are for finetune, run, deflicker and farm jobs, not ${req.kind}`, {
      field: 'edits',
    });
  }
  // Keyframe edits are a handful; deflicker's edits are the processed video, one per frame.
  const maxEdits = req.kind === 'deflicker' ? opts.maxFrames : 64;
  if ((req.edits?.length ?? 0) > maxEdits) {
    throw new VidpriorError('E_TOO_LARGE', `${req.edits!.length} edits is more than the limit of ${maxEdits}`, {
      field: 'edits',
      limit: maxEdits,
    });
  }
  for (const [i, edit] of (req.edits ?? []).entries()) {
    const field = `edits[${i}]`;
    if (edit.frame >= inputs.length)
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `${field}.frame is ${edit.frame} but the job has ${inputs.length} frames`,
        { field: `${field}.frame` },
      );
    const { bytes, path } = await frameBytes(edit, field, opts);
    checkHeader(bytes, field, opts);
    const info = await probeImage(bytes, field);
    if (info.width !== size.width || info.height !== size.height) {
      throw new VidpriorError(
        'E_BAD_INPUT',
        `${field} is ${info.width}×${info.height} but the frames are ${size.width}×${size.height}`,
        { field },
      );
    }
    edits.push({ frame: edit.frame, data: path ? { path } : { bytes }, ext: info.format === 'png' ? 'png' : 'jpg' });
  }

  // 4. Explicit noise: float32 data matching its dims (its shape against the model is checked when it runs).
  let noise: NewJob['noise'];
  if (req.noise) {
    if (req.kind !== 'stylize' && req.kind !== 'run') {
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `noise is for stylize and run jobs; ${req.kind} candidates differ by seed`,
        { field: 'noise' },
      );
    }
    const count = req.noise.dims.reduce((a, b) => a * b, 1);
    if (req.noise.data.length !== count * 4) {
      throw new VidpriorError(
        'E_BAD_INPUT',
        `noise.data has ${req.noise.data.length} bytes but dims [${req.noise.dims.join(', ')}] need ${count * 4} (float32)`,
        { field: 'noise.data' },
      );
    }
    if (req.noise.data.length > opts.maxFrameBytes)
      throw tooLarge('noise.data', req.noise.data.length, opts.maxFrameBytes);
    noise = { dims: req.noise.dims, bytes: req.noise.data };
  }

  // 5. Output folder (local clients only), and the output names the executor will write.
  let outputDir: string | undefined;
  if (req.output_dir !== undefined) outputDir = checkPath(req.output_dir, 'output_dir', opts.outputPaths ?? null);
  const outputs = executor.plan({ params, inputNames: inputs.map((f) => f.name), edits });
  for (const n of outputs)
    if (!SAFE_NAME.test(n))
      throw new VidpriorError('E_INTERNAL', `planned output name ${JSON.stringify(n)} is not a file name`);

  return {
    kind: req.kind,
    params,
    ...(req.name ? { name: req.name } : {}),
    inputs,
    edits,
    ...(noise ? { noise } : {}),
    width: size.width,
    height: size.height,
    outputs,
    ...(outputDir ? { output_dir: outputDir } : {}),
    origin: opts.origin,
  };
}

function tooLarge(field: string, bytes: number, limit: number): VidpriorError {
  return new VidpriorError('E_TOO_LARGE', `${field} is ${bytes} bytes, more than the limit of ${limit}`, {
    field,
    bytes,
    limit,
  });
}

function checkPath(p: string, field: string, policy: PathPolicy | null): string {
  if (!policy?.allowsAny) {
    throw new VidpriorError(
      'E_FORBIDDEN_PATH',
      `${field}: this daemon takes no paths from this client (only from one on the same machine, inside --allow-dir folders)${field === 'output_dir' ? '' : '; send the bytes instead'}`,
      { field },
    );
  }
  return policy.check(p, field);
}

/** The frame's bytes, and the resolved path it was read from (for path frames). */
async function frameBytes(
  frame: { png?: Uint8Array; path?: string; upload?: string },
  field: string,
  opts: IntakeOptions,
): Promise<{ bytes: Uint8Array; path?: string }> {
  const given = [frame.png, frame.path, frame.upload].filter((v) => v !== undefined).length;
  if (given !== 1) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `${field} must have exactly one of "png" (bytes), "path" and "upload" (an upload id)`,
      { field },
    );
  }
  if (frame.upload !== undefined) {
    if (!opts.uploads)
      throw new VidpriorError('E_BAD_REQUEST', `${field}.upload: uploads are not taken here; send the bytes`, {
        field: `${field}.upload`,
      });
    const file = opts.uploads.completedFile(frame.upload, `${field}.upload`);
    // The daemon's own file: copied into the job when it is stored, like a path frame.
    return { bytes: await readRegularFile(file, `${field}.upload`, opts.maxFrameBytes), path: file };
  }
  if (frame.png) {
    if (frame.png.length > opts.maxFrameBytes) throw tooLarge(`${field}.png`, frame.png.length, opts.maxFrameBytes);
    return { bytes: frame.png };
  }
  const real = checkPath(frame.path!, `${field}.path`, opts.paths);
  // A regular file only (a FIFO would block the reader), and not a link swapped in since the check.
  const bytes = await readRegularFile(real, `${field}.path ${JSON.stringify(frame.path)}`, opts.maxFrameBytes);
  return { bytes, path: real };
}
