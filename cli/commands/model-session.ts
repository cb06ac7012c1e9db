/**
 * What every model command starts with: the model folder, the runtime, the loaded model (with style LoRAs and an
 * adapter merged when asked, or the GPU inference graph of src/models/inference-unet.ts on WebGPU).
 * `close()` releases all of it; the runtime must be closed before the process exits (an exit during an ORT
 * run aborts the process).
 */
import { config } from '../../src/config.js';
import { VidpriorError } from '../../src/errors.js';
import { type InferenceUnet, inferenceUnetVariant, openInferenceUnet } from '../../src/models/inference-unet.js';
import { UNET_VARIANT_NAMES, isUnetVariant } from '../../src/models/unet-variants.js';
import { DEFAULT_MODEL_NOTE } from '../../src/models/builder/default-model.js';
import { readModelFolder } from '../../src/models/folder.js';
import { resolveModel } from '../../src/models/resolve/resolve.js';
import { loadModelFolder } from '../../src/models/loader.js';
import type { StableDiffusionModel } from '../../src/models/types.js';
import { openRuntime } from '../../src/runtime/index.js';
import type { ExecutionProviderChoice, Runtime } from '../../src/runtime/types.js';
import { parseLoraSpec } from '../../src/models/lora/lora-file.js';
import {
  type StyleLoraRecord,
  type StyleLoras,
  describeStyles,
  loadStyledComponent,
  openStyledSession,
  readStyleLoras,
  styleRecord,
  touches,
} from '../../src/models/lora/styled.js';
import type { Model } from '../../src/onnx/ir.js';
import type { Session } from '../../src/runtime/types.js';
import { loadModel } from '../../src/onnx/external-data.js';
import type { Adapter, AdapterRecord } from '../../src/training/adapter.js';
import { type AdaptedUnet, createAdaptedUnet } from '../../src/training/adapted-unet.js';
import type { Reporter } from './output.js';
import { join } from 'node:path';

/** The options every command that loads a model takes (`--model`, `--model-config`, `--dtype`). */
export interface ModelArgs {
  model?: string;
  'model-config'?: string;
  dtype?: string;
}

export const MODEL_OPTIONS = {
  model: {
    type: 'string',
    describe:
      'an SD 1.x model: ONNX folder, single-file checkpoint (.safetensors), diffusers folder, or a Hugging Face repo id ' +
      'in the local cache (owner/name); default: the embedded tiny model (random weights)',
  },
  'model-config': {
    type: 'string',
    describe:
      "a diffusers folder whose configs (and tokenizer) complete a single-file checkpoint's (heads, GroupNorm groups)",
  },
  dtype: {
    type: 'string',
    choices: ['float32', 'float16'],
    describe: 'weights of a converted checkpoint or diffusers folder: float32 (default) or float16 (GPU)',
  },
} as const;

/** `--model` (+ `--model-config`, `--dtype`) → an ONNX folder: as given, from the cache, or converted now. */
export async function modelFolderFor(args: ModelArgs, reporter: Reporter): Promise<string> {
  const resolved = await resolveModel(args.model, {
    modelConfig: args['model-config'],
    dtype: args.dtype as 'float32' | 'float16' | undefined,
    onNote: (line) => reporter.note(line),
    onProgress: (e) =>
      reporter.progress(
        { event: 'convert', ...e },
        `converted ${e.component} (${e.parameters.toLocaleString('en-US')} parameters, ${e.seconds.toFixed(1)} s)`,
      ),
  });
  if (resolved.ref.kind === 'embedded') reporter.note(DEFAULT_MODEL_NOTE);
  return resolved.dir;
}

export interface ModelSession {
  runtime: Runtime;
  model: StableDiffusionModel;
  /** With an adapter: what it is (the model's UNet then has it merged in). */
  adapter: Adapter | null;
  /** Style LoRAs given with --lora (merged into the text encoder and, except for training, the UNet). */
  styles: StyleLoras | null;
  /** The folder's UNet with the style LoRAs merged, for training on top of them (read from disk each call). */
  loadBaseUnet(): Promise<Model>;
  /** The UNet graph that runs ('original' = the folder's own), and seconds from the start to a loaded model. */
  unetVariant: string;
  loadSeconds: number;
  close(): Promise<void>;
}

