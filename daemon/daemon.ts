/**
 * Puts the daemon together: job store and queue, model host, executors, and optionally the websocket server
 * and folder watchers. `vidprior serve`, `vidprior watch` and the tests all start it through here.
 */
import { totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import type { ExecutionProviderChoice } from '../src/runtime/types.js';
import { DEFAULT_LIMITS } from '../protocol/codec.js';
import { defaultPixelLimits } from '../src/io/image-header.js';
import type { JobExecutor } from './jobs/executor.js';
import type { SlurmTarget } from './jobs/farm-jobs.js';
import { readModelFolder } from '../src/models/folder.js';
import type { UnetVariant } from '../src/models/unet-variants.js';
import { type ResolveOptions, identifyModel } from '../src/models/resolve/resolve.js';
import { defaultExecutors } from './jobs/index.js';
import { JobStore } from './jobs/store.js';
import { ModelHost } from './jobs/model-host.js';
import { JobQueue } from './queue.js';
import { startServer, type RunningServer } from './server.js';
import { lockDataDir } from './data-lock.js';
import { FolderWatcher } from './watch.js';
import { PathPolicy } from './paths.js';
import { DEFAULT_UPLOAD_LIMITS, UploadStore, chunkBytesFor, type UploadLimits } from './uploads.js';

export interface Limits {
  maxMessageBytes: number;
  maxFrameBytes: number;
  maxFrames: number;
  /** Largest frame decoded (width × height, from its header); default from the machine's memory. */
  maxInputPixels: number;
  /** Largest frame the model works on (width × height after fitting); default from the machine's memory. */
  maxWorkingPixels: number;
}

export interface DaemonOptions {
  dataDir: string;
  /** The model to serve (see src/models/resolve); absent = the embedded default. */
  model?: string;
  /** How a checkpoint or diffusers folder is converted (`--model-config`, `--dtype`). */
  modelResolve?: Omit<ResolveOptions, 'onNote' | 'onProgress'>;
  ep: ExecutionProviderChoice;
  cpuThreads?: number;
  /** Where optimized UNet graphs go when the model folder is read-only, and the variant asked for (see ModelHost). */
  cacheDir?: string;
  unetVariant?: UnetVariant;
  /** Makes or finds the embedded default model (a folder). */
  embeddedDefault: () => Promise<string>;
  /** Listen on a websocket (serve); absent for `vidprior watch` alone. */
  listen?: {
    host: string;
    port: number;
    token?: string;
    heartbeatMs?: number;
    /** Most websocket connections at once (default 64). */
    maxConnections?: number;
    /** Most bytes waiting to be sent to all clients together (default 256 MiB). */
    maxOutboxBytes?: number;
  };
  limits?: Partial<Limits>;
  /** Chunked uploads (websocket only): total size, count, and how long an untouched one is kept. */
  uploads?: Partial<Pick<UploadLimits, 'maxTotalBytes' | 'maxUploads' | 'ttlMs'>>;
  allowDirs?: string[];
  watch?: string[];
  /** How long files in a watched folder must keep their size before they are read (default 500 ms). */
  watchStableMs?: number;
  /**
   * Load the model right after start (in the background) rather than with the first job: the first job
   * starts sooner and `welcome.ep` names the provider in use. A `model` is identified (and an ONNX folder checked) before anything starts.
   */
  preload?: boolean;
  /** Replaces the executors (tests of the queue itself). */
  executors?: JobExecutor[];
  /** Hands `farm` jobs to this Slurm target (`serve --slurm`); without it the farm kind is unavailable. */
  slurm?: SlurmTarget;
  log?: (line: string) => void;
}

export interface Daemon {
  readonly queue: JobQueue;
  readonly server?: RunningServer;
  readonly watchers: FolderWatcher[];
  close(): Promise<void>;
}

export function packageVersion(): string {
  const require = createRequire(import.meta.url);
  for (const p of ['../package.json', '../../package.json']) {
    try {
      return (require(p) as { version: string }).version;
    } catch {
      /* next */
    }
  }
  return '0.0.0';
}

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const log = opts.log ?? (() => {});
  const dataDir = resolve(opts.dataDir);
  // One daemon per data dir: a second one would run the same jobs again.
  const lock = await lockDataDir(dataDir, log);
  try {
    const daemon = await startOnLockedDataDir(opts, dataDir, log);
    return {
      ...daemon,
      async close() {
        await daemon.close();
        await lock.release();
      },
    };
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function startOnLockedDataDir(
  opts: DaemonOptions,
  dataDir: string,
  log: (line: string) => void,
): Promise<Daemon> {
  // A model that is not there (or an ONNX folder that lacks a file) is an error now, not at the first job.
  const modelRef = opts.model ? identifyModel(opts.model) : undefined;
  if (modelRef?.kind === 'onnx') await readModelFolder(modelRef.path);
  const limits: Limits = { ...DEFAULT_LIMITS, ...defaultPixelLimits(totalmem()), ...opts.limits };
  // 1. The queue over the data dir; unfinished jobs of the last run resume.
  const store = new JobStore(dataDir);
  const model = new ModelHost({
    model: modelRef,
    resolve: opts.modelResolve,
    embeddedDefault: opts.embeddedDefault,
    ep: opts.ep,
    cpuThreads: opts.cpuThreads,
    cacheDir: opts.cacheDir,
    unetVariant: opts.unetVariant,
    adaptersDir: store.adaptersDir,
    log,
  });
  const executors = new Map(
    (opts.executors ?? defaultExecutors({ slurm: opts.slurm })).map((e) => [e.kind, e] as const),
  );
  // Paths clients may read: the allowed folders, the data dir and watched folders. Where output_dir may
  // write: the allowed folders, never into the data dir or a watched folder (they belong to jobs).
  const watched = (opts.watch ?? []).map((d) => resolve(d));
  const allowDirs = (opts.allowDirs ?? []).map((d) => resolve(d));
  const outputPaths = new PathPolicy(allowDirs, undefined, { exclude: [dataDir, ...watched], verb: 'write to' });
  const queue = new JobQueue(store, executors, model, log, outputPaths);
  await queue.start();

  // 2. Watched folders (their jobs go through the same queue).
  const watchers: FolderWatcher[] = [];
  try {
    for (const dir of opts.watch ?? [])
      watchers.push(await FolderWatcher.start(resolve(dir), queue, { ...limits, stableMs: opts.watchStableMs, log }));
  } catch (err) {
    await Promise.all(watchers.map((w) => w.close()));
    await queue.stop();
    throw err;
  }

  // 3. The websocket server.
  let server: RunningServer | undefined;
  let uploads: UploadStore | undefined;
  if (opts.listen) {
    try {
      uploads = await UploadStore.open(
        join(dataDir, 'uploads'),
        {
          ...DEFAULT_UPLOAD_LIMITS,
          maxUploadBytes: limits.maxFrameBytes,
          chunkBytes: chunkBytesFor(limits.maxMessageBytes),
          ...opts.uploads,
        },
        log,
      );
      server = await startServer({
        host: opts.listen.host,
        port: opts.listen.port,
        token: opts.listen.token,
        heartbeatMs: opts.listen.heartbeatMs ?? 15_000,
        maxConnections: opts.listen.maxConnections,
        maxOutboxBytes: opts.listen.maxOutboxBytes,
        limits,
        allowDirs: [dataDir, ...watched, ...allowDirs],
        outputPaths,
        queue,
        uploads,
        version: packageVersion(),
        log,
      });
    } catch (err) {
      await uploads?.close();
      await Promise.all(watchers.map((w) => w.close()));
      await queue.stop();
      await model.close();
      throw err;
    }
  }

  if (opts.preload) {
    model
      .get()
      .catch((err: unknown) =>
        log(`the model could not be loaded; jobs will fail until this is fixed: ${(err as Error).message}`),
      );
  }

  return {
    queue,
    server,
    watchers,
    async close() {
      await Promise.all(watchers.map((w) => w.close()));
      if (server) await server.close();
      else await queue.stop();
      await uploads?.close();
      await model.close();
    },
  };
}
