/**
 * Test support: builder-made model folders (the project's deterministic builder, `tiny` preset: VAE factor 8,
 * 4 latent channels, cross-attention UNet at toy widths) in a temporary folder, loaded on the CPU provider.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModelFolder, type CreateModelOptions } from '../../src/models/builder/folder.js';
import { loadModelFolder } from '../../src/models/loader.js';
import type { StableDiffusionModel } from '../../src/models/types.js';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { float32, type Tensor } from '../../src/tensor.js';

export interface TinySetup {
  root: string;
  runtime: Runtime;
  /** Builds (once per name) and loads a tiny model folder. */
  model(name: string, options?: CreateModelOptions): Promise<StableDiffusionModel>;
  folder(name: string): string;
  close(): Promise<void>;
}

export async function tinySetup(): Promise<TinySetup> {
  const root = mkdtempSync(join(tmpdir(), 'vidprior-pipeline-'));
  const runtime = await openRuntime({ ep: 'cpu' });
  const loaded: StableDiffusionModel[] = [];
  const built = new Set<string>();
  return {
    root,
    runtime,
    folder: (name) => join(root, name),
    async model(name, options = {}) {
      const dir = join(root, name);
      if (!built.has(name)) {
        await createModelFolder(dir, 'tiny', { seed: 0, opset: 17, ...options });
        built.add(name);
      }
      const m = await loadModelFolder(dir, runtime);
      loaded.push(m);
      return m;
    },
    async close() {
      for (const m of loaded) await m.release();
      await runtime.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** A deterministic RGB frame [3,H,W] in [-1,1]: smooth gradients plus a pattern that depends on `seed`. */
export function testFrame(width: number, height: number, seed = 0): Tensor<'float32'> {
  const data = new Float32Array(3 * width * height);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const v = Math.sin((x + 3 * seed) * 0.21 + c) * 0.5 + Math.cos((y - seed) * 0.17 * (c + 1)) * 0.4;
        data[c * width * height + y * width + x] = Math.max(-1, Math.min(1, v));
      }
    }
  }
  return float32([3, height, width], data);
}
