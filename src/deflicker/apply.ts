/**
 * Applies trained deflicker weights to frames of any size: the network is fully convolutional, so the same
 * weights run in a forward graph built for the output size (frames padded by reflection to a multiple of
 * 2^(scales−1), cropped back after), `batch` frames per run. With IRT only the main output is kept.
 */
import { VidpriorError } from '../errors.js';
import { encodeModel } from '../onnx/codec.js';
import type { Feed, Runtime, Session } from '../runtime/types.js';
import { float32, type Tensor } from '../tensor.js';
import { buildDvpNet, sideMultiple } from './network.js';

export interface ApplyConfig {
  width: number;
  scales: number;
  irt: boolean;
  /** Frames per run. */
  batch: number;
}

/** A forward session over fixed weights for [batch, 3, height, width] frames (already padded). */
export class DeflickerApplier {
  private constructor(
    private readonly runtime: Runtime,
    private readonly session: Session,
    private readonly weights: Record<string, Feed>,
    private readonly input: string,
    private readonly output: string,
    readonly batch: number,
    readonly height: number,
    readonly width: number,
  ) {}

  static async open(
    runtime: Runtime,
    weights: Map<string, { dims: number[]; data: Float32Array }>,
    cfg: ApplyConfig,
    size: { height: number; width: number },
  ): Promise<DeflickerApplier> {
    const m = sideMultiple(cfg);
    if (size.height % m !== 0 || size.width % m !== 0)
      throw new VidpriorError('E_INTERNAL', `apply size ${size.width}×${size.height} is not a multiple of ${m}`);
    const graph = buildDvpNet(
      { width: cfg.width, scales: cfg.scales, outputs: cfg.irt ? 2 : 1, seed: 0 },
      { batch: cfg.batch, ...size },
    );
    const feeds: Record<string, Feed> = {};
    for (const p of graph.params) {
      const wt = weights.get(p.name);
      if (!wt || wt.data.length !== p.init.length)
        throw new VidpriorError('E_INTERNAL', `trained weights lack ${p.name} (or it has another size)`);
      // Uploaded once: the same weights serve every batch (on the CPU provider this is the host tensor).
      feeds[p.name] = await runtime.upload(float32(p.dims, wt.data));
    }
    const session = await runtime.createSession(encodeModel(graph.model), { label: 'deflicker-apply' });
    return new DeflickerApplier(runtime, session, feeds, graph.input, graph.output, cfg.batch, size.height, size.width);
  }

  /** Runs up to `batch` frames [3, H, W] (the session's size); returns their main outputs in the same layout. */
  async run(frames: Tensor<'float32'>[]): Promise<Tensor<'float32'>[]> {
    if (frames.length === 0 || frames.length > this.batch)
      throw new VidpriorError('E_INTERNAL', `apply got ${frames.length} frames for a batch of ${this.batch}`);
    const plane = 3 * this.height * this.width;
    const data = new Float32Array(this.batch * plane);
    frames.forEach((f, j) => {
      if (f.data.length !== plane) throw new VidpriorError('E_INTERNAL', `apply frame ${j} has the wrong size`);
      data.set(f.data, j * plane);
    });
    // A short last batch is filled with its first frame (the graph's batch is static); those outputs are dropped.
    for (let j = frames.length; j < this.batch; j++) data.set(frames[0]!.data, j * plane);
    const out = await this.session.run(
      { ...this.weights, [this.input]: float32([this.batch, 3, this.height, this.width], data) },
      [this.output],
    );
    const y = (await this.runtime.read(out[this.output]!)) as Tensor<'float32'>;
    const perFrame = y.data.length / this.batch;
    return frames.map((_, j) =>
      float32([3, this.height, this.width], y.data.slice(j * perFrame, j * perFrame + plane)),
    );
  }

  async close(): Promise<void> {
    await this.runtime.dispose(Object.values(this.weights)).catch(() => {});
    await this.session.release().catch(() => {});
  }
}
