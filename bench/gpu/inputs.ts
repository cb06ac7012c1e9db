/**
 * Phase a of bench/gpu/session.sh: what the GPU session measures on, made on the machine itself (weights are
 * never carried: SD 1.5 is 4.3 GB): the preset's model folder with seeded random weights (float32, external
 * data) in the bench models dir (`<models>/<preset>-float32`, where bench/common.ts's benchModelDir looks,
 * so the training bench finds it too), and `--count` test frames of `--size`² pixels (PNG, a moving pattern).
 * Prints one JSON line (also appended to --jsonl) with the times and sizes.
 *
 *   node dist/bench/gpu/inputs.js --preset sd15 --models .cache/bench-models --frames /tmp/frames --count 30
 */
import { appendFile, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeFramePng } from '../../src/io/frames.js';
import { float32 } from '../../src/tensor.js';
import { benchModelDir, round } from '../common.js';

function option(args: string[], name: string, fallback?: string): string {
  const k = args.indexOf(name);
  const v = k >= 0 ? args[k + 1] : fallback;
  if (v === undefined) throw new Error(`${name} is required`);
  return v;
}

/** Bytes of the files under `dir` (one level of subfolders: the model folder's components). */
async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isFile()) total += (await stat(p)).size;
    else if (e.isDirectory()) total += await folderBytes(p);
  }
  return total;
}

/** Frame `i` of a smooth pattern that moves a little from frame to frame, [3,size,size] in [-1,1]. */
function frame(i: number, size: number): ReturnType<typeof float32> {
  const data = new Float32Array(3 * size * size);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++) {
        const v = Math.sin((x + 2 * i) * 0.031 + c) * 0.6 + Math.cos((y - i) * 0.023 * (c + 1)) * 0.35;
        data[(c * size + y) * size + x] = Math.max(-1, Math.min(1, v));
      }
  return float32([3, size, size], data);
}

export async function main(args: string[]): Promise<void> {
  const preset = option(args, '--preset', 'tiny');
  const models = option(args, '--models', join('.cache', 'bench-models'));
  const framesDir = option(args, '--frames');
  const count = Number(option(args, '--count', '30'));
  const size = Number(option(args, '--size', '512'));
  const jsonl = args.includes('--jsonl') ? option(args, '--jsonl') : null;
  const log = (line: string): void => {
    process.stderr.write(`inputs: ${line}\n`);
  };
  let t0 = performance.now();
  const dir = await benchModelDir({ ep: 'cpu', preset, dtype: 'float32', quick: false, modelsDir: models, log });
  const buildSeconds = round((performance.now() - t0) / 1000, 3);
  t0 = performance.now();
  await mkdir(framesDir, { recursive: true });
  for (let i = 0; i < count; i++)
    await writeFramePng(join(framesDir, `frame-${String(i).padStart(4, '0')}.png`), frame(i, size));
  const record = {
    phase: 'inputs',
    preset,
    modelDir: dir,
    modelBytes: await folderBytes(dir),
    buildSeconds,
    frames: count,
    size,
    framesSeconds: round((performance.now() - t0) / 1000, 3),
  };
  log(JSON.stringify(record));
  if (jsonl) await appendFile(jsonl, `${JSON.stringify(record)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
