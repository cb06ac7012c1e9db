/**
 * The only module that reads the environment. Everything else receives these values as arguments.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface Config {
  /** Where the embedded default model and other caches live. */
  cacheDir: string;
  /** Default data folder of `vidprior serve` (jobs, adapters). */
  dataDir: string;
  /** Default execution provider when a command does not say. */
  ep: 'auto' | 'cuda' | 'webgpu' | 'cpu';
  /** ffmpeg / ffprobe executables. */
  ffmpeg: string;
  ffprobe: string;
  /** The Hugging Face hub `models pull` talks to (HF_ENDPOINT, default https://huggingface.co). */
  hfEndpoint: string;
  /** The hub token (HF_TOKEN), else the file huggingface_hub's login writes (HF_TOKEN_PATH, $HF_HOME/token). */
  hfToken?: string;
  hfTokenPath: string;
  /** HF_HUB_OFFLINE: use the hub cache only, never the network. */
  hfOffline: boolean;
  /** Threads for the CPU provider (0 = ORT's default). */
  cpuThreads: number;
  /**
   * VIDPRIOR_UNET_VARIANT: the UNet graph inference runs on WebGPU instead of the default (a name of
   * src/models/unet-variants.ts, e.g. 'original' for the plain graph, 'fused-geglu-fp16'); checked where used.
   */
  unetVariant?: string;
  /** True when stderr is a terminal that wants colour and progress bars. */
  interactive: boolean;
  /** Set by CI=true: skip things that need a human. */
  ci: boolean;
  /** The daemon `vidprior submit` / `vidprior jobs` talk to, and its token (VIDPRIOR_URL, VIDPRIOR_TOKEN). */
  daemonUrl: string;
  daemonToken?: string;
  /**
   * The Hugging Face hub cache (models--owner--name/snapshots/<rev>/…): $HF_HUB_CACHE, else $HF_HOME/hub, else
   * ~/.cache/huggingface/hub, as huggingface_hub resolves it. Models found there are used by repo id.
   */
  hfHubCache: string;
  /** GiB a training step may use (VIDPRIOR_MEMORY_LIMIT_GB), e.g. the GPU's memory; unset: no limit on GPUs. */
  memoryLimitGb?: number;
}

let cached: Config | null = null;

export function config(): Config {
  if (cached) return cached;
  const env = process.env;
  const xdgCache = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  const xdgData = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  const ep = (env.VIDPRIOR_EP ?? 'auto').toLowerCase();
  cached = {
    cacheDir: env.VIDPRIOR_CACHE_DIR || join(xdgCache, 'vidprior'),
    dataDir: env.VIDPRIOR_DATA_DIR || join(xdgData, 'vidprior'),
    ep: (['auto', 'cuda', 'webgpu', 'cpu'].includes(ep) ? ep : 'auto') as Config['ep'],
    ffmpeg: env.VIDPRIOR_FFMPEG || 'ffmpeg',
    ffprobe: env.VIDPRIOR_FFPROBE || 'ffprobe',
    hfEndpoint: (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, ''),
    hfToken: env.HF_TOKEN || undefined,
    hfTokenPath: env.HF_TOKEN_PATH || join(env.HF_HOME || join(xdgCache, 'huggingface'), 'token'),
    hfOffline: ['1', 'on', 'yes', 'true'].includes((env.HF_HUB_OFFLINE ?? '').toLowerCase()),
    cpuThreads: Number.parseInt(env.VIDPRIOR_CPU_THREADS ?? '0', 10) || 0,
    unetVariant: env.VIDPRIOR_UNET_VARIANT || undefined,
    interactive: Boolean(process.stderr.isTTY) && !env.NO_COLOR && env.CI !== 'true',
    ci: env.CI === 'true',
    daemonUrl: env.VIDPRIOR_URL || 'ws://127.0.0.1:8765/',
    daemonToken: env.VIDPRIOR_TOKEN || undefined,
    hfHubCache: env.HF_HUB_CACHE || join(env.HF_HOME || join(xdgCache, 'huggingface'), 'hub'),
    memoryLimitGb: Number(env.VIDPRIOR_MEMORY_LIMIT_GB) > 0 ? Number(env.VIDPRIOR_MEMORY_LIMIT_GB) : undefined,
  };
  return cached;
}

/** Tests override single values without touching process.env. */
export function overrideConfig(partial: Partial<Config>): void {
  cached = { ...config(), ...partial };
}
