/**
 * The model the daemon serves: loaded once, on the first job that needs it, and kept (sessions live in the
 * runtime's worker thread, so inference never blocks the event loop). A job may name another model that
 * `list_models` offers (`params.model`): the queue selects it before the job runs, which lets the current one
 * go first (one model on the device at a time). Adapters are the LoRA files of the data dir's adapters/
 * folder and of finished training jobs.
 */
import { SD1_WORK_MODEL, workModelOf, type WorkModel } from './frames.js';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createAdaptedUnet } from '../../src/training/adapted-unet.js';
import {
  type StyleLoras,
  loadStyledComponent,
  openStyledSession,
  readStyleLoras,
  styleRecord,
  touches,
} from '../../src/models/lora/styled.js';
import { createSessionFromModel } from '../../src/models/session-from-model.js';
import { loadModel } from '../../src/onnx/external-data.js';
import type { Model } from '../../src/onnx/ir.js';
import type { Session } from '../../src/runtime/types.js';
import { VidpriorError } from '../../src/errors.js';
import { openRuntime, type ExecutionProviderChoice, type Runtime } from '../../src/runtime/index.js';
import { loadModelFolder } from '../../src/models/loader.js';
import { inferenceUnetVariant, openInferenceUnet } from '../../src/models/inference-unet.js';
import type { UnetVariant } from '../../src/models/unet-variants.js';
import { availableModels } from '../../src/models/resolve/catalog.js';
import {
  EMBEDDED_MODEL,
  type ModelRef,
  type ResolveOptions,
  identifyModel,
  prepareModel,
} from '../../src/models/resolve/resolve.js';
import type { StableDiffusionModel } from '../../src/models/types.js';
import type { AdapterInfo, ModelInfo } from '../../protocol/messages.js';
import { ADAPTER_NAME, type StyleLoraParam } from '../../protocol/params.js';

export const EMBEDDED_MODEL_NAME = EMBEDDED_MODEL;

const KIND_NAMES: Record<ModelRef['kind'], string> = {
  embedded: 'embedded model',
  onnx: 'ONNX folder',
  diffusers: 'diffusers folder',
  checkpoint: 'checkpoint',
};

export interface ModelHostOptions {
  /**
   * The model (src/models/resolve: an ONNX folder, a checkpoint or diffusers folder converted on first load, a
   * repo in the Hugging Face cache); absent = the embedded default model.
   */
  model?: ModelRef;
  /** How a checkpoint or diffusers folder is converted (--model-config, --dtype). */
  resolve?: Omit<ResolveOptions, 'onNote' | 'onProgress'>;
  /** Makes (or finds in the cache) the embedded default model and returns its folder. */
  embeddedDefault: () => Promise<string>;
  ep: ExecutionProviderChoice;
  cpuThreads?: number;
  /**
   * The plain UNet runs as the inference variant chosen for the provider (src/models/inference-unet.ts) when a
   * cache dir is given: `unetVariant` overrides the default; variants go to the cache dir if the model folder
   * is read-only. Without one, the folder's graph runs as it is.
   */
  cacheDir?: string;
  unetVariant?: UnetVariant;
  /** The data dir's adapters/ folder. */
  adaptersDir: string;
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
  /**
   * The one UNet session kept on the device: the plain one (key '') or one with an adapter merged in (key
   * `<name>@<mtime>`). Only one at a time, and none while training, so an SD 1.5 UNet (3.4 GB) is never held
   * twice: switching between plain and adapted jobs reloads it from disk instead.
   */
  private resident: { key: string; session: Session } | null = null;
  /** The model jobs run on now: the default (opts.model) or one a job selected. */
  private current: ModelRef | undefined;
  /** A text encoder with style LoRAs merged in, kept like the UNet for the next job with the same LoRAs. */
  private residentText: { key: string; session: Session } | null = null;

  constructor(private readonly opts: ModelHostOptions) {
    this.current = opts.model;
  }

  /** The name of the model in use (what `list_models` calls it). */
  get name(): string {
    return this.current?.display ?? EMBEDDED_MODEL_NAME;
  }

  private get defaultName(): string {
    return this.opts.model?.display ?? EMBEDDED_MODEL_NAME;
  }

  /** Checks that a job's `model` parameter names a model `list_models` offers (E_NOT_FOUND otherwise). */
  async check(name: string | undefined): Promise<void> {
    if (name === undefined || name === this.defaultName || name === this.name) return;
    if (!(await availableModels()).some((m) => m.name === name)) {
      throw new VidpriorError('E_NOT_FOUND', `no model ${JSON.stringify(name)} among those list_models offers`, {
        model: name,
      });
    }
  }

