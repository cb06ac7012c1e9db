/**
 * What every model command starts with: the model folder, the runtime, the loaded model (with an adapter
 * merged into its UNet when asked). `close()` releases all of it; the runtime must be closed before the
 * process exits (an exit during an ORT run aborts the process).
 */
import { config } from '../../src/config.js';
import { DEFAULT_MODEL_NOTE, ensureDefaultModel } from '../../src/models/builder/default-model.js';
import { readModelFolder } from '../../src/models/folder.js';
import { loadModelFolder } from '../../src/models/loader.js';
import type { StableDiffusionModel } from '../../src/models/types.js';
import { openRuntime } from '../../src/runtime/index.js';
import type { ExecutionProviderChoice, Runtime } from '../../src/runtime/types.js';
import type { Adapter } from '../../src/training/adapter.js';
import { type AdaptedUnet, createAdaptedUnet } from '../../src/training/adapted-unet.js';
import type { Reporter } from './output.js';

export interface ModelSession {
  runtime: Runtime;
  model: StableDiffusionModel;
  /** With an adapter: what it is (the model's UNet then has it merged in). */
  adapter: Adapter | null;
  close(): Promise<void>;
}

/**
 * 1. The model folder: the user's, or the embedded default (built on first use) with its note.
 * 2. The runtime, saying which execution provider it took and why.
 * 3. The model; with `adapter`, its UNet is the folder's with the adapter merged in, and the plain one is
 *    never loaded (SD 1.5's is 3.4 GB). On WebGPU the UNet's output stays on the GPU for the step graph.
 */
export async function openModelSession(
  args: { model?: string; ep: ExecutionProviderChoice; adapter?: string },
  reporter: Reporter,
): Promise<ModelSession> {
  let modelDir = args.model;
  if (!modelDir) {
    modelDir = await ensureDefaultModel((dir) => reporter.note(`building the embedded default model in ${dir} (once)`));
    reporter.note(DEFAULT_MODEL_NOTE);
  }
  await readModelFolder(modelDir); // a missing file is named before the runtime starts
  const runtime = await openRuntime({ ep: args.ep, cpuThreads: config().cpuThreads });
  reporter.note(`execution provider: ${runtime.decision.ep} (${runtime.decision.reason})`);
  reporter.progress({ event: 'provider', ep: runtime.decision.ep, reason: runtime.decision.reason });
  let adapted: AdaptedUnet | null = null;
  try {
    const unetOptions = runtime.decision.ep === 'webgpu' ? { keepOutputsOnGpu: true } : {};
    if (args.adapter) {
      adapted = await createAdaptedUnet(runtime, modelDir, args.adapter, unetOptions);
      const made = adapted.record.prompt ? `, fine-tuned for "${adapted.record.prompt}"` : '';
      const what = adapted.adapter
        ? `${adapted.layers} layers, rank ${adapted.adapter.rank}`
        : `full UNet delta, ${adapted.layers} weights`;
      reporter.note(`adapter ${args.adapter}: ${what}${made}`);
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
