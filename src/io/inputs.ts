/**
 * One way in and one way out for frames, whatever the user gave:
 *   openFrameSource(path): a folder of PNG/JPEG frames, one image file, or a video file (decoded to PNGs in a
 *     temporary folder that cleanup() removes);
 *   openFrameSink(path, like): PNGs named like the source frames in a folder, or a video file (PNGs in a
 *     temporary folder, encoded at finish() with the source's frame rate).
 * With `multiple` set, the source reads frames at a size the model accepts (resize or pad, see size.ts) and a
 * sink made `like` it restores the original size when writing.
 */
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { VidpriorError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import {
  imageSize,
  isImageFile,
  listFrameFiles,
  readFrame,
  writeFramePng,
  type FrameFile,
  type ReadFrameOptions,
  type Size,
} from './frames.js';
import { cropFrame, fitIsIdentity, padFrame, planFit, type FitMode, type FitPlan, type PadMode } from './size.js';
import {
  DECODED_FRAME_PATTERN,
  decodeVideo,
  decodedFrameName,
  encodeVideo,
  encoderArgs,
  isVideoFile,
  probeVideo,
} from './video.js';

export interface FrameSource {
  kind: 'folder' | 'image' | 'video';
  /** What the user gave. */
  path: string;
  frames: FrameFile[];
  /** Size of the frames on disk (the first frame's; every frame must match). */
  width: number;
  height: number;
  /** Frames per second for videos (and its exact rational), undefined for images. */
  fps?: number;
  fpsRational?: string;
  /** How frames are brought to the model's size; null when no multiple was asked for. */
  plan: FitPlan | null;
  /** Frame i as [3, H, W] float32 in [-1, 1], at plan.working size when a plan is set. */
  read(i: number): Promise<Tensor<'float32'>>;
  /** Removes temporary files (decoded video frames). Safe to call twice. */
  cleanup(): Promise<void>;
}

export interface FrameSourceOptions extends ReadFrameOptions {
  /** Bring frames to a multiple of this (e.g. VAE factor × 8). */
  multiple?: number;
  fit?: FitMode;
  padMode?: PadMode;
  /** 'resize' target: the nearest multiple (default) or the one below (diffusers' choice). */
  rounding?: 'nearest' | 'down';
  /** Reports decoding progress of a video (frames decoded so far). */
  onDecodeProgress?: (framesDone: number, total: number) => void;
}

async function kindOf(path: string): Promise<'folder' | 'image' | 'video'> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (err) {
    throw new VidpriorError('E_BAD_INPUT', `input not found: ${path}`, { path }, { cause: err });
  }
  if (info.isDirectory()) return 'folder';
  if (isImageFile(path)) return 'image';
  if (isVideoFile(path)) return 'video';
  // Unknown extension: let ffprobe decide (it reads many more containers than the list above).
  return 'video';
}

export async function openFrameSource(path: string, options: FrameSourceOptions = {}): Promise<FrameSource> {
  const kind = await kindOf(path);
  let frames: FrameFile[];
  let fps: number | undefined;
  let fpsRational: string | undefined;
  let tempDir: string | null = null;
  if (kind === 'folder') {
    frames = await listFrameFiles(path);
  } else if (kind === 'image') {
    frames = [{ name: basename(path), path }];
  } else {
    const info = await probeVideo(path);
    fps = info.fps;
    fpsRational = info.fpsRational;
    tempDir = await mkdtemp(join(tmpdir(), 'vidprior-decode-'));
    try {
      frames = await decodeVideo(path, tempDir, (n) => options.onDecodeProgress?.(n, info.frameCount));
    } catch (err) {
      await rm(tempDir, { recursive: true, force: true });
      throw err;
    }
  }
  const { width, height } = await imageSize(frames[0]!.path);
  const plan = options.multiple
    ? planFit(width, height, options.multiple, options.fit ?? 'resize', options.padMode ?? 'reflect', options.rounding)
    : null;
  const readOptions: ReadFrameOptions = { alpha: options.alpha, background: options.background };
  if (plan && plan.mode === 'resize' && !fitIsIdentity(plan)) readOptions.resize = plan.working;
  return {
    kind,
    path,
    frames,
    width,
    height,
    fps,
    fpsRational,
    plan,
    async read(i) {
      const frame = frames[i];
      if (!frame)
        throw new VidpriorError('E_BAD_REQUEST', `frame index ${i} is outside 0..${frames.length - 1}`, { index: i });
      if (i > 0) {
        const size = await imageSize(frame.path);
        if (size.width !== width || size.height !== height) {
          throw new VidpriorError(
            'E_BAD_INPUT',
            `${frame.path} is ${size.width}×${size.height} but the first frame is ${width}×${height}: all frames must have one size`,
            { path: frame.path },
          );
        }
      }
      const image = await readFrame(frame.path, readOptions);
      return plan && plan.mode === 'pad' && !fitIsIdentity(plan) ? padFrame(image, plan) : image;
    },
    async cleanup() {
      if (tempDir) await rm(tempDir, { recursive: true, force: true });
      tempDir = null;
    },
  };
}

/**
 * How to bring a frame made at the working size back to the source's own size: crop a padded frame, or
 * the size to resize to when writing (writeFramePng's `resize`).
 */
