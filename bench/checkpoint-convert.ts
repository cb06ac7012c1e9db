/**
 * Child process of the checkpoint benchmark (bench/checkpoint.ts): converts one checkpoint through the
 * resolver, then resolves it again (the cached load), and prints JSON with both times and this process's
 * peak resident memory (VmHWM), so the parent measures the conversion alone.
 *
 *   node dist/bench/checkpoint-convert.js <checkpoint> <float32|float16> [<model-config dir>]
 *   (VIDPRIOR_CACHE_DIR set by the parent)
 */
import { readFileSync } from 'node:fs';
import { resolveModel } from '../src/models/resolve/resolve.js';

function peakRssBytes(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.memoryUsage().rss;
}

const [path, dtype, modelConfig] = process.argv.slice(2) as [string, 'float32' | 'float16', string | undefined];
const t0 = performance.now();
const first = await resolveModel(path, { dtype, modelConfig });
const convertSeconds = (performance.now() - t0) / 1000;
const peakAfterConvert = peakRssBytes();
const t1 = performance.now();
const again = await resolveModel(path, { dtype, modelConfig });
const cachedSeconds = (performance.now() - t1) / 1000;
process.stdout.write(
  `${JSON.stringify({
    dir: first.dir,
    converted: first.converted,
    reused: !again.converted && again.dir === first.dir,
    convertSeconds,
    cachedSeconds,
    peakRssBytes: peakAfterConvert,
    bytes: first.conversion?.bytes,
  })}\n`,
);
