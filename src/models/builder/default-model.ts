/**
 * The embedded default model: the builder's `tiny` preset with seed 0, built on first use into the cache
 * folder (config().cacheDir/models/<versioned name>) and reused afterwards. The folder name carries the
 * builder version and a hash of the config and build options, so a change to the builder or the preset
 * builds a fresh folder instead of reusing a stale one. Building is atomic (createModelFolder), and two
 * processes racing to build it both end up with a complete folder.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { config } from '../../config.js';
import { BUILDER_VERSION, preset } from './index.js';
import { createModelFolder } from './folder.js';

/** What the user is told whenever the embedded default runs. */
export const DEFAULT_MODEL_NOTE =
  'Using the embedded default model: its weights are random, so the output is not a real stylization; ' +
  'real use needs an SD 1.x model via --model (a checkpoint, a diffusers or ONNX folder, or a cached hub id).';

const DEFAULT_PRESET = 'tiny';
const DEFAULT_BUILD = { seed: 0, opset: 17, dtype: 'float32' as const };

/** The folder name of the default model for the current builder: `tiny-b<version>-<config hash>`. */
export function defaultModelName(): string {
  const key = JSON.stringify({ builder: BUILDER_VERSION, config: preset(DEFAULT_PRESET), ...DEFAULT_BUILD });
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 10);
  return `${DEFAULT_PRESET}-b${BUILDER_VERSION}-${hash}`;
}

/** The folder of the embedded default model, built on first use (about a second). */
export async function ensureDefaultModel(onBuild?: (dir: string) => void): Promise<string> {
  const parent = join(config().cacheDir, 'models');
  const dir = join(parent, defaultModelName());
  if (isComplete(dir)) return dir;
  await mkdir(parent, { recursive: true });
  onBuild?.(dir);
  try {
    // A folder without the marker is a leftover of an older vidprior (or a damaged one): replace it.
    await createModelFolder(dir, DEFAULT_PRESET, { ...DEFAULT_BUILD, externalData: false, overwrite: existsSync(dir) });
  } catch (err) {
    // Another process may have finished the same folder first: that one is as good as ours.
    if (!isComplete(dir)) throw err;
  }
  return dir;
}

/** A folder is only ever renamed into place complete; vidprior-model.json is written last before that. */
function isComplete(dir: string): boolean {
  return existsSync(join(dir, 'vidprior-model.json'));
}
