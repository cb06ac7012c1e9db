/**
 * Temporal consistency of one or more stylized versions of a video, measured against the original
 * (Lai et al. 2018's protocol): optical flow and occlusion come from the ORIGINAL frames, then every version
 * is judged with the same flow and mask, so the versions are compared on exactly the same pixels.
 * Frames stream through: only frames t and t+1 of each sequence are held at once.
 */
import { VidpriorError, check } from '../errors.js';
import { disFlow, disMethodName, DIS_DEFAULTS, type DisOptions } from './flow-dis.js';
import { resizeRgb, rgbToGray, type Flow, type Plane, type RgbImage } from './image.js';
import { detectOcclusion } from './occlusion.js';
import { mean, pairFlicker, pairWarpError } from './warp-error.js';

/** A readable run of RGB frames (planar, [0, 1]); src/io's frame sources are adapted to this. */
export interface FrameSequence {
  /** The file or folder the frames come from (named in messages and reports). */
  path: string;
  count: number;
  width: number;
  height: number;
  read(index: number): Promise<RgbImage>;
}

/** Something that computes dense flow from grayscale frame i0 to i1. */
export interface FlowEstimator {
  /** Reported with the numbers (which flow produced them matters when comparing to other tools). */
  name: string;
  /** Grayscale frames always; the RGB frames too, for estimators that want colour (ONNX flow networks). */
  flow(i0: Plane, i1: Plane, rgb0?: RgbImage, rgb1?: RgbImage): Flow | Promise<Flow>;
  /** Releases threads or sessions, if the estimator holds any. */
  close?(): Promise<void>;
}

export function disEstimator(options: Partial<DisOptions> = {}): FlowEstimator {
  const o = { ...DIS_DEFAULTS, ...options };
  return { name: disMethodName(o), flow: (a, b) => disFlow(a, b, o) };
}

/** The numbers of one sequence (the original, or one stylized version). */
export interface SeriesMetrics {
  label: string;
  path: string;
  /** Mean over pairs of the masked mean squared warping error (RGB in [0, 1]). */
  warpError: number;
  /** Mean over pairs of the mean absolute difference of consecutive frames. */
  flicker: number;
  /** Per pair t → t+1 (index t). */
  pairWarpError: number[];
  pairFlicker: number[];
  /** Set when the frames were resized to the original's size for the comparison. */
  resizedFrom?: { width: number; height: number };
}

export interface ConsistencyResult {
  flowMethod: string;
  frames: number;
  width: number;
  height: number;
  original: SeriesMetrics;
  stylized: SeriesMetrics[];
  /** Per pair: fraction of frame t left out of E_warp (occluded or on a motion boundary). */
  occludedFraction: number[];
  seconds: number;
}

export interface MeasureOptions {
  flow?: FlowEstimator;
  /** One label per stylized sequence (default: "stylized", or "stylized 1", "stylized 2", …). */
  labels?: string[];
  /** After each pair: pairs done and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Every frame once, in order, original and stylized (already resized): for thumbnails. */
  onFrame?: (index: number, original: RgbImage, stylized: RgbImage[]) => void;
  /** After each pair t → t+1: the warping error of every stylized version on it. */
  onPair?: (t: number, stylizedWarpErrors: number[]) => void;
  /** Messages a person should see (resizing, …). */
  onNote?: (message: string) => void;
  signal?: AbortSignal;
}