  /**
   * Makes `name` (absent: the default model) the model jobs run on. Switching releases the current model
   * first; the new one loads (converting a checkpoint on its first use) with the next `get()`.
   */
  async select(name: string | undefined): Promise<void> {
    const wanted = name === undefined || name === this.defaultName ? this.opts.model : identifyModel(name);
    if ((wanted?.display ?? EMBEDDED_MODEL_NAME) === this.name) return;
    await this.close();
    this.current = wanted?.kind === 'embedded' ? undefined : wanted;
    this.opts.log?.(`model selected: ${this.name}`);
  }

  /** The loaded model's working-size rule and memory facts on its provider, or SD 1.x's while none is loaded. */
  get workModel(): WorkModel {
    return this.loaded ? workModelOf(this.loaded.model, this.loaded.runtime.decision.ep) : SD1_WORK_MODEL;
  }

  /** The provider in use once loaded, else the one asked for. */
  get ep(): string {
    return this.loaded?.runtime.decision.ep ?? this.opts.ep;
  }

  /** The model, loading it on first use. A failed load is retried by the next job. */
  async get(): Promise<LoadedModel> {
    if (this.loaded) return this.loaded;
    this.loading ??= this.load().then(
      (m) => {
        this.loaded = m;
        return m;
      },
      (err: unknown) => {
        this.loading = null;
        throw err;
      },
    );
    return this.loading;
  }

  private async load(): Promise<LoadedModel> {
    const dir = this.current
      ? (await prepareModel(this.current, { ...this.opts.resolve, onNote: this.opts.log })).dir
      : await this.opts.embeddedDefault();
    const runtime = await openRuntime({ ep: this.opts.ep, cpuThreads: this.opts.cpuThreads });
    this.opts.log?.(`execution provider: ${runtime.decision.ep} (${runtime.decision.reason})`);
    let plain: Session | null = null;
    try {
      // The host owns the UNet session (the loader reads its inputs and outputs but never releases it), so it
      // can let it go for training and bring it back for the next stylize job.
      plain = await this.openPlainUnet(runtime, dir);
      const model = await loadModelFolder(dir, runtime, { unet: plain });
      this.resident = { key: '', session: plain };
      this.opts.log?.(`model loaded: ${this.name}`);
      return { runtime, model, dir };
    } catch (err) {
      await plain?.release().catch(() => {});
      await runtime.close().catch(() => {});
      throw err;
    }
  }

  /** The default model first, then the others vidprior can offer (src/models/resolve/catalog.ts). */
  async models(): Promise<ModelInfo[]> {
    const model = this.opts.model;
    const out: ModelInfo[] = [
      {
        name: this.defaultName,
        ...(model ? { path: model.input ?? model.path } : {}),
        default: true,
        loaded: this.loaded !== null && this.name === this.defaultName,
        description: model
          ? `Stable Diffusion 1.x ${KIND_NAMES[model.kind]} given with --model`
          : 'tiny model with random weights built by vidprior (for tests; real use: serve --model <checkpoint, diffusers folder, ONNX folder or hub id>)',
      },
    ];
    for (const m of await availableModels().catch(() => [])) {
      if (m.name === this.defaultName) continue;
      out.push({
        name: m.name,
        default: false,
        loaded: this.loaded !== null && this.name === m.name,
        description: `${m.description} [${m.origin}]`.slice(0, 1000),
      });
    }
    return out;
  }

  /** Adapter files: `<adapters>/<name>.safetensors` (training jobs put theirs there too). */
  async adapters(): Promise<AdapterInfo[]> {
    const out: AdapterInfo[] = [];
    let names: string[] = [];
    try {
      names = await readdir(this.opts.adaptersDir);
    } catch {
      return out;
    }
    for (const file of names.sort()) {
      if (!file.endsWith('.safetensors')) continue;
      const name = file.slice(0, -'.safetensors'.length);
      if (!ADAPTER_NAME.test(name)) continue;
      const st = await stat(join(this.opts.adaptersDir, file)).catch(() => null);
      if (!st?.isFile()) continue;
      // The sidecar written by the training job that made it, if any.
      const about = await readFile(join(this.opts.adaptersDir, `${name}.json`), 'utf8').then(
        (t) => JSON.parse(t) as Record<string, unknown>,
        () => ({}) as Record<string, unknown>,
      );
      out.push({
        name,
        bytes: st.size,
        created_at: typeof about.created_at === 'string' ? about.created_at : st.mtime.toISOString(),
        ...(typeof about.job === 'string' ? { job: about.job } : {}),
        ...(typeof about.prompt === 'string' ? { prompt: about.prompt.slice(0, 4000) } : {}),
      });
    }
    return out;
  }

