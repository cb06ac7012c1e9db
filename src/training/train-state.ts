/**
 * The state of a fine-tuning run between steps: which sample each draw takes (EpochPlan), and the trained
 * values with their optimizer state as fed to the step session (TrainingState, GPU-resident where the provider
 * allows). Every random draw of a run derives from (seed, stream, index) alone, so a resumed run repeats the
 * uninterrupted one exactly.
 */
import { createHash } from 'node:crypto';
import { Rng } from '../random.js';
import type { Feed, GpuTensor, Runtime } from '../runtime/types.js';
import { isGpuTensor } from '../runtime/types.js';
import { type Tensor, float32, int64, tensor, toFloat16 } from '../tensor.js';
import type { Adapter, AdapterRecord } from './adapter.js';
import type { CheckpointState } from './checkpoint.js';
import type { FullDeltaAdapter } from './full-delta.js';
import type { StepSession } from './step-session.js';

/** A fresh generator for (seed, stream, index): each iteration's draws depend on nothing else. */
export function rngFor(seed: number, stream: string, index: number): Rng {
  const h = createHash('sha256').update(`${seed}/${stream}/${index}`).digest();
  return new Rng(h.readUInt32LE(0) + 2 ** 32 * (h.readUInt32LE(4) & 0x1fffff));
}

/** The epochs: every frame once, plus the edited keyframes for their share, shuffled per epoch. */
export class EpochPlan {
  private readonly condPerEpoch: number;
  private readonly length: number;
  private order: number[] = [];
  private epoch = -1;

  constructor(
    private readonly frames: number,
    private readonly edits: number,
    share: number,
    private readonly seed: number,
  ) {
    this.condPerEpoch = edits ? Math.max(1, Math.round((frames * share) / (1 - share))) : 0;
    this.length = frames + this.condPerEpoch;
  }

  /** The sample of draw `i`: a frame index, or frames + edit index. */
  pick(i: number): number {
    const epoch = Math.floor(i / this.length);
    if (epoch !== this.epoch) {
      const order = [
        ...Array.from({ length: this.frames }, (_, k) => k),
        ...Array.from({ length: this.condPerEpoch }, (_, k) => this.frames + (k % this.edits)),
      ];
      this.order = rngFor(this.seed, 'epoch', epoch).shuffle(order);
      this.epoch = epoch;
    }
    return this.order[i % this.length]!;
  }
}

/** The trained values and their optimizer state, as fed to the step (GPU-resident where the provider allows). */
export class TrainingState {
  current = new Map<string, Feed>();
  private readonly nameFor = new Map<string, string>();

  constructor(
    private readonly runtime: Runtime,
    private readonly built: StepSession,
  ) {
    for (const s of built.step.state) {
      this.nameFor.set(s.newParam, s.param);
      this.nameFor.set(s.newM, s.m);
      this.nameFor.set(s.newV, s.v);
      if (s.acc) this.nameFor.set(s.newAcc!, s.acc);
    }
  }

  /**
   * LoRA: A ~ U(±1/√fan_in) like peft's default, B = 0 (the model starts unchanged). Full: Δ = 0. Moments
   * and accumulators 0. A checkpoint replaces all but the accumulators (empty between steps).
   */
  init(seed: number, resumed: CheckpointState | null): void {
    for (const s of this.built.step.state) {
      const saved = resumed?.tensors;
      const init = new Float32Array(s.dims.reduce((a, b) => a * b, 1));
      if (!saved && s.param.startsWith('lora.') && s.param.endsWith('.A')) {
        const fanIn = s.dims.length === 2 ? s.dims[0]! : s.dims.slice(1).reduce((a, b) => a * b, 1);
        const r = rngFor(seed, `init/${s.param}`, 0);
        const bound = 1 / Math.sqrt(fanIn);
        for (let i = 0; i < init.length; i++) init[i] = (2 * r.uniform() - 1) * bound;
      }
      this.current.set(s.param, float32(s.dims, saved?.get(s.param)?.data ?? init));
      this.current.set(s.m, float32(s.dims, saved?.get(s.m)?.data ?? new Float32Array(init.length)));
      this.current.set(s.v, float32(s.dims, saved?.get(s.v)?.data ?? new Float32Array(init.length)));
      if (s.acc) this.current.set(s.acc, float32(s.dims, new Float32Array(init.length)));
    }
  }

  /** Takes a step's outputs as the next state, freeing the previous one. */
  async advance(out: Record<string, Feed>): Promise<void> {
    const next = new Map<string, Feed>();
    for (const [outName, value] of Object.entries(out)) {
      const inName = this.nameFor.get(outName);
      if (inName) next.set(inName, value);
    }
    const old = [...this.current.values()].filter(isGpuTensor) as GpuTensor[];
    this.current = next;
    if (old.length) await this.runtime.dispose(old);
  }

  /** Host copies of the values and moments (not the accumulators), for a checkpoint. */
  async snapshot(): Promise<Map<string, { dims: number[]; data: Float32Array }>> {
    const out = new Map<string, { dims: number[]; data: Float32Array }>();
    const accs = new Set(this.built.step.state.map((s) => s.acc));
    for (const [name, t] of this.current) {
      if (accs.has(name)) continue;
      const host = isGpuTensor(t) ? await this.runtime.read(t) : t;
      out.set(name, { dims: [...host.dims], data: host.data as Float32Array });
    }
    return out;
  }

  async result(rank: number, alpha: number, record: Partial<AdapterRecord>): Promise<Adapter | FullDeltaAdapter> {
    const { step } = this.built;
    const value = async (name: string): Promise<Float32Array> => {
      const t = this.current.get(name)!;
      return (isGpuTensor(t) ? await this.runtime.read(t) : t).data as Float32Array;
    };
    if (step.deltas.length) {
      const deltas: FullDeltaAdapter['deltas'] = new Map();
      for (const d of step.deltas) deltas.set(d.param.name, { param: d.param, data: await value(d.delta) });
      return { kind: 'full', deltas, record };
    }
    const weights: Adapter['weights'] = new Map();
    for (const p of step.params) {
      weights.set(p.target.module, {
        kind: p.target.kind,
        a: await value(p.a),
        b: await value(p.b),
        aDims: p.aDims,
        bDims: p.bDims,
      });
    }
    return { rank, alpha, weights, record };
  }

  async release(): Promise<void> {
    const gpu = [...this.current.values()].filter(isGpuTensor) as GpuTensor[];
    if (gpu.length) await this.runtime.dispose(gpu).catch(() => {});
  }
}

/** The UNet's timestep input for step t, as the training graph takes it ([1], of the model's type). */
export function timestepFeed(type: string, t: number): Tensor {
  return type === 'int64'
    ? int64([1], [t])
    : type === 'int32'
      ? tensor('int32', [1], Int32Array.of(t))
      : type === 'float16'
        ? tensor('float16', [1], toFloat16(Float32Array.of(t)))
        : float32([1], [t]);
}
