/**
 * Choosing the execution provider, once per runtime (worker side). `auto` takes CUDA when its provider library
 * is installed and a probe session works, else WebGPU when a GPU adapter answers a probe session, else CPU;
 * the decision's reason says what was found and what was missing. An explicit `cuda` / `webgpu` that cannot
 * work is an E_EP_UNAVAILABLE error with a way out.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { VidpriorError } from '../errors.js';
import type { ExecutionProvider, ExecutionProviderChoice, ProviderDecision } from './types.js';

/** Creates (and runs once) a tiny session on `ep`; throws ORT's error when the provider cannot work. */
export type ProviderProbe = (ep: ExecutionProvider) => Promise<void>;

const CUDA_HOWTO =
  'onnxruntime-node downloads its CUDA provider in its own install step, which offline installs skip ' +
  '(npm ≥ 11 holds it back; ONNXRUNTIME_NODE_INSTALL=skip). With internet access and an NVIDIA GPU (CUDA 12) run ' +
  '`npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12 --foreground-scripts` (README, "CUDA")';

/** onnxruntime-node's folder of native libraries for this platform (found through require.resolve). */
export function ortBinaryDir(): string {
  const require = createRequire(import.meta.url);
  const entry = require.resolve('onnxruntime-node'); // …/onnxruntime-node/dist/index.js
  return join(dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

/** Path of the CUDA provider library that onnxruntime-node would load. */
export function cudaProviderLibrary(binDir = ortBinaryDir()): string {
  const name = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  return join(binDir, name);
}

/**
 * Linux only: whether the machine exposes a GPU device node. Without one, any Vulkan adapter Dawn finds is a
 * software rasteriser (Mesa lavapipe), which is slower than ORT's CPU provider, so `auto` must not take it.
 * Other systems have no such check (true).
 */
export function gpuDeviceNodes(): string[] {
  if (process.platform !== 'linux') return ['(not checked on this OS)'];
  const found: string[] = [];
  if (existsSync('/dev/dxg')) found.push('/dev/dxg'); // WSL2
  try {
    for (const name of readdirSync('/dev')) if (/^nvidia\d+$/.test(name)) found.push(`/dev/${name}`);
  } catch {
    /* no /dev: nothing found */
  }
  try {
    for (const name of readdirSync('/dev/dri')) if (name.startsWith('renderD')) found.push(`/dev/dri/${name}`);
  } catch {
    /* no /dev/dri */
  }
  return found;
}

export interface DecideInput {
  choice: ExecutionProviderChoice;
  probe: ProviderProbe;
  cudaLibrary?: string;
  gpuDevices?: string[];
}

export async function decideProvider(input: DecideInput): Promise<ProviderDecision> {
  const { choice, probe } = input;
  const cudaLib = input.cudaLibrary ?? cudaProviderLibrary();
  if (choice === 'cpu') return { ep: 'cpu', reason: 'CPU requested' };

  if (choice === 'cuda') {
    if (!existsSync(cudaLib)) {
      throw new VidpriorError(
        'E_EP_UNAVAILABLE',
        `the CUDA execution provider is not installed (${cudaLib} is missing). ${CUDA_HOWTO}.`,
        { ep: 'cuda', library: cudaLib },
      );
    }
    const err = await tryProbe(probe, 'cuda');
    if (err) {
      throw new VidpriorError(
        'E_EP_UNAVAILABLE',
        `the CUDA execution provider is installed but could not start: ${err}. ` +
          'It needs an NVIDIA GPU with a CUDA 12 driver and cuDNN 9 on the library path.',
        { ep: 'cuda', library: cudaLib },
      );
    }
    return { ep: 'cuda', reason: `CUDA requested; provider library ${cudaLib} works` };
  }

  if (choice === 'webgpu') {
    const err = await tryProbe(probe, 'webgpu');
    if (err) {
      throw new VidpriorError(
        'E_EP_UNAVAILABLE',
        `the WebGPU execution provider found no usable GPU adapter: ${err}. ` +
          "On Linux it runs on Vulkan: install the GPU's Vulkan driver and loader (libvulkan1), or Mesa's " +
          'software driver lavapipe (mesa-vulkan-drivers ≥ 25) for testing.',
        { ep: 'webgpu' },
      );
    }
    return { ep: 'webgpu', reason: 'WebGPU requested; an adapter was found' };
  }

  // auto: CUDA, then WebGPU, then CPU; collect why each one was passed over.
  const passed: string[] = [];
  if (existsSync(cudaLib)) {
    const err = await tryProbe(probe, 'cuda');
    if (!err) return { ep: 'cuda', reason: `CUDA provider library found (${cudaLib}) and it works` };
    passed.push(`CUDA provider installed but failed to start (${err})`);
  } else {
    passed.push('CUDA provider not installed (see README "CUDA")');
  }
  const devices = input.gpuDevices ?? gpuDeviceNodes();
  if (devices.length === 0) {
    passed.push(
      'WebGPU skipped: no GPU device (/dev/dri/renderD*, /dev/nvidia*, /dev/dxg), so a Vulkan adapter ' +
        'could only be a slow software one; pass --ep webgpu to use it anyway',
    );
  } else {
    const err = await tryProbe(probe, 'webgpu');
    if (!err) return { ep: 'webgpu', reason: `${passed.join('; ')}; WebGPU adapter found (GPU device ${devices[0]})` };
    passed.push(`no WebGPU adapter (${err})`);
  }
  return { ep: 'cpu', reason: `${passed.join('; ')}: using the CPU` };
}

async function tryProbe(probe: ProviderProbe, ep: ExecutionProvider): Promise<string | null> {
  try {
    await probe(ep);
    return null;
  } catch (err) {
    return shortOrtMessage(err instanceof Error ? err.message : String(err));
  }
}

/** ORT messages start with a source location ("/onnxruntime_src/…cc:136 fn … was false."): keep the sentence. */
export function shortOrtMessage(message: string): string {
  const m = /was false\.\s*(.+)$/s.exec(message);
  return (m ? m[1]! : message).trim().replace(/\s+/g, ' ');
}
