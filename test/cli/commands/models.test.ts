/** `vidprior models create-tiny` and `vidprior models inspect` end to end (spawned CLI, compiled build). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CLI = join('dist', 'cli', 'main.js');
const vidprior = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
// biome-ignore lint/suspicious/noExplicitAny: the CLI's JSON lines are checked field by field
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, any>;

test('create-tiny writes a model that inspect describes; bad input exits 2 with the bad value named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-models-cli-'));
  try {
    const model = join(dir, 'm');
    const made = vidprior('models', 'create-tiny', model, '--opset', '14', '--seed', '3', '--json');
    assert.equal(made.status, 0, made.stderr);
    const created = lastJson(made.stdout);
    assert.equal(created.event, 'result');
    assert.equal(created.vaeScaleFactor, 8);
    assert.equal(created.parameters.unet, 985_444);

    const shown = vidprior('models', 'inspect', model, '--json');
    assert.equal(shown.status, 0, shown.stderr);
    const info = lastJson(shown.stdout);
    assert.deepEqual(
      info.components.unet.inputs.map((i: { name: string }) => i.name),
      ['sample', 'timestep', 'encoder_hidden_states'],
    );
    assert.equal(info.components.text_encoder.opsets['ai.onnx'], 14);
    assert.equal(info.facts.vaeScaleFactor, 8);
    assert.equal(info.facts.latentChannels, 4);
    assert.equal(info.facts.textWidth, 32);
    assert.equal(info.built.seed, 3);

    const human = vidprior('models', 'inspect', model, '--no-probe');
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, /unet: opset 14 .* in: {2}sample float32\[batch, 4, height, width\]/s);

    // A config file: partial, over the tiny preset.
    const cfg = join(dir, 'cfg.json');
    writeFileSync(cfg, JSON.stringify({ unet: { block_out_channels: [32, 32] }, vae: { block_out_channels: [8, 8] } }));
    const custom = vidprior('models', 'create-tiny', join(dir, 'c'), '--config', cfg, '--json');
    assert.equal(custom.status, 0, custom.stderr);
    assert.equal(lastJson(custom.stdout).vaeScaleFactor, 2);

    const again = vidprior('models', 'create-tiny', model);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /E_BAD_REQUEST.*already exists/);
    writeFileSync(cfg, JSON.stringify({ unet: { cross_attention_dim: 48 } }));
    const bad = vidprior('models', 'create-tiny', join(dir, 'd'), '--config', cfg);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /unet\.cross_attention_dim must be .* got 48/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace for a user mistake');
    const missing = vidprior('models', 'inspect', join(dir, 'nothing'));
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /E_MODEL_MISSING/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('inspect names the source of each fact of a checkpoint; convert makes it; list then shows it as recent', async () => {
  const { resolveConfig } = await import('../../../src/models/builder/folder.js');
  const { writeDiffusersFolder, writeLdmCheckpoint } = await import('../../../src/models/builder/write-checkpoint.js');
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-models-ckpt-cli-'));
  const env = { ...process.env, VIDPRIOR_CACHE_DIR: join(dir, 'cache'), HF_HUB_CACHE: join(dir, 'hub') };
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env });
  try {
    const cfg = resolveConfig('tiny');
    const configs = join(dir, 'configs');
    await writeDiffusersFolder(configs, cfg, { seed: 1 });
    const file = join(dir, 'model.safetensors');
    await writeLdmCheckpoint(file, cfg, { seed: 1, extraKeys: true });

    const refused = run('models', 'inspect', file);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /E_MODEL_INPUT.*norm_num_groups.*--model-config/);

    const shown = run('models', 'inspect', file, '--model-config', configs, '--json');
    assert.equal(shown.status, 0, shown.stderr);
    const info = lastJson(shown.stdout);
    assert.equal(info.kind, 'checkpoint');
    assert.equal(info.sources['unet.block_out_channels'], 'tensor shapes');
    assert.equal(info.sources['vae.norm_num_groups'], configs);
    assert.equal(info.config.vae.norm_num_groups, 8);
    const human = run('models', 'inspect', file, '--model-config', configs);
    assert.match(human.stdout, /from tensor shapes: .*unet\.block_out_channels/);

    const before = lastJson(run('models', 'list', '--json').stdout);
    assert.deepEqual(
      before.models.map((m: { name: string }) => m.name),
      ['embedded-default'],
    );
    const tok = run('tokenize', '--model', file, '--model-config', configs, 'a fox');
    assert.equal(tok.status, 0, tok.stderr);
    const after = lastJson(run('models', 'list', '--json').stdout);
    assert.deepEqual(
      after.models.map((m: { name: string }) => m.name),
      ['embedded-default'],
      'tokenize converts nothing',
    );

    const converted = run('models', 'convert', file, '--model-config', configs, '--json');
    assert.equal(converted.status, 0, converted.stderr);
    const out = lastJson(converted.stdout).dir as string;
    assert.ok(out.startsWith(join(dir, 'cache', 'models', 'converted')), out);
    const listed = lastJson(run('models', 'list', '--json').stdout).models as {
      name: string;
      origin: string;
      dir?: string;
    }[];
    assert.deepEqual(
      listed.map((m) => [m.name, m.origin]),
      [
        ['embedded-default', 'built-in'],
        [file, 'recent'],
      ],
    );
    assert.equal(listed[1]!.dir, out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
