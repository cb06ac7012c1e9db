/**
 * `vidprior models pull` from the command line against a local hub stand-in: HF_ENDPOINT and HF_HOME are
 * honoured (the cache lands in $HF_HOME/hub), progress arrives as JSON lines, HF_HUB_OFFLINE answers from the
 * cache with the hub unreachable and the pulled model then runs offline as `--model owner/name`, HF_TOKEN (or the token file) opens a
 * gated repo, and failures are one line with their code.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { createModelFolder } from '../../../src/models/builder/folder.js';
import { HubServer } from '../../models/hub/hub-server.js';
import { runCli } from '../run-cli.js';

let tmp: string;
let server: HubServer;

async function filesOf(dir: string, base = dir): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) for (const [k, v] of await filesOf(p, base)) out.set(k, v);
    else out.set(relative(base, p), await readFile(p));
  }
  return out;
}

const cli = (args: string[], env: Record<string, string>) =>
  runCli(args, { env: { ...process.env, NO_COLOR: '1', HF_TOKEN: '', HF_HUB_OFFLINE: '', HF_HUB_CACHE: '', ...env } });

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'cli-pull-'));
  server = new HubServer();
  const files = await filesOf((await createModelFolder(join(tmp, 'src'), 'tiny', { seed: 4 })).dir);
  server.add({ id: 'tiny/sd-onnx', files });
  server.add({ id: 'tiny/gated', files, gatedToken: 'hf_letmein' });
  await server.start();
  mkdirSync(join(tmp, 'clip'));
  await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 90, g: 140, b: 30 } } })
    .png()
    .toFile(join(tmp, 'clip', 'f0.png'));
});
after(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

test('pull with HF_ENDPOINT into $HF_HOME/hub, then offline: found in the cache and run as --model owner/name', {
  timeout: 300_000,
}, async () => {
  const env = { HF_ENDPOINT: server.url, HF_HOME: join(tmp, 'hf') };
  const r = await cli(['models', 'pull', 'tiny/sd-onnx', '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.ok(lines.some((l) => l.event === 'progress' && l.file === 'unet/model.onnx' && l.total > 0));
  const result = lines.pop();
  assert.equal(result.event, 'result');
  assert.equal(result.format, 'onnx');
  assert.ok(result.dir.startsWith(join(tmp, 'hf', 'hub', 'models--tiny--sd-onnx', 'snapshots')));

  const offline = { HF_ENDPOINT: 'http://127.0.0.1:9', HF_HOME: join(tmp, 'hf'), HF_HUB_OFFLINE: '1' };
  const again = await cli(['models', 'pull', 'tiny/sd-onnx'], offline);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /tiny\/sd-onnx is in the cache \(offline\): .*snapshots/);
  const run = await cli(
    [
      'stylize',
      '-i',
      join(tmp, 'clip'),
      '-o',
      join(tmp, 'out'),
      '-p',
      'x',
      '--steps',
      '2',
      '--strength',
      '0.5',
      '--ep',
      'cpu',
      '--model',
      'tiny/sd-onnx',
    ],
    offline,
  );
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(readdirSync(join(tmp, 'out')), ['f0.png']);
  const missing = await cli(['models', 'pull', 'tiny/other'], offline);
  assert.equal(missing.code, 2);
  assert.match(
    missing.stderr,
    /^vidprior: error \[E_NOT_FOUND\]: HF_HUB_OFFLINE is set and tiny\/other is not in the hub cache/m,
  );
});

test('a gated repo: E_AUTH naming HF_TOKEN without it; HF_TOKEN or the token file opens it', {
  timeout: 120_000,
}, async () => {
  const env = { HF_ENDPOINT: server.url, HF_HOME: join(tmp, 'hf2') };
  const denied = await cli(['models', 'pull', 'tiny/gated'], env);
  assert.equal(denied.code, 2);
  assert.match(denied.stderr.trim(), /^vidprior: error \[E_AUTH\]: tiny\/gated is gated on .*set HF_TOKEN/);
  const ok = await cli(['models', 'pull', 'tiny/gated'], { ...env, HF_TOKEN: 'hf_letmein' });
  assert.equal(ok.code, 0, ok.stderr);
  mkdirSync(join(tmp, 'hf3'));
  writeFileSync(join(tmp, 'hf3', 'token'), 'hf_letmein\n');
  const file = await cli(['models', 'pull', 'tiny/gated'], { ...env, HF_HOME: join(tmp, 'hf3') });
  assert.equal(file.code, 0, file.stderr);
  const nothing = await cli(['models', 'pull', 'nobody/nothing'], env);
  assert.equal(nothing.code, 2);
  assert.match(nothing.stderr, /\[E_NOT_FOUND\]: no model nobody\/nothing on /);
  const down = await cli(['models', 'pull', 'tiny/sd-onnx'], { ...env, HF_ENDPOINT: 'http://127.0.0.1:9' });
  assert.equal(down.code, 1);
  assert.match(down.stderr, /\[E_DOWNLOAD\]: cannot reach http:\/\/127\.0\.0\.1:9/);
});