export interface ModelSessionArgs extends ModelArgs {
  ep: ExecutionProviderChoice;
  adapter?: string;
  /** `file.safetensors[:weight]`, repeatable. */
  lora?: string[];
}

/** The option every model command takes for style LoRAs. */
export const LORA_OPTION = {
  type: 'string',
  array: true,
  default: [] as string[],
  describe:
    'a style LoRA (kohya/A1111 or diffusers/peft .safetensors) merged into the UNet and text encoder: file[:weight] (repeatable)',
} as const;

/** The execution provider option of every command that runs a model (default: $VIDPRIOR_EP, else auto). */
export function epOption() {
  return {
    type: 'string',
    choices: ['auto', 'cuda', 'webgpu', 'cpu'],
    default: config().ep,
    describe: 'execution provider',
  } as const;
}

/** How frames whose sides are not multiples of the model's size step are brought to size (and back). */
export const FIT_OPTION = {
  type: 'string',
  choices: ['resize', 'pad'],
  default: 'resize',
  describe: 'how frames whose sides are not multiples of f × 8 are brought to size (and back)',
} as const;

/** Warns when an adapter was trained on top of other style LoRAs than the ones given now. */
function checkAdapterStyles(record: Partial<AdapterRecord>, styles: StyleLoras | null, reporter: Reporter): void {
  const trained = (record.styleLoras as StyleLoraRecord[] | undefined) ?? [];
  const now = styles ? styleRecord(styles) : [];
  const key = (r: StyleLoraRecord[]) =>
    r
      .map((x) => `${x.sha256 ?? x.file}:${x.weight}`)
      .sort()
      .join();
  if (key(trained) === key(now)) return;
  const list = (r: StyleLoraRecord[]) => (r.length ? r.map((x) => `${x.file}:${x.weight}`).join(', ') : 'none');
  reporter.note(
    `the adapter was trained on top of style LoRAs ${list(trained)}, but this run has ${list(now)}: give the same --lora options for the result it was trained for`,
  );
}

/** VIDPRIOR_UNET_VARIANT, checked: a name of src/models/unet-variants.ts, or undefined. */
export function variantOverride(): ReturnType<typeof inferenceUnetVariant> | undefined {
  const name = config().unetVariant;
  if (name === undefined) return undefined;
  if (!isUnetVariant(name))
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `VIDPRIOR_UNET_VARIANT is "${name}"; known UNet variants: ${UNET_VARIANT_NAMES.join(', ')}`,
      { unetVariant: name },
    );
  return name;
}

/**
 * 1. The model folder: the user's (a checkpoint or diffusers folder is converted once, then cached), or the
 *    embedded default (built on first use) with its note.
 * 2. The runtime, saying which execution provider it took and why.
 * 3. The model; with `adapter`, its UNet is the folder's with the adapter merged in, and the plain one is
 *    never loaded (SD 1.5's is 3.4 GB). On WebGPU the UNet's output stays on the GPU for the step graph, and
 *    inference (not `training`) runs the UNet variant chosen for WebGPU, the plain graph as its fallback.
 */
