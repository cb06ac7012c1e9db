// Shared by the daemon tests: a daemon on a free port with a fresh data dir, deterministic test frames.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { overrideConfig } from '../../src/config.js';
import { ensureDefaultModel } from '../../src/models/builder/default-model.js';
import { startDaemon, type Daemon, type DaemonOptions } from '../../daemon/daemon.js';
import { VidpriorClient } from '../../protocol/client.js';

/** One cache for the embedded default model across test files (building it is atomic). */
export const TEST_CACHE = join(tmpdir(), 'vidprior-test-cache');

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `vidprior-${prefix}-`));
}

/** A w×h PNG whose pixels depend on `seed` (gradients, so the VAE sees structure). */
export async function testPng(seed: number, w = 32, h = 32): Promise<Uint8Array> {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      data[i] = (x * 8 + seed * 40) % 256;
      data[i + 1] = (y * 8 + seed * 17) % 256;
      data[i + 2] = ((x + y) * 4 + seed * 90) % 256;
    }
  }
  return sharp(data, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
}

export interface TestDaemon {
  daemon: Daemon;
  url: string;
  dataDir: string;
  connect(opts?: { token?: string }): Promise<VidpriorClient>;
  close(): Promise<void>;
}

export async function startTestDaemon(opts: Partial<DaemonOptions> = {}): Promise<TestDaemon> {
  overrideConfig({ cacheDir: TEST_CACHE });
  const dataDir = opts.dataDir ?? tempDir('data');
  const daemon = await startDaemon({
    dataDir,
    ep: 'cpu',
    embeddedDefault: () => ensureDefaultModel(),
    listen: { host: '127.0.0.1', port: 0, heartbeatMs: 60_000 },
    ...opts,
  });
  const url = daemon.server?.url ?? '';
  const clients: VidpriorClient[] = [];
  return {
    daemon,
    url,
    dataDir,
    async connect(o = {}) {
      const c = await VidpriorClient.connect(url, { client: 'test', ...o });
      clients.push(c);
      return c;
    },
    async close() {
      await Promise.all(clients.map((c) => c.close()));
      await daemon.close();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
