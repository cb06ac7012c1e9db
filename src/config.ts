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
  /** Threads for the CPU provider (0 = ORT's default). */
  cpuThreads: number;
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
    cpuThreads: Number.parseInt(env.VIDPRIOR_CPU_THREADS ?? '0', 10) || 0,
    interactive: Boolean(process.stderr.isTTY) && !env.NO_COLOR && env.CI !== 'true',
    ci: env.CI === 'true',
    daemonUrl: env.VIDPRIOR_URL || 'ws://127.0.0.1:8765/',
    daemonToken: env.VIDPRIOR_TOKEN || undefined,
    hfHubCache: env.HF_HUB_CACHE || join(env.HF_HOME || join(xdgCache, 'huggingface'), 'hub'),
  };
  return cached;
}

/** Tests override single values without touching process.env. */
export function overrideConfig(partial: Partial<Config>): void {
  cached = { ...config(), ...partial };
}
