/**
 * Frames whose size is not a multiple of what the model needs (VAE factor × UNet down-sampling, e.g. 8 × 8 = 64
 * for SD 1.x) are brought to a multiple and back:
 *   - 'resize' (default): scale to the nearest multiple (or, with rounding 'down', the multiple below, as
 *     diffusers' VaeImageProcessor does; at least one multiple) on each axis, and scale the result back to the
 *     original size when writing (Pillow's Lanczos both ways, at the I/O boundary: readFrame/writeFramePng);
 *   - 'pad': pad on all sides (split evenly, the extra pixel right/bottom) by reflection or edge replication,
 *     and crop the result back.
 * A working size (`workSize`, the short side the model works at) scales the frame first, keeping its aspect:
 * 'resize' scales straight to the nearest multiples, 'pad' scales to the short side and pads the rest.
 * Planning is pure; padding and cropping work on [3, H, W] float32 tensors.
 */
import { check, VidpriorError } from '../errors.js';
import { float32, type Tensor } from '../tensor.js';
import type { Size } from './frames.js';

export type FitMode = 'resize' | 'pad';
export type PadMode = 'reflect' | 'edge';

export interface FitPlan {
  mode: FitMode;
  padMode: PadMode;
  multiple: number;
  /** The frame's own size (what the output gets back). */
  original: Size;
  /** The frame after scaling, before padding ('resize': = working; 'pad': the size padded to working). */
  scaled: Size;
  /** The size the model sees. */
  working: Size;
  /** Pixels added on each side ('pad' mode; zeros for 'resize'). */
  pad: { left: number; top: number; right: number; bottom: number };
}

/** How a width × height frame reaches a multiple of `multiple`, and back. */
export function planFit(
  width: number,
  height: number,
  multiple: number,
  mode: FitMode = 'resize',
  padMode: PadMode = 'reflect',
  rounding: 'nearest' | 'down' = 'nearest',
): FitPlan {
  check(Number.isInteger(width) && width > 0, 'width', width, 'a positive integer');
  check(Number.isInteger(height) && height > 0, 'height', height, 'a positive integer');
  check(Number.isInteger(multiple) && multiple > 0, 'multiple', multiple, 'a positive integer');
  check(mode === 'resize' || mode === 'pad', 'fit', mode, "'resize' or 'pad'");
  check(padMode === 'reflect' || padMode === 'edge', 'pad mode', padMode, "'reflect' or 'edge'");
  const original = { width, height };
  if (mode === 'resize') {
    const round = rounding === 'down' ? Math.floor : Math.round;
    const near = (v: number) => Math.max(multiple, round(v / multiple) * multiple);
    const working = { width: near(width), height: near(height) };
    return {
      mode,
      padMode,
      multiple,
      original,
      scaled: working,
      working,
      pad: { left: 0, top: 0, right: 0, bottom: 0 },
    };
  }
  const up = (v: number) => Math.ceil(v / multiple) * multiple;
  const dx = up(width) - width;
  const dy = up(height) - height;
  const pad = {
    left: Math.floor(dx / 2),
    right: dx - Math.floor(dx / 2),
    top: Math.floor(dy / 2),
    bottom: dy - Math.floor(dy / 2),
  };
  return {
    mode,
    padMode,
    multiple,
    original,
    scaled: original,
    working: { width: up(width), height: up(height) },
    pad,
  };
}

export interface WorkOptions {
  /** Sides of the working size are multiples of this (the model's: VAE factor × 8). */
  multiple: number;
  /**
   * The short side the model works at, aspect kept: scales down or up. 0 or absent: the frame's own size (only
   * brought to a multiple).
   */
  workSize?: number;
  fit?: FitMode;
  padMode?: PadMode;
  rounding?: 'nearest' | 'down';
}

/**
 * The working size by default: the model's native size on the short side (512 for SD 1.x), never larger than the
 * frame itself (a small frame is not blown up); 0 when the frame is no larger (work at its own size).
 */
export function defaultWorkSize(width: number, height: number, nativeSize: number): number {
  return Math.min(width, height) > nativeSize ? nativeSize : 0;
}

/**
 * How a width × height frame reaches the model: scaled so that its short side is `workSize` (keeping the aspect),
 * then brought to a multiple of `multiple` by `fit` (see planFit); and back to width × height for the output.
 */