export async function measureConsistency(
  original: FrameSequence,
  stylized: FrameSequence[],
  options: MeasureOptions = {},
): Promise<ConsistencyResult> {
  const started = performance.now();
  const estimator = options.flow ?? disEstimator();
  // 1. Check inputs: at least two frames, the same count everywhere; sizes may differ (resized, with a note).
  check(stylized.length >= 1, 'stylized', stylized.length, 'at least one stylized sequence');
  const labels = options.labels ?? stylized.map((_, k) => (stylized.length === 1 ? 'stylized' : `stylized ${k + 1}`));
  check(labels.length === stylized.length, 'labels', labels, `${stylized.length} labels, one per stylized sequence`);
  if (original.count < 2) {
    throw new VidpriorError(
      'E_BAD_INPUT',
      `the original ${original.path} has ${original.count} frame(s); temporal consistency needs at least 2`,
      { path: original.path, count: original.count },
    );
  }
  for (const s of stylized) {
    if (s.count !== original.count) {
      throw new VidpriorError(
        'E_BAD_INPUT',
        `frame counts differ: the original ${original.path} has ${original.count} frames, the stylized ${s.path} has ${s.count}`,
        { original: original.path, originalCount: original.count, stylized: s.path, stylizedCount: s.count },
      );
    }
  }
  const { width, height } = original;
  const series = (label: string, path: string): SeriesMetrics => ({
    label,
    path,
    warpError: 0,
    flicker: 0,
    pairWarpError: [],
    pairFlicker: [],
  });
  const orig = series('original', original.path);
  const versions = stylized.map((s, k) => {
    const m = series(labels[k], s.path);
    if (s.width !== width || s.height !== height) {
      m.resizedFrom = { width: s.width, height: s.height };
      options.onNote?.(
        `${s.path}: frames are ${s.width}x${s.height}, resized to the original's ${width}x${height} before measuring`,
      );
    }
    return m;
  });

  const readOriginal = async (t: number): Promise<RgbImage> => {
    const f = await original.read(t);
    if (f.width !== width || f.height !== height) {
      throw new VidpriorError(
        'E_BAD_INPUT',
        `${original.path}: frame ${t} is ${f.width}x${f.height}, the first frame is ${width}x${height}`,
        { path: original.path, frame: t },
      );
    }
    return f;
  };
  const readStylized = async (k: number, t: number): Promise<RgbImage> =>
    resizeRgb(await stylized[k].read(t), width, height);

  // 2. Walk the pairs: flow both ways on the original, the mask, then every sequence's numbers.
  let prevOrig = await readOriginal(0);
  let prevGray = rgbToGray(prevOrig);
  let prevStyl = await Promise.all(stylized.map((_, k) => readStylized(k, 0)));
  options.onFrame?.(0, prevOrig, prevStyl);
  const occludedFraction: number[] = [];
  const pairs = original.count - 1;
  for (let t = 0; t < pairs; t++) {
    if (options.signal?.aborted) throw new VidpriorError('E_CANCELLED', 'metrics cancelled');
    const nextOrig = await readOriginal(t + 1);
    const nextGray = rgbToGray(nextOrig);
    const nextStyl = await Promise.all(stylized.map((_, k) => readStylized(k, t + 1)));
    options.onFrame?.(t + 1, nextOrig, nextStyl);
    // Both directions at once: a threaded estimator computes them in parallel.
    const [forward, backward] = await Promise.all([
      estimator.flow(prevGray, nextGray, prevOrig, nextOrig),
      estimator.flow(nextGray, prevGray, nextOrig, prevOrig),
    ]);
    const mask = detectOcclusion(forward, backward);
    occludedFraction.push(mask.fraction);
    orig.pairWarpError.push(pairWarpError(prevOrig, nextOrig, forward, mask));
    orig.pairFlicker.push(pairFlicker(prevOrig, nextOrig));
    versions.forEach((v, k) => {
      v.pairWarpError.push(pairWarpError(prevStyl[k], nextStyl[k], forward, mask));
      v.pairFlicker.push(pairFlicker(prevStyl[k], nextStyl[k]));
    });
    options.onPair?.(
      t,
      versions.map((v) => v.pairWarpError[t]),
    );
    prevOrig = nextOrig;
    prevGray = nextGray;
    prevStyl = nextStyl;
    options.onProgress?.(t + 1, pairs);
  }

  // 3. Every pair weighs the same in the video's figure (the reference averages per-pair errors).
  for (const s of [orig, ...versions]) {
    s.warpError = mean(s.pairWarpError);
    s.flicker = mean(s.pairFlicker);
  }
  return {
    flowMethod: estimator.name,
    frames: original.count,
    width,
    height,
    original: orig,
    stylized: versions,
    occludedFraction,
    seconds: (performance.now() - started) / 1000,
  };
}

/** A FrameSequence over frames already in memory (tests, benchmarks, callers that hold the frames). */
export function memorySequence(path: string, frames: RgbImage[]): FrameSequence {
  check(frames.length > 0, 'frames', frames.length, 'at least one frame');
  return {
    path,
    count: frames.length,
    width: frames[0].width,
    height: frames[0].height,
    read: async (i) => frames[i],
  };
}
