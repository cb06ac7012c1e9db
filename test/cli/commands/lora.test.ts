/**
 * `--lora file[:weight]` from the command line on a builder model: stylize with a kohya LoRA (UNet and text
 * encoder) changes the output and says what it merged; a LoRA key that fits nothing is one E_ADAPTER line
 * naming it; finetune trains on top of the style LoRA (a different starting loss, recorded in the adapter),
 * and stylize --adapter without the same --lora warns.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { createModelFolder } from '../../../src/models/builder/folder.js';
import { readSafetensors, writeSafetensors } from '../../../src/training/safetensors.js';
import { kohyaTensors, randomLora } from '../../models/lora/helpers.js';
import { runCliSync } from '../run-cli.js';

let tmp: string;
let model: string;
let env: NodeJS.ProcessEnv;

const cli = (args: string[]) => runCliSync([...args, '--ep', 'cpu', '--model', model], { env });

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'cli-lora-'));
  env = { ...process.env, VIDPRIOR_CACHE_DIR: join(tmp, 'cache'), NO_COLOR: '1' };
  model = (await createModelFolder(join(tmp, 'model'), 'tiny', { seed: 1 })).dir;
  mkdirSync(join(tmp, 'clip'));
  for (let i = 0; i < 3; i++) {
    const data = Buffer.alloc(64 * 64 * 3);
    for (let p = 0; p < 64 * 64; p++) {
      data[p * 3] = (p * 3 + 20 * i) % 256;
      data[p * 3 + 1] = (p >> 5) % 256;
      data[p * 3 + 2] = 60 * i;
    }
    await sharp(data, { raw: { width: 64, height: 64, channels: 3 } })
      .png()
      .toFile(join(tmp, 'clip', `f${i}.png`));
  }
  const values = randomLora(
    [
      {
        component: 'unet',
        module: 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q',
        downDims: [4, 64],
        upDims: [64, 4],
        alpha: 4,
      },
      {
        component: 'unet',
        module: 'mid_block.attentions.0.proj_in',
        downDims: [4, 64, 1, 1],
        upDims: [64, 4, 1, 1],
        alpha: 4,
      },
      {
        component: 'text_encoder',
        module: 'text_model.encoder.layers.0.self_attn.v_proj',
        downDims: [4, 32],
        upDims: [32, 4],
        alpha: 4,
      },
    ],
    3,
  );
  await writeSafetensors(join(tmp, 'style.safetensors'), kohyaTensors(values));
  const stray = kohyaTensors(values);
  stray.set('lora_unet_up_blocks_9_attentions_0_proj_out.lora_down.weight', {
    type: 'float32',
    dims: [4, 64],
    data: new Float32Array(256),
  });
  stray.set('lora_unet_up_blocks_9_attentions_0_proj_out.lora_up.weight', {
    type: 'float32',
    dims: [64, 4],
    data: new Float32Array(256),
  });
  await writeSafetensors(join(tmp, 'stray.safetensors'), stray);
});

after(() => rmSync(tmp, { recursive: true, force: true }));

const pixels = (dir: string) => readdirSync(dir).map((f) => readFileSync(join(dir, f)));

test('stylize --lora merges a kohya LoRA into UNet and text encoder and changes the frames', {
  timeout: 300_000,
}, () => {
  const args = ['stylize', '-i', join(tmp, 'clip'), '-p', 'ink', '--steps', '4', '--strength', '0.5'];
  const plain = cli([...args, '-o', join(tmp, 'plain')]);
  assert.equal(plain.code, 0, plain.stderr);
  const styled = cli([...args, '-o', join(tmp, 'styled'), '--lora', `${join(tmp, 'style.safetensors')}:0.7`]);
  assert.equal(styled.code, 0, styled.stderr);
  assert.match(styled.stderr, /LoRA style\.safetensors:0\.7 \(kohya layout\): 2 UNet and 1 text-encoder layers/);
  assert.notDeepEqual(pixels(join(tmp, 'styled')), pixels(join(tmp, 'plain')));
});

test('a LoRA key that fits no layer is one E_ADAPTER line naming it', { timeout: 120_000 }, () => {
  const r = cli([
    'stylize',
    '-i',
    join(tmp, 'clip'),
    '-o',
    join(tmp, 'x'),
    '-p',
    'x',
    '--lora',
    join(tmp, 'stray.safetensors'),
  ]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr.trim().split('\n').pop()!,
    /^vidprior: error \[E_ADAPTER\]: .*stray\.safetensors: lora_unet_up_blocks_9_attentions_0_proj_out matches no layer of this model's UNet/,
  );
  const missing = cli([
    'stylize',
    '-i',
    join(tmp, 'clip'),
    '-o',
    join(tmp, 'x'),
    '-p',
    'x',
    '--lora',
    join(tmp, 'nope.safetensors'),
  ]);
  assert.match(missing.stderr, /\[E_NOT_FOUND\]: cannot read LoRA file .*nope\.safetensors: no such file/);
});

test('finetune --lora trains on top of the style LoRA and records it', { timeout: 600_000 }, async () => {
  const edit = join(tmp, 'clip', 'f1.png');
  const train = (out: string, extra: string[]) =>
    cli([
      'finetune',
      '-i',
      join(tmp, 'clip'),
      '--edit',
      `1=${edit}`,
      '-p',
      'ink',
      '--iters',
      '3',
      '--frames',
      '2',
      '-o',
      out,
      '--json',
      ...extra,
    ]);
  const result = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!) as { validationBefore: number };
  const plain = train(join(tmp, 'plain.safetensors'), []);
  assert.equal(plain.code, 0, plain.stderr);
  const styled = train(join(tmp, 'styled.safetensors'), ['--lora', join(tmp, 'style.safetensors')]);
  assert.equal(styled.code, 0, styled.stderr);
  // Same data, seed and timesteps: only the base weights differ.
  assert.notEqual(result(styled.stdout).validationBefore, result(plain.stdout).validationBefore);
  const record = JSON.parse((await readSafetensors(join(tmp, 'styled.safetensors'))).metadata.vidprior!);
  assert.equal(record.styleLoras.length, 1);
  assert.equal(record.styleLoras[0].weight, 1);
  assert.match(record.styleLoras[0].sha256, /^[0-9a-f]{64}$/);

  const s = cli([
    'stylize',
    '-i',
    join(tmp, 'clip'),
    '-o',
    join(tmp, 'on-top'),
    '-p',
    'ink',
    '--steps',
    '4',
    '--adapter',
    join(tmp, 'styled.safetensors'),
  ]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stderr, /trained on top of style LoRAs .*style\.safetensors:1, but this run has none/);
  const same = cli([
    'stylize',
    '-i',
    join(tmp, 'clip'),
    '-o',
    join(tmp, 'on-top-2'),
    '-p',
    'ink',
    '--steps',
    '4',
    '--adapter',
    join(tmp, 'styled.safetensors'),
    '--lora',
    join(tmp, 'style.safetensors'),
  ]);
  assert.equal(same.code, 0, same.stderr);
  assert.doesNotMatch(same.stderr, /trained on top/);
});
