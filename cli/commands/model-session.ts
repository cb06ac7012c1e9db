/**
 * What every model command starts with: the model folder, the runtime, the loaded model (with an adapter
 * merged into its UNet when asked). `close()` releases all of it; the runtime must be closed before the
 * process exits (an exit during an ORT run aborts the process).
 */
import { config } from '../../src/config.js';
import { DEFAULT_MODEL_NOTE } from '../../src/models/builder/default-model.js';
import { readModelFolder } from '../../src/models/folder.js';
import { resolveModel } from '../../src/models/resolve/resolve.js';
import { loadModelFolder } from '../../src/models/loader.js';
import type { StableDiffusionModel } from '../../src/models/types.js';
import { openRuntime } from '../../src/runtime/index.js';
import type { ExecutionProviderChoice, Runtime } from '../../src/runtime/types.js';
import type { Adapter } from '../../src/training/adapter.js';
import { type AdaptedUnet, createAdaptedUnet } from '../../src/training/adapted-unet.js';
import type { Reporter } from './output.js';

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
  close(): Promise<void>;
}

/**
 * 1. The model folder: the user's (a checkpoint or diffusers folder is converted once, then cached), or the
 *    embedded default (built on first use) with its note.
 * 2. The runtime, saying which execution provider it took and why.
 * 3. The model; with `adapter`, its UNet is the folder's with the adapter merged in, and the plain one is
 *    never loaded (SD 1.5's is 3.4 GB). On WebGPU the UNet's output stays on the GPU for the step graph.
 */
export async function openModelSession(
  args: ModelArgs & { ep: ExecutionProviderChoice; adapter?: string },
  reporter: Reporter,
): Promise<ModelSession> {
  const modelDir = await modelFolderFor(args, reporter);
  await readModelFolder(modelDir); // a missing file is named before the runtime starts
  const runtime = await openRuntime({ ep: args.ep, cpuThreads: config().cpuThreads });
  reporter.note(`execution provider: ${runtime.decision.ep} (${runtime.decision.reason})`);
  reporter.progress({ event: 'provider', ep: runtime.decision.ep, reason: runtime.decision.reason });
  let adapted: AdaptedUnet | null = null;
  try {
    const unetOptions = runtime.decision.ep === 'webgpu' ? { keepOutputsOnGpu: true } : {};
    if (args.adapter) {
      adapted = await createAdaptedUnet(runtime, modelDir, args.adapter, unetOptions);
      const made = adapted.adapter.record.prompt ? `, fine-tuned for "${adapted.adapter.record.prompt}"` : '';
      reporter.note(`adapter ${args.adapter}: ${adapted.layers} layers, rank ${adapted.adapter.rank}${made}`);
    }
    const model = await loadModelFolder(modelDir, runtime, {
      sessionOptions: { unet: unetOptions },
      unet: adapted?.session,
    });
    for (const n of model.schedulerNotes) reporter.note(n);
    return {
      runtime,
      model,
      adapter: adapted?.adapter ?? null,
      async close() {
        await model.release().catch(() => {});
        await adapted?.session.release().catch(() => {}); // the loader never releases a UNet it was given
        await runtime.close().catch(() => {});
      },
    };
  } catch (err) {
    await adapted?.session.release().catch(() => {});
    await runtime.close().catch(() => {});
    throw err;
  }
}

/** An option given twice arrives as an array: the last one wins (except for options meant to repeat). */
export function lastValues<T>(argv: T, repeatable: readonly string[] = []): T {
  const out: Record<string, unknown> = { ...(argv as Record<string, unknown>) };
  for (const [k, v] of Object.entries(out))
    if (Array.isArray(v) && k !== '_' && !repeatable.includes(k)) out[k] = v[v.length - 1];
  return out as T;
}

/** Runs `fn` with an AbortSignal that Ctrl-C triggers (the job stops at its next step and cleans up). */
export async function withSigint<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const onSigint = (): void => abort.abort();
  process.once('SIGINT', onSigint);
  try {
    return await fn(abort.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}
