/**
 * `vidprior serve`: the long-lived daemon — websocket + MessagePack protocol (protocol/PROTOCOL.md), a
 * durable FIFO job queue on one GPU worker, and optionally watched folders. Stops cleanly on SIGINT/SIGTERM
 * (a running job stays `running` on disk and resumes at the next start; so does a job killed with SIGKILL).
 */
import type { CommandModule } from 'yargs';
import { config } from '../../src/config.js';
import { VidpriorError } from '../../src/errors.js';
import { ensureDefaultModel, DEFAULT_MODEL_NOTE } from '../../src/models/builder/default-model.js';
import type { ExecutionProviderChoice } from '../../src/runtime/types.js';
import { DEFAULT_LIMITS } from '../../protocol/codec.js';
import { startDaemon, type Daemon } from '../../daemon/daemon.js';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_OUTBOX_BYTES } from '../../daemon/server.js';
import { MODEL_OPTIONS, variantOverride } from './model-session.js';
import { SLURM_SERVE_OPTIONS, type SlurmServeArgs, slurmTargetFromArgs } from './farm-serve.js';

export interface DaemonArgs extends SlurmServeArgs {
  'data-dir'?: string;
  model?: string;
  'model-config'?: string;
  dtype?: string;
  ep?: string;
  watch?: string[];
  'max-frame-mb': number;
  'max-frames': number;
  'max-input-mp'?: number;
  'max-working-mp'?: number;
  json: boolean;
}

interface ServeArgs extends DaemonArgs {
  host: string;
  port: number;
  token?: string;
  'allow-dir'?: string[];
  'max-message-mb': number;
  'heartbeat-s': number;
  'max-connections': number;
  'max-outbox-mb': number;
}

const MB = 1024 * 1024;

/** Options shared by `serve` and `watch`. */
export function daemonOptions<T>(yargs: import('yargs').Argv<T>) {
  return yargs
    .option('data-dir', {
      type: 'string',
      describe: 'where jobs and adapters are kept (default: $VIDPRIOR_DATA_DIR or ~/.local/share/vidprior)',
    })
    .options(MODEL_OPTIONS)
    .option('ep', {
      type: 'string',
      choices: ['auto', 'cuda', 'webgpu', 'cpu'],
      describe: 'execution provider (default: $VIDPRIOR_EP or auto)',
    })
    .option('watch', {
      type: 'string',
      array: true,
      describe: 'also take jobs from sub-folders of this folder (job.json)',
    })
    .option('max-frame-mb', {
      type: 'number',
      default: DEFAULT_LIMITS.maxFrameBytes / MB,
      describe: 'largest frame (PNG/JPEG) accepted',
    })
    .option('max-frames', { type: 'number', default: DEFAULT_LIMITS.maxFrames, describe: 'most frames in one job' })
    .option('max-input-mp', {
      type: 'number',
      describe: "largest frame decoded, in megapixels (default: from this machine's memory)",
    })
    .option('max-working-mp', {
      type: 'number',
      describe: "largest frame the model works on, in megapixels (default: from this machine's memory)",
    })
    .option('json', { type: 'boolean', default: false, describe: 'log as JSON lines on stdout' })
    .options(SLURM_SERVE_OPTIONS);
}

/** A log line for people on stderr, or a JSON line on stdout. */
export function makeLog(json: boolean): (line: string) => void {
  return (line) => {
    if (json)
      process.stdout.write(`${JSON.stringify({ event: 'log', time: new Date().toISOString(), message: line })}\n`);
    else process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  };
}

export async function startFromArgs(
  argv: DaemonArgs,
  listen?: Parameters<typeof startDaemon>[0]['listen'],
  allowDirs: string[] = [],
  maxMessageMb?: number,
): Promise<Daemon> {
  const cfg = config();
  const log = makeLog(argv.json);
  for (const [name, v] of [
    ['--max-frame-mb', argv['max-frame-mb']],
    ['--max-frames', argv['max-frames']],
    ['--max-message-mb', maxMessageMb ?? 1],
    ['--max-input-mp', argv['max-input-mp'] ?? 1],
    ['--max-working-mp', argv['max-working-mp'] ?? 1],
  ] as const) {
    if (!(Number.isFinite(v) && v > 0))
      throw new VidpriorError('E_BAD_REQUEST', `${name} must be a positive number, got ${v}`, { [name]: v });
  }
  if (!argv.model) log(DEFAULT_MODEL_NOTE);
  const dataDir = argv['data-dir'] ?? cfg.dataDir;
  return startDaemon({
    dataDir,
    slurm: slurmTargetFromArgs(argv, dataDir),
    model: argv.model,
    modelResolve: { modelConfig: argv['model-config'], dtype: argv.dtype as 'float32' | 'float16' | undefined },
    ep: (argv.ep ?? cfg.ep) as ExecutionProviderChoice,
    cpuThreads: cfg.cpuThreads,
    cacheDir: cfg.cacheDir,
    unetVariant: variantOverride(),
    embeddedDefault: () => ensureDefaultModel((dir) => log(`building the embedded default model in ${dir}`)),
    listen,
    limits: {
      maxFrameBytes: Math.round(argv['max-frame-mb'] * MB),
      maxFrames: Math.round(argv['max-frames']),
      ...(maxMessageMb ? { maxMessageBytes: Math.round(maxMessageMb * MB) } : {}),
      ...(argv['max-input-mp'] ? { maxInputPixels: Math.round(argv['max-input-mp'] * 1e6) } : {}),
      ...(argv['max-working-mp'] ? { maxWorkingPixels: Math.round(argv['max-working-mp'] * 1e6) } : {}),
    },
    allowDirs,
    watch: argv.watch,
    preload: true,
    log,
  });
}