export function planWork(width: number, height: number, o: WorkOptions): FitPlan {
  const workSize = o.workSize ?? 0;
  check(Number.isInteger(workSize) && workSize >= 0, 'work size', workSize, 'a whole number ≥ 0');
  const plan = planFit(width, height, o.multiple, o.fit, o.padMode, o.rounding);
  if (!workSize || workSize === Math.min(width, height)) return plan;
  const s = workSize / Math.min(width, height);
  if (plan.mode === 'resize') {
    // Straight from the original to the nearest multiples of the scaled size (one resampling each way).
    const round = o.rounding === 'down' ? Math.floor : Math.round;
    const near = (v: number) => Math.max(plan.multiple, round((v * s) / plan.multiple) * plan.multiple);
    const working = { width: near(width), height: near(height) };
    return { ...plan, scaled: working, working };
  }
  const scaled = { width: Math.max(1, Math.round(width * s)), height: Math.max(1, Math.round(height * s)) };
  const padded = planFit(scaled.width, scaled.height, plan.multiple, 'pad', plan.padMode);
  return { ...padded, original: plan.original, scaled };
}

/** True when the plan changes nothing (the frame already fits). */
export function fitIsIdentity(plan: FitPlan): boolean {
  return plan.working.width === plan.original.width && plan.working.height === plan.original.height;
}

/** True when the plan scales the frame (resize, or a working size): decoding resamples, encoding resamples back. */
export function fitScales(plan: FitPlan): boolean {
  return plan.scaled.width !== plan.original.width || plan.scaled.height !== plan.original.height;
}

/** True when the plan pads the scaled frame (and the result is cropped back). */
export function fitPads(plan: FitPlan): boolean {
  return plan.scaled.width !== plan.working.width || plan.scaled.height !== plan.working.height;
}

/** numpy's 'reflect' index (mirror without repeating the edge), any distance outside [0, n). */
export function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let k = ((i % period) + period) % period;
  if (k >= n) k = period - k;
  return k;
}

function dimsOf(image: Tensor<'float32'>): [number, number, number] {
  const d = image.dims;
  if (d.length !== 3) throw new VidpriorError('E_SHAPE', `expected a [C, H, W] frame, got [${d.join(', ')}]`);
  return [d[0]!, d[1]!, d[2]!];
}

/** Pads a [C, H, W] frame from plan.scaled (the original size unless scaled) to plan.working ('pad' plans). */
export function padFrame(image: Tensor<'float32'>, plan: FitPlan): Tensor<'float32'> {
  const [c, h, w] = dimsOf(image);
  if (h !== plan.scaled.height || w !== plan.scaled.width) {
    throw new VidpriorError(
      'E_SHAPE',
      `frame is ${w}×${h} but the plan is for ${plan.scaled.width}×${plan.scaled.height}`,
    );
  }
  const { width: W, height: H } = plan.working;
  const out = new Float32Array(c * H * W);
  const index = plan.padMode === 'reflect' ? reflectIndex : (i: number, n: number) => Math.min(Math.max(i, 0), n - 1);
  const cols = Array.from({ length: W }, (_, x) => index(x - plan.pad.left, w));
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < H; y++) {
      const src = ch * h * w + index(y - plan.pad.top, h) * w;
      const dst = ch * H * W + y * W;
      for (let x = 0; x < W; x++) out[dst + x] = image.data[src + cols[x]!]!;
    }
  }
  return float32([c, H, W], out);
}

/** Crops a [C, H, W] frame of plan.working back to plan.scaled ('pad' plans). */
export function cropFrame(image: Tensor<'float32'>, plan: FitPlan): Tensor<'float32'> {
  const [c, H, W] = dimsOf(image);
  if (H !== plan.working.height || W !== plan.working.width) {
    throw new VidpriorError(
      'E_SHAPE',
      `frame is ${W}×${H} but the plan works at ${plan.working.width}×${plan.working.height}`,
    );
  }
  const { width: w, height: h } = plan.scaled;
  const out = new Float32Array(c * h * w);
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < h; y++) {
      const src = ch * H * W + (y + plan.pad.top) * W + plan.pad.left;
      out.set(image.data.subarray(src, src + w), ch * h * w + y * w);
    }
  }
  return float32([c, h, w], out);
}
