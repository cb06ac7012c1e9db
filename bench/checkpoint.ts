/**
 * Checkpoint conversion: the SD 1.5-sized preset (`--quick`: the tiny one) written as a single-file float16
 * checkpoint with LDM keys (random weights, built on the fly in a temporary folder and deleted after), then
 * converted to ONNX by the resolver in a child process, once keeping float16 and once widening to float32.
 * Reports the child's peak RSS (VmHWM) as a ratio to the checkpoint's size (streaming keeps it well under
 * one copy of the weights), the conversion time as a ratio to reading and hashing the file once in the same
 * run, and the time of the second, cached resolve.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { preset } from '../src/models/builder/presets.js';
import { syntheticTokenizer } from '../src/models/builder/tokenizer-files.js';
import { writeDiffusersFolder, writeLdmCheckpoint } from '../src/models/builder/write-checkpoint.js';
import { overrideConfig, config } from '../src/config.js';
import { fileHash } from '../src/models/resolve/model-cache.js';
import { type BenchModule, hostInfo } from './common.js';

const CHILD = fileURLToPath(new URL('./checkpoint-convert.js', import.meta.url));
const MiB = 2 ** 20;

export const checkpointBench: BenchModule = {
  name: 'checkpoint',
  describe: 'SD 1.5-sized float16 single-file checkpoint → ONNX: peak RSS and time (--quick: tiny preset)',
  async run(ctx) {
    const presetName = ctx.quick ? 'tiny' : 'sd15';
    const work = await mkdtemp(join(tmpdir(), 'vidprior-bench-checkpoint-'));
    const savedCache = config().cacheDir;
    try {
      // 1. The checkpoint (streamed to disk one tensor at a time).
      const cfg = preset(presetName);
      const path = join(work, `${presetName}-fp16.safetensors`);
      const t0 = performance.now();
      await writeLdmCheckpoint(path, cfg, { seed: 0, dtype: 'float16' });
      const writeSeconds = (performance.now() - t0) / 1000;
      // A single file holds no tokenizer; the tiny preset also breaks SD 1.x conventions (VAE GroupNorm 8):
      // its configs come as --model-config, SD 1.5's tokenizer as a tokenizer/ folder beside the file.
      let modelConfig: string[] = [];
      if (presetName === 'sd15') {
        const tok = syntheticTokenizer(cfg.text_encoder.vocab_size);
        await mkdir(join(work, 'tokenizer'));
        await writeFile(join(work, 'tokenizer', 'vocab.json'), JSON.stringify(tok.vocab));
        await writeFile(join(work, 'tokenizer', 'merges.txt'), tok.merges);
      } else {
        await writeDiffusersFolder(join(work, 'configs'), cfg, { seed: 0 });
        modelConfig = [join(work, 'configs')];
      }
      const checkpointBytes = (await stat(path)).size;
      ctx.log(`wrote ${path}: ${(checkpointBytes / MiB).toFixed(0)} MiB in ${writeSeconds.toFixed(1)} s`);

      // 2. Baseline: reading and hashing the file once (a cache of its own, so the child hashes it too).
      overrideConfig({ cacheDir: join(work, 'baseline-cache') });
      const t1 = performance.now();
      await fileHash(path);
      const hashSeconds = (performance.now() - t1) / 1000;
      overrideConfig({ cacheDir: savedCache });

      // 3. Conversions, each in a fresh process with an empty cache.
      const runs: Record<string, unknown> = {};
      for (const dtype of ['float16', 'float32'] as const) {
        const cacheDir = join(work, `cache-${dtype}`);
        const r = spawnSync(process.execPath, [CHILD, path, dtype, ...modelConfig], {
          env: { ...process.env, VIDPRIOR_CACHE_DIR: cacheDir },
          encoding: 'utf8',
          maxBuffer: 16 * MiB,
        });
        if (r.status !== 0) throw new Error(`conversion (${dtype}) failed: ${r.stderr}`);
        const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
          convertSeconds: number;
          cachedSeconds: number;
          peakRssBytes: number;
          reused: boolean;
        };
        runs[dtype] = {
          convertSeconds: out.convertSeconds,
          convertPerHash: out.convertSeconds / hashSeconds,
          cachedResolveSeconds: out.cachedSeconds,
          cachedReused: out.reused,
          peakRssMiB: out.peakRssBytes / MiB,
          peakRssPerCheckpoint: out.peakRssBytes / checkpointBytes,
        };
        ctx.log(
          `${dtype}: converted in ${out.convertSeconds.toFixed(1)} s, peak RSS ${(out.peakRssBytes / MiB).toFixed(0)} MiB ` +
            `(${(out.peakRssBytes / checkpointBytes).toFixed(2)}× the checkpoint), cached resolve ${out.cachedSeconds.toFixed(2)} s`,
        );
        await rm(cacheDir, { recursive: true, force: true });
      }
      return {
        host: hostInfo(),
        preset: presetName,
        checkpointMiB: checkpointBytes / MiB,
        writeSeconds,
        hashSeconds,
        runs,
      };
    } finally {
      overrideConfig({ cacheDir: savedCache });
      await rm(work, { recursive: true, force: true });
    }
  },
};
