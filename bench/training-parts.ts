/**
 * One measured configuration of the training step ("part"): LoRA on the attention projections (rank 4), LoRA
 * with the convolutions too, or the full UNet, optionally with a memory lever (recompute, float16, gradient
 * accumulation). A part builds the step session (src/training/step-session.ts, timed: graph construction with
 * autodiff, then the runtime's session), runs warm-up steps, then times steps on synthetic latents
 * (batch 1) until a step count or a time limit, feeding the trained state back as finetune() does.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModel } from '../src/onnx/external-data.js';
import { Rng } from '../src/random.js';
import { type Feed, type GpuTensor, type Runtime, isGpuTensor } from '../src/runtime/types.js';
import { float32 } from '../src/tensor.js';
import { createStepSession } from '../src/training/step-session.js';
import { TrainingState, timestepFeed } from '../src/training/train-state.js';
import { adamScalars } from '../src/training/train-step.js';

export interface PartSpec {
  name: string;
  mode: 'lora' | 'lora-convs' | 'full';
  recompute?: boolean;
  precision?: 'float32' | 'float16';
  /** Samples per optimizer step (gradient accumulation). */
  accumulate?: number;
  /** Samples per run (default 1): the batch the accumulation stands in for. */
  batch?: number;
}

export const PARTS: PartSpec[] = [
  { name: 'lora', mode: 'lora' },
  { name: 'lora-convs', mode: 'lora-convs' },
  { name: 'full', mode: 'full' },
  { name: 'full-recompute', mode: 'full', recompute: true },
  { name: 'full-float16', mode: 'full', precision: 'float16' },
  { name: 'full-accumulate4', mode: 'full', accumulate: 4 },
  { name: 'full-batch4', mode: 'full', batch: 4 },
  { name: 'lora-recompute', mode: 'lora', recompute: true },
  { name: 'lora-float16', mode: 'lora', precision: 'float16' },
];

export interface PartResult {
  part: string;
  mode: PartSpec['mode'];
  recompute: boolean;
  precision: string;
  accumulate: number;
  latent: number[];
  /** Graph construction (load structure, LoRA/delta, loss, autodiff, AdamW) and memory estimate. */
  buildSeconds: number;
  /** Writing the graph and the runtime creating its session. */
  sessionSeconds: number;
  warmupSteps: number;
  /** Optimizer steps timed (each of `accumulate` samples). */
  timedSteps: number;
  stepsPerSecond: number;
  /** Samples (UNet forward + backward) per second. */
  samplesPerSecond: number;
  estimatedMemoryGiB: number;
  trainedParameters?: number;
  firstLoss: number;
  lastLoss: number;
}

export interface PartOptions {
  warmup: number;
  steps: number;
  /** Stop timing after this many seconds even if fewer steps ran. */
  maxSeconds: number;
  log: (line: string) => void;
  /** Latent side (default: 512×512 frames, 512 / the VAE factor); smaller for dry runs on software GPUs. */
  latentSide?: number;
}

/** What a part needs to know of the model folder, read without opening any session. */
export interface TrainTarget {
  dir: string;
  facts: {
    latentChannels: number;
    vaeScaleFactor: number;
    textLength: number;
    textWidth: number;
    timestepType: string;
  };
}

/** The model folder's shapes from its UNet's structure (no weights read) and its VAE config. */
export async function readTrainTarget(dir: string): Promise<TrainTarget> {
  const unet = await loadModel(join(dir, 'unet', 'model.onnx'), { loadExternal: false });
  const input = (name: string) => unet.graph.inputs.find((i) => i.name === name)!;
  const vae = JSON.parse(await readFile(join(dir, 'vae_decoder', 'config.json'), 'utf8')) as {
    block_out_channels: number[];
  };
  const text = input('encoder_hidden_states').shape!;
  return {
    dir,
    facts: {
      latentChannels: input('sample').shape![1] as number,
      vaeScaleFactor: 2 ** (vae.block_out_channels.length - 1),
      textLength: typeof text[1] === 'number' ? text[1] : 77,
      textWidth: text[2] as number,
      timestepType: input('timestep').type,
    },
  };
}

