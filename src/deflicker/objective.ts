/**
 * The deflicker losses, as graph nodes (they are differentiated with the network by src/autodiff). Every
 * term is a mean absolute error in [0, 1] pixel units (frames travel in [-1, 1], so differences are halved).
 *
 * Without IRT: L = |y − p|₁ + λ · Σ_{s<S} ( |∂x D_s|₁ + |∂y D_s|₁ ),  D_s = AvgPool2×2^s (y − p).
 *   DVP adds a VGG-19 perceptual loss to the L1 term; no VGG is available here. What the perceptual loss
 *   does for DVP is keep the processed frames' edges and textures: where the targets disagree from frame to
 *   frame, plain L1 settles on a blurred compromise, and VGG's early layers (the ones DVP weighs most) respond
 *   mostly to local contrast at a few scales. The multi-scale gradient term penalises exactly that — edges and
 *   texture contrast that the prediction lacks or adds, at 1, ½ and ¼ resolution — with standard ops whose
 *   backward passes are cheap (Slice, Sub, AveragePool), and with no weights to ship.
 *
 * With IRT (DVP's iteratively reweighted training, for multimodal inconsistency), the network has a main and
 * a minor output and, per pixel, a confidence mask picks the output closer to the processed frame:
 *   e = max over channels of |o − p| / (x + 0.1)   (x the original frame in [0, 1]: relative error)
 *   c = [e_main < e_minor]   (no gradient flows through the mask)
 *   L_IRT = |(main − p)·c|₁ + |(minor − p)·(1 − c)|₁
 * so the main output follows one mode and the pixels of the other mode go to the minor output. Its
 * initialisation loss (DVP trains it on the first frame only, for the first epochs) is
 *   L_init = |main − p|₁ + 0.9 · |minor − p|₁.
 * Both are in the graph; a scalar input `irt` ∈ {0, 1} picks one, so one session serves both phases.
 */
import type { GraphBuilder } from '../onnx/builder.js';

export interface LossConfig {
  irt: boolean;
  /** λ of the multi-scale gradient term (non-IRT loss); 0 = plain L1. */
  gradientWeight: number;
  /** Scales of the gradient term (1 = full resolution only). */
  gradientScales: number;
}

export const LOSS_DEFAULTS = { gradientWeight: 1, gradientScales: 3 } as const;

export interface LossGraph {
  loss: string;
  /** The scalar input selecting the IRT loss (1) or its initialisation loss (0); IRT only. */
  irtSwitch?: string;
}

/** Mean of |v| over every element, halved into [0, 1] units. */
function meanAbs(b: GraphBuilder, v: string): string {
  return b.op('Mul', [b.op('ReduceMean', [b.op('Abs', [v])], { keepdims: 0 }), b.scalar(0.5)]);
}

/** Forward differences along one spatial axis (3 = x, 2 = y) of a [B, C, h, w] value. */
function difference(b: GraphBuilder, v: string, axis: 2 | 3, size: number): string {
  const next = b.op('Slice', [v, b.ints([1]), b.ints([size]), b.ints([axis])]);
  const prev = b.op('Slice', [v, b.ints([0]), b.ints([size - 1]), b.ints([axis])]);
  return b.op('Sub', [next, prev]);
}

/**
 * Appends the loss of `prediction` [B, 3·k, h, w] against `processed` [B, 3, h, w], with `original` the
 * network's input; returns the scalar loss value. With IRT the switch is `v.irtSwitch` when given, else a new
 * scalar graph input `irt`.
 */
export function appendLoss(
  b: GraphBuilder,
  cfg: LossConfig,
  v: { prediction: string; processed: string; original: string; irtSwitch?: string },
  size: { height: number; width: number },
): LossGraph {
  return b.scope('loss', () => {
    if (!cfg.irt) {
      const diff = b.op('Sub', [v.prediction, v.processed]);
      let loss = meanAbs(b, diff);
      if (cfg.gradientWeight > 0) {
        let level = diff;
        let [h, w] = [size.height, size.width];
        const terms: string[] = [];
        for (let s = 0; s < cfg.gradientScales && h >= 2 && w >= 2; s++) {
          if (s > 0) {
            level = b.op('AveragePool', [level], { kernel_shape: [2, 2], strides: [2, 2] });
            [h, w] = [Math.floor(h / 2), Math.floor(w / 2)];
          }
          terms.push(meanAbs(b, difference(b, level, 3, w)), meanAbs(b, difference(b, level, 2, h)));
        }
        const sum = terms.reduce((acc, t) => b.op('Add', [acc, t]));
        loss = b.op('Add', [loss, b.op('Mul', [sum, b.scalar(cfg.gradientWeight)])]);
      }
      return { loss };
    }
    const channels = (from: number) => b.op('Slice', [v.prediction, b.ints([from]), b.ints([from + 3]), b.ints([1])]);
    const main = b.op('Sub', [channels(0), v.processed]);
    const minor = b.op('Sub', [channels(3), v.processed]);
    // Relative error per pixel: |o − p| over the original's brightness (+0.1), the larger over the channels.
    const brightness = b.op('Mul', [b.op('Add', [v.original, b.scalar(1.2)]), b.scalar(0.5)]);
    const relative = (d: string) =>
      b.op('ReduceMax', [b.op('Div', [b.op('Abs', [d]), brightness])], { axes: [1], keepdims: 1 });
    const confidence = b.op('Cast', [b.op('Less', [relative(main), relative(minor)])], { to: 1 });
    const irtLoss = b.op('Add', [
      meanAbs(b, b.op('Mul', [main, confidence])),
      meanAbs(b, b.op('Mul', [minor, b.op('Sub', [b.scalar(1), confidence])])),
    ]);
    const initLoss = b.op('Add', [meanAbs(b, main), b.op('Mul', [meanAbs(b, minor), b.scalar(0.9)])]);
    const irtSwitch = v.irtSwitch ?? b.input('irt', 'float32', []);
    const loss = b.op('Add', [
      b.op('Mul', [irtLoss, irtSwitch]),
      b.op('Mul', [initLoss, b.op('Sub', [b.scalar(1), irtSwitch])]),
    ]);
    return { loss, irtSwitch };
  });
}