export async function openModelSession(
  args: ModelSessionArgs,
  reporter: Reporter,
  opts: { training?: boolean } = {},
): Promise<ModelSession> {
  const started = performance.now();
  const override = variantOverride();
  const modelDir = await modelFolderFor(args, reporter);
  await readModelFolder(modelDir); // a missing file is named before the runtime starts
  const dir = modelDir;
  const styles = args.lora?.length ? await readStyleLoras(args.lora.map(parseLoraSpec)) : null;
  if (styles) for (const line of describeStyles(styles)) reporter.note(line);
  const runtime = await openRuntime({ ep: args.ep, cpuThreads: config().cpuThreads });
  reporter.note(`execution provider: ${runtime.decision.ep} (${runtime.decision.reason})`);
  reporter.progress({ event: 'provider', ep: runtime.decision.ep, reason: runtime.decision.reason });
  let adapted: AdaptedUnet | null = null;
  let inference: InferenceUnet | null = null;
  // Sessions made here with LoRAs merged; the loader never releases sessions it was given.
  const own: Session[] = [];
  const release = async () => {
    for (const s of own.splice(0)) await s.release().catch(() => {});
  };
  try {
    const unetOptions = runtime.decision.ep === 'webgpu' ? { keepOutputsOnGpu: true } : {};
    const textEncoder = touches(styles, 'text_encoder')
      ? await openStyledSession(runtime, dir, 'text_encoder', styles!)
      : undefined;
    if (textEncoder) own.push(textEncoder);
    let unet: Session | undefined;
    // Training builds its own graph over the (styled) UNet's weights: the plain session only tells the loader its inputs.
    const styledUnet = touches(styles, 'unet') && !opts.training;
    if (args.adapter) {
      const base = styledUnet ? (await loadStyledComponent(dir, 'unet', styles!, runtime)).model : undefined;
      adapted = await createAdaptedUnet(runtime, dir, args.adapter, { ...unetOptions, base });
      unet = adapted.session;
      own.push(unet);
      const made = adapted.record.prompt ? `, fine-tuned for "${adapted.record.prompt}"` : '';
      const what = adapted.adapter
        ? `${adapted.layers} layers, rank ${adapted.adapter.rank}`
        : `full UNet delta, ${adapted.layers} weights`;
      reporter.note(`adapter ${args.adapter}: ${what}${made}`);
      checkAdapterStyles(adapted.record, styles, reporter);
    } else if (styledUnet) {
      unet = await openStyledSession(runtime, dir, 'unet', styles!, unetOptions);
      own.push(unet);
    }
    // The optimized WebGPU graph is built from the folder's own UNet: with an adapter or style LoRAs merged,
    // the plain graph runs.
    const variant = inferenceUnetVariant(runtime.decision.ep, override);
    if (!unet && !opts.training && variant !== 'original') {
      const folder = await readModelFolder(dir);
      inference = await openInferenceUnet(runtime, folder.onnx.unet, {
        variant,
        cacheDir: config().cacheDir,
        sessionOptions: unetOptions,
        onNote: (line) => reporter.note(line),
      });
      unet = inference.session;
      own.push(unet);
      reporter.progress({
        event: 'unet',
        variant: inference.variant,
        asked: variant,
        fallback: inference.fallback,
        buildSeconds: round3(inference.buildSeconds),
        checkSeconds: round3(inference.checkSeconds),
      });
    }
    const model = await loadModelFolder(dir, runtime, {
      sessionOptions: { unet: unetOptions },
      unet,
      textEncoder,
    });
    for (const n of model.schedulerNotes) reporter.note(n);
    const loadSeconds = (performance.now() - started) / 1000;
    reporter.progress({ event: 'loaded', seconds: round3(loadSeconds) });
    return {
      runtime,
      model,
      adapter: adapted?.adapter ?? null,
      unetVariant: adapted ? 'original+adapter' : (inference?.variant ?? 'original'),
      loadSeconds,
      styles,
      async loadBaseUnet() {
        if (!touches(styles, 'unet')) return loadModel(join(dir, 'unet', 'model.onnx'));
        return (await loadStyledComponent(dir, 'unet', styles!, runtime)).model;
      },
      async close() {
        await model.release().catch(() => {});
        await release();
        await runtime.close().catch(() => {});
      },
    };
  } catch (err) {
    await release();
    await runtime.close().catch(() => {});
    throw err;
  }
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** What `finetune` records about the style LoRAs it trained on top of, and how it loads that UNet. */
export function styledBase(
  session: ModelSession,
): { load: () => Promise<Model>; record: Record<string, unknown> } | undefined {
  if (!session.styles) return undefined;
  return { load: () => session.loadBaseUnet(), record: { styleLoras: styleRecord(session.styles) } };
}

/** An option given twice arrives as an array: the last one wins (except for options meant to repeat). */
export function lastValues<T>(argv: T, repeatable: readonly string[] = []): T {
  const out: Record<string, unknown> = { ...(argv as Record<string, unknown>) };
  for (const [k, v] of Object.entries(out))
    if (Array.isArray(v) && k !== '_' && !repeatable.includes(k)) out[k] = v[v.length - 1];
  return out as T;
}

/**
 * Runs `fn` with an AbortSignal that Ctrl-C triggers (the job stops at its next step and cleans up); SIGTERM
 * too (a cluster scheduler's scancel or preemption).
 */
export async function withSigint<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const onSigint = (): void => abort.abort();
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigint);
  try {
    return await fn(abort.signal);
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}
