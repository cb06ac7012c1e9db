/**
 * A user-supplied optical-flow network (RAFT, PWC-Net, FlowNet2… exported to ONNX) as a FlowEstimator,
 * run through the project's runtime. Conventions the model must follow (checked when it is opened):
 *   - its first two inputs are the two frames, [1, 3, H, W] RGB, float32 or float16, values in [0, valueRange]
 *     (255 for most RAFT exports, 1 for FlowNet2 with rgb_max 1);
 *   - its first output is the flow from the first frame to the second, [1, 2, h, w], (u, v) in pixels of
 *     that output's grid (a lower-resolution output is upsampled and its vectors rescaled).
 * Frames are resized to the model's static size, or (dynamic sizes) up to a multiple of `multiple` (64, as
 * Lai et al.'s compute_flow_occlusion.py does for FlowNet2), and the flow is resized back with its vectors
 * scaled, like their utils.resize_flow.
 */
import { VidpriorError, check } from '../errors.js';
import { openRuntime, type ExecutionProviderChoice, type Runtime, type Session } from '../runtime/index.js';
import { asFloat32, castFloat, float32, type Tensor } from '../tensor.js';
import type { FlowEstimator } from './consistency.js';
import { resizePlane, resizeRgb, type Flow, type Plane, type RgbImage } from './image.js';

export interface OnnxFlowOptions {
  model: string;
  ep?: ExecutionProviderChoice;
  /** Pixel values the network expects: 255 (0..255) or 1 (0..1). */
  valueRange?: number;
  /** For dynamic input sizes: frames are resized up to a multiple of this. */
  multiple?: number;
}

export class OnnxFlowEstimator implements FlowEstimator {
  readonly name: string;
  private constructor(
    private readonly runtime: Runtime,
    private readonly session: Session,
    private readonly options: Required<OnnxFlowOptions>,
  ) {
    this.name = `ONNX network ${options.model} (${session.ep}, inputs 0..${options.valueRange})`;
  }

  static async open(options: OnnxFlowOptions): Promise<OnnxFlowEstimator> {
    const o: Required<OnnxFlowOptions> = { ep: 'auto', valueRange: 255, multiple: 64, ...options };
    check(o.valueRange === 1 || o.valueRange === 255, 'flow-model-range', o.valueRange, '1 or 255');
    check(Number.isInteger(o.multiple) && o.multiple >= 1, 'multiple', o.multiple, 'a whole number ≥ 1');
    const runtime = await openRuntime({ ep: o.ep });
    try {
      const session = await runtime.createSession(o.model, { label: 'flow' });
      const [a, b] = session.inputs;
      const out = session.outputs[0];
      const isImage = (m: typeof a | undefined) =>
        m !== undefined &&
        m.dims.length === 4 &&
        (m.dims[1] === 3 || typeof m.dims[1] === 'string') &&
        (m.type === 'float32' || m.type === 'float16');
      if (
        !isImage(a) ||
        !isImage(b) ||
        !out ||
        out.dims.length !== 4 ||
        (out.dims[1] !== 2 && typeof out.dims[1] !== 'string')
      ) {
        const io = (ms: readonly { name: string; type: string; dims: (number | string)[] }[]) =>
          ms.map((m) => `${m.name} ${m.type}[${m.dims.join(',')}]`).join(', ');
        throw new VidpriorError(
          'E_MODEL_INPUT',
          `flow model ${o.model} must take two [1,3,H,W] float frames and give a [1,2,h,w] flow first; it has inputs ${io(session.inputs)} and outputs ${io(session.outputs)}`,
          { model: o.model },
        );
      }
      return new OnnxFlowEstimator(runtime, session, o);
    } catch (err) {
      await runtime.close();
      throw err;
    }
  }

  async flow(_i0: Plane, _i1: Plane, rgb0?: RgbImage, rgb1?: RgbImage): Promise<Flow> {
    if (!rgb0 || !rgb1) throw new VidpriorError('E_INTERNAL', 'the ONNX flow estimator needs the RGB frames');
    const { width: W, height: H } = rgb0;
    const [inA, inB] = this.session.inputs;
    const staticH = typeof inA.dims[2] === 'number' ? (inA.dims[2] as number) : undefined;
    const staticW = typeof inA.dims[3] === 'number' ? (inA.dims[3] as number) : undefined;
    const m = this.options.multiple;
    const h = staticH ?? Math.ceil(H / m) * m;
    const w = staticW ?? Math.ceil(W / m) * m;
    const toInput = (img: RgbImage, type: string): Tensor => {
      const r = resizeRgb(img, w, h);
      const data = new Float32Array(r.data.length);
      for (let i = 0; i < data.length; i++) data[i] = r.data[i] * this.options.valueRange;
      return castFloat(float32([1, 3, h, w], data), type === 'float16' ? 'float16' : 'float32');
    };
    const outName = this.session.outputs[0].name;
    const result = await this.session.run(
      { [inA.name]: toInput(rgb0, inA.type), [inB.name]: toInput(rgb1, inB.type) },
      [outName],
      { transferFeeds: true },
    );
    const flow = asFloat32(await this.runtime.read(result[outName]));
    const [, c, fh, fw] = flow.dims;
    if (c !== 2)
      throw new VidpriorError(
        'E_MODEL_INPUT',
        `flow model ${this.options.model}: output ${outName} has ${c} channels, expected 2`,
        { model: this.options.model },
      );
    // Back to the frame's grid: resize each component and scale the vectors by the size ratio.
    const plane = (k: number): Plane => ({
      width: fw,
      height: fh,
      data: flow.data.subarray(k * fw * fh, (k + 1) * fw * fh),
    });
    const u = resizePlane(plane(0), W, H).data.slice();
    const v = resizePlane(plane(1), W, H).data.slice();
    const sx = W / fw;
    const sy = H / fh;
    for (let i = 0; i < u.length; i++) {
      u[i] *= sx;
      v[i] *= sy;
    }
    return { width: W, height: H, u, v };
  }

  async close(): Promise<void> {
    await this.runtime.close();
  }
}
