/**
 * The Deep Video Prior network: a U-Net in the style of DVP's (Lei et al. 2020, their "VCN"), written with the
 * model builder's layer vocabulary (src/models/builder/net.ts):
 *
 *   1×1 conv → 3×3 conv (width w), then per lower scale: 2×2 MaxPool → two 3×3 convs (width doubles);
 *   back up: ×2 nearest upsampling → 3×3 conv (half the width) → concat with the skip → two 3×3 convs;
 *   a last 3×3 conv to 3 channels (6 with IRT: the main and the minor output). LeakyReLU(0.2) after every
 *   conv but the last; no normalisation (DVP has none).
 *
 * DVP upsamples bilinearly; nearest ×2 followed by a learnt 3×3 conv is used here because its gradient is a
 * block sum (the autodiff's Resize rule), and the conv after it does the interpolating. The weights are graph
 * INPUTS, not initializers: the training step feeds them back step after step, and the same forward graph,
 * built at another size, applies the trained weights to full-resolution frames.
 */
import { VidpriorError } from '../errors.js';
import type { Model } from '../onnx/ir.js';
import { Net } from '../models/builder/net.js';
import { paramValues } from '../models/builder/weights.js';

export interface DvpNetConfig {
  /** Channels at the finest scale (DVP: 32); doubles at each lower scale. */
  width: number;
  /** Resolution levels (DVP: 5, i.e. 4 poolings); frame sides must be multiples of 2^(scales−1). */
  scales: number;
  /** 2 for IRT (main and minor output, 6 channels), else 1. */
  outputs: 1 | 2;
  /** Seed of the initial weights. */
  seed: number;
}

/** Width 16 (DVP: 32) keeps a CPU run of a short clip in minutes; 2.2 M parameters at 5 scales. */
export const DVP_NET_DEFAULTS = { width: 16, scales: 5 } as const;

/** The opset the network and its training graph are emitted at (ReduceMax/ReduceMean axes as attributes). */
export const DVP_OPSET = 17;

/** LeakyReLU slope (DVP's lrelu). */
const LEAK = 0.2;
/** He-style gain for LeakyReLU(0.2) layers: √(2 / (1 + 0.2²)). */
const LRELU_GAIN = Math.sqrt(2 / (1 + LEAK * LEAK));

export interface DvpParam {
  name: string;
  dims: number[];
  /** Seeded initial values. */
  init: Float32Array;
}

export interface DvpNetGraph {
  model: Model;
  /** The graph input holding frames [B, 3, H, W] in [-1, 1] (src/io's convention). */
  input: string;
  /** The graph output [B, 3·outputs, H, W] in the same range. */
  output: string;
  params: DvpParam[];
}

/** Checks a config and a frame size the network can take. */
export function checkNetConfig(cfg: Pick<DvpNetConfig, 'width' | 'scales'>): void {
  if (!Number.isInteger(cfg.width) || cfg.width < 4 || cfg.width > 128)
    throw new VidpriorError('E_BAD_REQUEST', `width must be a whole number from 4 to 128, got ${cfg.width}`, {
      field: 'width',
    });
  if (!Number.isInteger(cfg.scales) || cfg.scales < 2 || cfg.scales > 6)
    throw new VidpriorError('E_BAD_REQUEST', `scales must be a whole number from 2 to 6, got ${cfg.scales}`, {
      field: 'scales',
    });
}

/** Frame sides must be multiples of this (each scale halves them). */
export function sideMultiple(cfg: Pick<DvpNetConfig, 'scales'>): number {
  return 2 ** (cfg.scales - 1);
}

/**
 * The forward graph for frames of [batch, 3, height, width]. Parameter names are stable (`enc0.conv1.weight`,
 * `up1.conv.bias`, `out.weight`…) and their initial values depend only on (seed, name).
 */
export function buildDvpNet(cfg: DvpNetConfig, size: { batch: number; height: number; width: number }): DvpNetGraph {
  checkNetConfig(cfg);
  const m = sideMultiple(cfg);
  if (size.height % m !== 0 || size.width % m !== 0) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `the network takes sides that are multiples of ${m}, got ${size.width}×${size.height}`,
    );
  }
  const net = new Net('dvp_unet', { opset: DVP_OPSET, dtype: 'float32', weights: 'none', seed: cfg.seed });
  const input = net.input('frames', 'float32', [size.batch, 3, size.height, size.width]);
  const act = (x: string) => net.op('LeakyRelu', [x], { alpha: LEAK });
  const conv = (name: string, x: string, cin: number, cout: number, k = 3) =>
    act(net.conv(name, x, cin, cout, k, { gain: LRELU_GAIN }));
  const widthAt = (level: number) => cfg.width * 2 ** level;

  // 1. Encoder: the finest scale, then pool + two convs per lower scale.
  const skips: string[] = [];
  let h = net.module('enc0', () => conv('conv2', conv('conv1', input, 3, cfg.width, 1), cfg.width, cfg.width));
  for (let level = 1; level < cfg.scales; level++) {
    skips.push(h);
    const pooled = net.op('MaxPool', [h], { kernel_shape: [2, 2], strides: [2, 2] });
    h = net.module(`enc${level}`, () =>
      conv('conv2', conv('conv1', pooled, widthAt(level - 1), widthAt(level)), widthAt(level), widthAt(level)),
    );
  }
  // 2. Decoder: upsample, halve the width, concat the skip, two convs.
  for (let level = cfg.scales - 2; level >= 0; level--) {
    const c = widthAt(level);
    h = net.module(`up${level}`, () => {
      const up = net.op('Resize', [h, '', net.floats([1, 1, 2, 2])], {
        mode: 'nearest',
        coordinate_transformation_mode: 'asymmetric',
        nearest_mode: 'floor',
      });
      const narrowed = net.conv('conv', up, 2 * c, c, 3);
      const joined = net.op('Concat', [narrowed, skips[level]!], { axis: 1 });
      return conv('conv2', conv('conv1', joined, 2 * c, c), c, c);
    });
  }
  // 3. The output conv: no activation (DVP's last layer is linear).
  const output = net.conv('out', h, cfg.width, 3 * cfg.outputs, 3, { output: 'prediction' });
  net.output(output, 'float32', [size.batch, 3 * cfg.outputs, size.height, size.width]);

  // 4. The parameters become graph inputs, with their seeded initial values kept aside.
  const model = net.build();
  const params: DvpParam[] = [];
  for (const spec of net.params.values()) {
    const i = model.graph.initializers.findIndex((t) => t.name === spec.name);
    if (i < 0) throw new VidpriorError('E_INTERNAL', `parameter ${spec.name} has no initializer`);
    model.graph.initializers.splice(i, 1);
    model.graph.inputs.push({ name: spec.name, type: 'float32', shape: [...spec.dims] });
    params.push({ name: spec.name, dims: [...spec.dims], init: paramValues(spec, cfg.seed) });
  }
  return { model, input, output, params };
}

/** Parameters of a config (without building it twice). */
export function countParams(params: readonly DvpParam[]): number {
  return params.reduce((n, p) => n + p.init.length, 0);
}