export async function runPart(
  runtime: Runtime,
  model: TrainTarget,
  spec: PartSpec,
  o: PartOptions,
): Promise<PartResult> {
  const { facts } = model;
  const side = o.latentSide ?? Math.round(512 / facts.vaeScaleFactor);
  const batch = spec.batch ?? 1;
  const latent = [batch, facts.latentChannels, side, side];
  const textShape = [batch, facts.textLength, facts.textWidth];
  const accumulate = spec.accumulate ?? 1;
  // 1. Build and open the step (timed inside).
  const built = await createStepSession(runtime, model, latent, textShape, {
    full: spec.mode === 'full',
    rank: 4,
    alpha: 4,
    convs: spec.mode === 'lora-convs',
    accumulate: accumulate > 1,
    precision: spec.precision ?? 'float32',
    recompute: !!spec.recompute,
    // Measure what fits on the device; the refusal is tested elsewhere.
    memoryLimit: Number.POSITIVE_INFINITY,
  });
  o.log(
    `${spec.name}: graph ${built.buildSeconds.toFixed(1)} s, session ${built.sessionSeconds.toFixed(1)} s, estimate ${(built.memory.total / 2 ** 30).toFixed(2)} GiB`,
  );
  const { step, session } = built;
  const state = new TrainingState(runtime, built);
  state.init(0, null);
  let fixed: Record<string, Feed> = {};
  try {
    // 2. Synthetic inputs, uploaded once.
    const rng = new Rng(0);
    const n = latent.reduce((a, b) => a * b, 1);
    fixed = {
      [step.inputs.sample]: await runtime.upload(float32(latent, rng.normalArray(n))),
      [step.inputs.target]: await runtime.upload(float32(latent, rng.normalArray(n))),
      [step.inputs.context]: await runtime.upload(
        float32(textShape, rng.normalArray(batch * facts.textLength * facts.textWidth, 0.5)),
      ),
    };
    let stepNumber = 0;
    const losses: number[] = [];
    const runStep = async (): Promise<void> => {
      stepNumber++;
      let loss = 0;
      for (let k = 0; k < accumulate; k++) {
        const sc = adamScalars(step.adam, spec.mode === 'full' ? 1e-5 : 1e-4, stepNumber);
        const feeds: Record<string, Feed> = {
          ...fixed,
          [step.inputs.timestep]: timestepFeed(facts.timestepType, 100 + ((stepNumber * 37) % 400)),
          [step.inputs.lr]: float32([], [sc.lr]),
          [step.inputs.decay]: float32([], [sc.decay]),
          [step.inputs.bc1]: float32([], [sc.bc1]),
          [step.inputs.bc2]: float32([], [sc.bc2]),
        };
        if (step.inputs.decayComplement) feeds[step.inputs.decayComplement] = float32([], [sc.decayComplement]);
        if (step.inputs.apply) {
          feeds[step.inputs.apply] = float32([], [k === accumulate - 1 ? 1 : 0]);
          feeds[step.inputs.gradScale!] = float32([], [1 / accumulate]);
        }
        for (const [name, value] of state.current) feeds[name] = value;
        const out = await session.run(feeds);
        const l = out[step.loss]!;
        loss += ((isGpuTensor(l) ? await runtime.read(l) : l).data[0] as number) / accumulate;
        await state.advance(out);
      }
      losses.push(loss);
    };
    // 3. Warm-up (ORT plans and compiles on the first runs), then timed steps.
    for (let i = 0; i < o.warmup; i++) await runStep();
    const t0 = performance.now();
    let timed = 0;
    while (timed < o.steps && (performance.now() - t0) / 1000 < o.maxSeconds) {
      await runStep();
      timed++;
    }
    const seconds = (performance.now() - t0) / 1000;
    return {
      part: spec.name,
      mode: spec.mode,
      recompute: !!spec.recompute,
      precision: spec.precision ?? 'float32',
      accumulate,
      latent,
      buildSeconds: round(built.buildSeconds),
      sessionSeconds: round(built.sessionSeconds),
      warmupSteps: o.warmup,
      timedSteps: timed,
      stepsPerSecond: round(timed / seconds),
      samplesPerSecond: round((timed * accumulate * batch) / seconds),
      estimatedMemoryGiB: round(built.memory.total / 2 ** 30),
      firstLoss: round(losses[0]!),
      lastLoss: round(losses[losses.length - 1]!),
    };
  } finally {
    await state.release();
    await session.release().catch(() => {});
    await runtime.dispose(Object.values(fixed).filter(isGpuTensor) as GpuTensor[]).catch(() => {});
  }
}

function round(v: number): number {
  return Number(v.toPrecision(4));
}