  /** The file of adapter `name`, or E_NOT_FOUND. */
  async adapterPath(name: string): Promise<string> {
    const path = join(this.opts.adaptersDir, `${name}.safetensors`);
    const st = await stat(path).catch(() => null);
    if (!st?.isFile())
      throw new VidpriorError('E_NOT_FOUND', `no adapter ${JSON.stringify(name)} in ${this.opts.adaptersDir}`, {
        adapter: name,
      });
    return path;
  }

  /** A job's style LoRAs, read from their files (by name from the adapters folder, or by path); null for none. */
  async styles(loras: StyleLoraParam[] | undefined): Promise<StyleLoras | null> {
    if (!loras?.length) return null;
    const specs = [];
    for (const l of loras) specs.push({ path: l.path ?? (await this.adapterPath(l.name!)), weight: l.weight });
    return readStyleLoras(specs);
  }

  /**
   * The UNet to run: the plain one, or one with style LoRAs and/or adapter `name` merged into its weights
   * (src/models/lora/merge.ts, src/training/adapted-unet.ts) so it runs at the base model's speed. The session
   * stays resident until another one is asked for (jobs of one shot tend to use the same adapter).
   */
  async unet(name?: string, styles?: StyleLoras | null): Promise<Session> {
    const { runtime, dir } = await this.get();
    const path = name ? await this.adapterPath(name) : null;
    const styled = touches(styles, 'unet');
    const key = [path ? `${name}@${(await stat(path)).mtimeMs}` : '', styled ? styleKey(styles!) : ''].join('|');
    if (this.resident?.key === key) return this.resident.session;
    await this.releaseUnet();
    const base = styled ? (await loadStyledComponent(dir, 'unet', styles!, runtime)).model : undefined;
    const session = path
      ? (await createAdaptedUnet(runtime, dir, path, { label: `unet+${name}`, base })).session
      : base
        ? await createSessionFromModel(runtime, base, { label: 'unet+lora' })
        : await this.openPlainUnet(runtime, dir);
    this.resident = { key, session };
    return session;
  }

  /** The text encoder to run: the model's, or one with the style LoRAs merged in (kept for the next job). */
  async textEncoder(styles?: StyleLoras | null): Promise<Session> {
    const { runtime, dir, model } = await this.get();
    if (!touches(styles, 'text_encoder')) return model.textEncoder;
    const key = styleKey(styles!);
    if (this.residentText?.key === key) return this.residentText.session;
    await this.residentText?.session.release().catch(() => {});
    this.residentText = null;
    const session = await openStyledSession(runtime, dir, 'text_encoder', styles!);
    this.residentText = { key, session };
    return session;
  }

  /** What fine-tuning on top of style LoRAs trains on (the UNet with them merged) and records about them. */
  async baseUnet(
    styles: StyleLoras | null,
  ): Promise<{ load: () => Promise<Model>; record: Record<string, unknown> } | undefined> {
    if (!styles) return undefined;
    const { dir, runtime } = await this.get();
    return {
      load: async () =>
        touches(styles, 'unet')
          ? (await loadStyledComponent(dir, 'unet', styles, runtime)).model
          : loadModel(join(dir, 'unet', 'model.onnx')),
      record: { styleLoras: styleRecord(styles) },
    };
  }

  /** The model's own UNet for inference: the provider's inference variant, the plain graph as its fallback. */
  private async openPlainUnet(runtime: Runtime, dir: string): Promise<Session> {
    const path = join(dir, 'unet', 'model.onnx');
    const variant = inferenceUnetVariant(runtime.decision.ep, this.opts.unetVariant);
    if (variant === 'original' || !this.opts.cacheDir) return runtime.createSession(path, { label: 'unet' });
    const unet = await openInferenceUnet(runtime, path, {
      variant,
      cacheDir: this.opts.cacheDir,
      onNote: this.opts.log,
    });
    return unet.session;
  }

  /** Lets the resident UNet go (training builds its own graph over the same weights). */
  async releaseUnet(): Promise<void> {
    const r = this.resident;
    this.resident = null;
    await r?.session.release().catch(() => {});
  }

  /** Where a training job publishes adapter `name` (replacing an older one of the same name). */
  adapterDestination(name: string): string {
    return join(this.opts.adaptersDir, `${name}.safetensors`);
  }

  async close(): Promise<void> {
    await this.releaseUnet();
    await this.residentText?.session.release().catch(() => {});
    this.residentText = null;
    const m = this.loaded ?? (this.loading ? await this.loading.catch(() => null) : null);
    this.loaded = null;
    this.loading = null;
    if (m) {
      await m.model.release().catch(() => {});
      await m.runtime.close().catch(() => {});
    }
  }
}

/** Identifies a set of style LoRAs by content and weight (a file replaced under the same name is a new set). */
function styleKey(styles: StyleLoras): string {
  return styles.loras.map((l) => `${l.file.sha256}:${l.weight}`).join(',');
}