export function restoreFrame(
  image: Tensor<'float32'>,
  plan: FitPlan | null,
): { image: Tensor<'float32'>; resize?: Size } {
  if (!plan || fitIsIdentity(plan)) return { image };
  return plan.mode === 'pad' ? { image: cropFrame(image, plan) } : { image, resize: plan.original };
}

export interface FrameSink {
  kind: 'folder' | 'video';
  /** The folder or video file written. */
  path: string;
  /** Writes output frame i (a [3, H, W] float32 frame at the source's working size). Returns the PNG path. */
  write(i: number, image: Tensor<'float32'>): Promise<string>;
  /** Encodes the video (video sinks) and removes temporary files; returns the output path. */
  finish(onProgress?: (framesDone: number) => void): Promise<string>;
  /** Drops temporary files without encoding (frames already written to a folder stay). */
  abort(): Promise<void>;
}

/** Media extensions that look like a file but that vidprior does not write (rather than making a folder so named). */
const UNWRITABLE_MEDIA = [
  '.gif',
  '.bmp',
  '.tif',
  '.tiff',
  '.webp',
  '.jxl',
  '.avif',
  '.heic',
  '.mpg',
  '.mpeg',
  '.ts',
  '.flv',
  '.wmv',
  '.ogv',
  '.3gp',
];

/** The output PNG name for an input frame: same stem, .png. */
export function outputFrameName(inputName: string): string {
  return `${basename(inputName, extname(inputName))}.png`;
}

export interface FrameSinkOptions {
  /** Frame rate of a video output (default: the source video's, else 24). */
  fps?: number | string;
  crf?: number;
  /** Copy the source video's sound into a video output (default true). */
  keepAudio?: boolean;
}

export async function openFrameSink(
  outPath: string,
  like: FrameSource,
  options: FrameSinkOptions = {},
): Promise<FrameSink> {
  const ext = extname(outPath).toLowerCase();
  if (UNWRITABLE_MEDIA.includes(ext)) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `cannot write ${outPath}: outputs are a folder of PNGs, a .png (one frame) or a .mp4/.mov/.mkv/.webm/.avi/.m4v video`,
      { output: outPath },
    );
  }
  const toVideo = isVideoFile(outPath);
  const single = isImageFile(outPath);
  if (single && like.frames.length > 1) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `output ${outPath} is an image file but the input has ${like.frames.length} frames: give a folder or a video file`,
      { output: outPath },
    );
  }
  if (single && extname(outPath).toLowerCase() !== '.png') {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `output frames are PNG: name the output ${basename(outPath, extname(outPath))}.png, not ${basename(outPath)}`,
      { output: outPath },
    );
  }
  if (resolve(outPath) === resolve(like.path) && like.kind !== 'image') {
    throw new VidpriorError('E_BAD_REQUEST', `output ${outPath} is the input itself: choose another folder or file`, {
      output: outPath,
    });
  }
  const restore = (image: Tensor<'float32'>): { image: Tensor<'float32'>; resize?: Size } =>
    restoreFrame(image, like.plan);
  if (toVideo) {
    encoderArgs(outPath, options.crf ?? 18); // reject an unsupported extension before any work
    await mkdir(dirname(resolve(outPath)), { recursive: true });
    let tempDir: string | null = await mkdtemp(join(tmpdir(), 'vidprior-encode-'));
    const written = new Set<number>();
    return {
      kind: 'video',
      path: outPath,
      async write(i, image) {
        if (!tempDir) throw new VidpriorError('E_INTERNAL', 'frame sink already finished');
        const file = join(tempDir, decodedFrameName(i));
        const r = restore(image);
        await writeFramePng(file, r.image, { resize: r.resize });
        written.add(i);
        return file;
      },
      async finish(onProgress) {
        if (!tempDir) return outPath;
        for (let i = 0; i < like.frames.length; i++) {
          if (!written.has(i))
            throw new VidpriorError('E_INTERNAL', `video output ${outPath}: frame ${i} was never written`);
        }
        await encodeVideo(tempDir, DECODED_FRAME_PATTERN, outPath, {
          fps: options.fps ?? like.fpsRational ?? 24,
          crf: options.crf,
          onProgress,
          audioFrom: like.kind === 'video' && options.keepAudio !== false ? like.path : undefined,
        });
        await rm(tempDir, { recursive: true, force: true });
        tempDir = null;
        return outPath;
      },
      async abort() {
        if (tempDir) await rm(tempDir, { recursive: true, force: true });
        tempDir = null;
      },
    };
  }
  const dir = single ? dirname(resolve(outPath)) : outPath;
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new VidpriorError(
      'E_IO',
      `cannot create the output folder ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { output: dir },
      { cause: err },
    );
  }
  return {
    kind: 'folder',
    path: outPath,
    async write(i, image) {
      const frame = like.frames[i];
      if (!frame)
        throw new VidpriorError('E_BAD_REQUEST', `frame index ${i} is outside 0..${like.frames.length - 1}`, {
          index: i,
        });
      const file = single ? outPath : join(dir, outputFrameName(frame.name));
      const r = restore(image);
      await writeFramePng(file, r.image, { resize: r.resize });
      return file;
    },
    async finish() {
      return outPath;
    },
    async abort() {
      /* finished frames are kept: no input loses finished work */
    },
  };
}
