/**
 * The model the daemon serves: loaded once, on the first job that needs it, and kept (sessions live in the
 * runtime's worker thread, so inference never blocks the event loop). Adapters are the LoRA files of the
 * data dir's adapters/ folder and of finished training jobs.
 */
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModel, saveModel } from '../src/onnx/external-data.js';
import { findLoraTargets } from '../src/training/lora.js';
import { loadAdapter, mergeAdapter } from '../src/training/adapter.js';
import type { Session } from '../src/runtime/types.js';
import { VidpriorError } from '../src/errors.js';
import { openRuntime, type ExecutionProviderChoice, type Runtime } from '../src/runtime/index.js';
import { loadModelFolder } from '../src/models/loader.js';
import type { StableDiffusionModel } from '../src/models/types.js';
import type { AdapterInfo, ModelInfo } from '../protocol/messages.js';
import { ADAPTER_NAME } from '../protocol/params.js';

export const EMBEDDED_MODEL_NAME = 'embedded-default';

export interface ModelHostOptions {
  /** A diffusers ONNX folder; absent = the embedded default model. */
  modelDir?: string;
  /** Makes (or finds in the cache) the embedded default model and returns its folder. */
  embeddedDefault: () => Promise<string>;
  ep: ExecutionProviderChoice;
  cpuThreads?: number;
  /** The data dir's adapters/ folder. */
  adaptersDir: string;
  /** Scratch folder for UNets with an adapter merged in. */
  cacheDir: string;
  log?: (line: string) => void;
}

export interface LoadedModel {
  runtime: Runtime;
  model: StableDiffusionModel;
  dir: string;
}

export class ModelHost {
  private loading: Promise<LoadedModel> | null = null;
  private loaded: LoadedModel | null = null;
  /** The UNet with the last adapter used merged in (jobs of one shot tend to use the same adapter). */
  private adapted: { name: string; mtimeMs: number; session: Session } | null = null;

  constructor(private readonly opts: ModelHostOptions) {}

  get name(): string {
    return this.opts.modelDir ?? EMBEDDED_MODEL_NAME;
  }

  /** The provider in use once loaded, else the one asked for. */
  get ep(): string {
    return this.loaded?.runtime.decision.ep ?? this.opts.ep;
  }

  /** The model, loading it on first use. A failed load is retried by the next job. */
  async get(): Promise<LoadedModel> {
    if (this.loaded) return this.loaded;
    this.loading ??= this.load().then(
      (m) => { this.loaded = m; return m; },
      (err: unknown) => { this.loading = null; throw err; },
    );
    return this.loading;
  }

  private async load(): Promise<LoadedModel> {
    const dir = this.opts.modelDir ?? await this.opts.embeddedDefault();
    const runtime = await openRuntime({ ep: this.opts.ep, cpuThreads: this.opts.cpuThreads });
    this.opts.log?.(`execution provider: ${runtime.decision.ep} (${runtime.decision.reason})`);
    try {
      const model = await loadModelFolder(dir, runtime);
      this.opts.log?.(`model loaded: ${this.name}`);
      return { runtime, model, dir };
    } catch (err) {
      await runtime.close().catch(() => {});
      throw err;
    }
  }

  models(): ModelInfo[] {
    return [{
      name: this.name,
      ...(this.opts.modelDir ? { path: this.opts.modelDir } : {}),
      default: true,
      loaded: this.loaded !== null,
      description: this.opts.modelDir
        ? 'Stable Diffusion 1.x ONNX folder given with --model'
        : 'tiny model with random weights built by vidprior (for tests; real use needs an SD 1.x ONNX folder: serve --model DIR)',
    }];
  }

  /** Adapter files: `<adapters>/<name>.safetensors` (training jobs put theirs there too). */
  async adapters(): Promise<AdapterInfo[]> {
    const out: AdapterInfo[] = [];
    let names: string[] = [];
    try { names = await readdir(this.opts.adaptersDir); } catch { return out; }
    for (const file of names.sort()) {
      if (!file.endsWith('.safetensors')) continue;
      const name = file.slice(0, -'.safetensors'.length);
      if (!ADAPTER_NAME.test(name)) continue;
      const st = await stat(join(this.opts.adaptersDir, file)).catch(() => null);
      if (st?.isFile()) out.push({ name, created_at: st.mtime.toISOString(), bytes: st.size });
    }
    return out;
  }

  /** The file of adapter `name`, or E_NOT_FOUND. */
  async adapterPath(name: string): Promise<string> {
    const path = join(this.opts.adaptersDir, `${name}.safetensors`);
    const st = await stat(path).catch(() => null);
    if (!st?.isFile()) throw new VidpriorError('E_NOT_FOUND', `no adapter ${JSON.stringify(name)} in ${this.opts.adaptersDir}`, { adapter: name });
    return path;
  }

  /**
   * A UNet session with adapter `name` merged into its weights (W += α/r·A·B), so stylizing with an adapter
   * runs at the base model's speed. Kept until another adapter is asked for.
   */
  async unetWithAdapter(name: string): Promise<Session> {
    const path = await this.adapterPath(name);
    const mtimeMs = (await stat(path)).mtimeMs;
    if (this.adapted?.name === name && this.adapted.mtimeMs === mtimeMs) return this.adapted.session;
    const { runtime, dir } = await this.get();
    await this.adapted?.session.release().catch(() => {});
    this.adapted = null;
    const adapter = await loadAdapter(path);
    const unet = await loadModel(join(dir, 'unet', 'model.onnx'));
    const convs = [...adapter.weights.values()].some((w) => w.kind === 'conv');
    mergeAdapter(unet, findLoraTargets(unet, { convs }), adapter, `adapter ${name}`);
    // Through a file: a merged SD 1.5 UNet in float32 is over protobuf's 2 GB, saveModel puts weights beside it.
    const out = join(this.opts.cacheDir, 'unet-with-adapter');
    await rm(out, { recursive: true, force: true });
    await mkdir(out, { recursive: true });
    await saveModel(unet, join(out, 'model.onnx'));
    const session = await runtime.createSession(join(out, 'model.onnx'), { label: `unet+${name}` });
    this.adapted = { name, mtimeMs, session };
    return session;
  }

  async close(): Promise<void> {
    await this.adapted?.session.release().catch(() => {});
    this.adapted = null;
    const m = this.loaded ?? (this.loading ? await this.loading.catch(() => null) : null);
    this.loaded = null;
    this.loading = null;
    if (m) {
      await m.model.release().catch(() => {});
      await m.runtime.close().catch(() => {});
    }
  }
}