/** Runs until SIGINT/SIGTERM, then closes the daemon (the running job resumes next time). */
export async function runUntilSignal(daemon: Daemon, log: (line: string) => void): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log(`${signal}: stopping (a running job resumes at the next start)`);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await daemon.close();
}

export const serveCommand: CommandModule<object, ServeArgs> = {
  command: 'serve',
  describe: 'Run the daemon: websocket + MessagePack protocol, job queue, optional watched folders',
  builder: (yargs) =>
    daemonOptions(yargs)
      .option('host', {
        type: 'string',
        default: '127.0.0.1',
        describe: 'address to listen on; anything but loopback needs --token',
      })
      .option('port', { type: 'number', default: 8765, describe: 'TCP port (0 = any free port, printed at start)' })
      .option('token', {
        type: 'string',
        describe: 'shared secret clients send in hello, needed beyond loopback (default: $VIDPRIOR_TOKEN)',
      })
      .option('allow-dir', {
        type: 'string',
        array: true,
        describe:
          'folders local clients may name by path (frames, output_dir); the data dir and watched folders may be read, not written',
      })
      .option('max-message-mb', {
        type: 'number',
        default: DEFAULT_LIMITS.maxMessageBytes / MB,
        describe: 'largest websocket message',
      })
      .option('heartbeat-s', {
        type: 'number',
        default: 15,
        describe: 'ping interval; a client silent for one interval is dropped',
      })
      .option('max-connections', {
        type: 'number',
        default: DEFAULT_MAX_CONNECTIONS,
        describe: 'most websocket connections at once',
      })
      .option('max-outbox-mb', {
        type: 'number',
        default: DEFAULT_MAX_OUTBOX_BYTES / MB,
        describe: 'most data waiting for all clients together; past it the slowest readers are dropped',
      })
      .example('$0 serve', 'listen on ws://127.0.0.1:8765/ with the embedded default model')
      .example(
        '$0 serve --model ./sd15-onnx --ep webgpu --watch ~/vidprior-inbox',
        'a real model, and a watched folder',
      ) as never,
  handler: async (argv) => {
    const log = makeLog(argv.json);
    if (!(argv['heartbeat-s'] > 0))
      throw new VidpriorError('E_BAD_REQUEST', `--heartbeat-s must be positive, got ${argv['heartbeat-s']}`);
    if (!Number.isInteger(argv.port) || argv.port < 0 || argv.port > 65535)
      throw new VidpriorError('E_BAD_REQUEST', `--port must be 0–65535, got ${argv.port}`);
    if (!(Number.isInteger(argv['max-connections']) && argv['max-connections'] > 0))
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `--max-connections must be a positive integer, got ${argv['max-connections']}`,
      );
    if (!(argv['max-outbox-mb'] > 0))
      throw new VidpriorError('E_BAD_REQUEST', `--max-outbox-mb must be positive, got ${argv['max-outbox-mb']}`);
    const daemon = await startFromArgs(
      argv,
      {
        host: argv.host,
        port: argv.port,
        token: argv.token ?? config().daemonToken,
        heartbeatMs: argv['heartbeat-s'] * 1000,
        maxConnections: argv['max-connections'],
        maxOutboxBytes: Math.round(argv['max-outbox-mb'] * MB),
      },
      argv['allow-dir'] ?? [],
      argv['max-message-mb'],
    );
    const url = daemon.server!.url;
    if (argv.json) process.stdout.write(`${JSON.stringify({ event: 'listening', url, port: daemon.server!.port })}\n`);
    log(`vidprior daemon listening on ${url}${(argv.token ?? config().daemonToken) ? ' (token required)' : ''}`);
    await runUntilSignal(daemon, log);
  },
};
