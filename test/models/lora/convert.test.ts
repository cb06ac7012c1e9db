/**
 * kohya ⇄ peft conversion of LoRA files, both ways: vidprior's per-video adapter → kohya → peft is the same file
 * byte for byte; the kohya form merges to exactly the weights of the peft form (and of `--adapter`'s own merge);
 * the shared kohya fixture → peft → kohya keeps every key and value, and both forms give the same weights on
 * model D. Plus `vidprior adapter convert` from the command line.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildComponent, preset } from '../../../src/models/builder/index.js';
import { convertLora, moduleFromKohya } from '../../../src/models/lora/convert.js';
import { findLayers, kohyaName, ldmNames } from '../../../src/models/lora/layers.js';
import { parseLora } from '../../../src/models/lora/lora-file.js';
import { mergeLoras } from '../../../src/models/lora/merge.js';
import { fromFloat16 } from '../../../src/tensor.js';
import { type Adapter, mergeAdapter, saveAdapter } from '../../../src/training/adapter.js';
import { findLoraTargets, loraShapes } from '../../../src/training/lora.js';
import { Rng } from '../../../src/random.js';
import {
  type SafetensorsFile,
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
} from '../../../src/training/safetensors.js';
import { MODEL_D } from './model-d.js';

let tmp: string;
let adapterPath: string;
const unetOf = () => buildComponent('unet', preset('tiny'), { seed: 7 }).model;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'lora-convert-'));
  // A per-video adapter as `vidprior finetune` writes it: attention projections and convolutions.
  const targets = findLoraTargets(unetOf(), { convs: true });
  const rng = new Rng(3);
  const weights: Adapter['weights'] = new Map();
  for (const t of targets) {
    const { aDims, bDims } = loraShapes(t, 4);
    const n = (d: number[]) => d.reduce((a, b) => a * b, 1);
    weights.set(t.module, {
      kind: t.kind,
      a: rng.normalArray(n(aDims), 0.1),
      b: rng.normalArray(n(bDims), 0.1),
      aDims,
      bDims,
    });
  }
  adapterPath = join(tmp, 'clip.safetensors');
  await saveAdapter(adapterPath, { rank: 4, alpha: 6, weights, record: { prompt: 'ink', frames: 3 } });
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const bytesOf = (f: SafetensorsFile) => encodeSafetensors(f.tensors, f.metadata);

test('kohya names turn back into module paths for every layer a UNet and text encoder have', () => {
  for (const c of ['unet', 'text_encoder'] as const) {
    const modules = [...findLayers(buildComponent(c, preset('tiny'), { weights: 'none' }).model, c).keys()];
    const names = c === 'unet' ? [...modules, ...ldmNames(modules).values()] : modules;
    for (const m of names) assert.equal(moduleFromKohya(kohyaName(m)), m);
  }
  assert.equal(
    moduleFromKohya('up_blocks_1_attentions_2_transformer_blocks_0_ff_net_0_proj'),
    'up_blocks.1.attentions.2.transformer_blocks.0.ff.net.0.proj',
  );
  assert.equal(
    moduleFromKohya('text_model_encoder_layers_11_self_attn_out_proj'),
    'text_model.encoder.layers.11.self_attn.out_proj',
  );
});

test("vidprior's adapter → kohya → peft is the same file, byte for byte", async () => {
  const original = readFileSync(adapterPath);
  const kohya = convertLora(decodeSafetensors(original), 'kohya', adapterPath);
  const keys = [...kohya.tensors.keys()];
  assert.ok(
    keys.every((k) => /^lora_unet_[a-z0-9_]+\.(lora_down\.weight|lora_up\.weight|alpha)$/.test(k)),
    keys[0],
  );
  assert.ok(keys.includes('lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_out_0.alpha'));
  assert.equal((kohya.tensors.get('lora_unet_down_blocks_1_attentions_0_proj_in.alpha')!.data as Float32Array)[0], 6);
  assert.equal(kohya.metadata.ss_network_dim, '4');
  assert.equal(kohya.metadata.ss_network_alpha, '6');
  assert.ok(kohya.metadata.vidprior, 'the training record travels along');
  const back = convertLora(decodeSafetensors(bytesOf(kohya)), 'peft', 'kohya.safetensors');
  assert.deepEqual(Buffer.from(bytesOf(back)), original);
});

test('the kohya form merges to exactly the weights of the peft form, and of --adapter', async () => {
  const file = await readSafetensors(adapterPath);
  const peft = parseLora(file, 'peft');
  const kohya = parseLora(convertLora(file, 'kohya', adapterPath), 'kohya');
  assert.equal(kohya.layout, 'kohya');
  const a = unetOf();
  const b = unetOf();
  await mergeLoras(a, 'unet', [{ file: kohya, weight: 1 }]);
  await mergeLoras(b, 'unet', [{ file: peft, weight: 1 }]);
  assert.deepEqual(a.graph.initializers, b.graph.initializers);
  // The per-video adapter's own merge (src/training/adapter.ts) agrees to float32 rounding.
  const c = unetOf();
  const { loadAdapter } = await import('../../../src/training/adapter.js');
  mergeAdapter(c, findLoraTargets(c, { convs: true }), await loadAdapter(adapterPath));
  let worst = 0;
  for (const [i, t] of a.graph.initializers.entries()) {
    if (t.type !== 'float32') continue;
    const x = t.data as Float32Array;
    const y = c.graph.initializers[i]!.data as Float32Array;
    for (let k = 0; k < x.length; k++) worst = Math.max(worst, Math.abs(x[k]! - y[k]!));
  }
  assert.ok(worst < 1e-5, `${worst}`);
});

const skip = existsSync(join(MODEL_D, 'lora-kohya.safetensors')) ? false : `${MODEL_D} is absent (needs ../shared)`;

test('the shared kohya LoRA → peft → kohya keeps every key and value; both forms merge alike', { skip }, async () => {
  const original = await readSafetensors(join(MODEL_D, 'lora-kohya.safetensors'));
  const peft = convertLora(original, 'peft', 'lora-kohya');
  assert.ok([...peft.tensors.keys()].every((k) => /^(unet|text_encoder)\..+\.lora_[AB]\.weight$/.test(k)));
  const cfg = JSON.parse(peft.metadata.lora_adapter_metadata!);
  assert.deepEqual([cfg['unet.r'], cfg['unet.lora_alpha'], cfg['text_encoder.lora_alpha']], [4, 2, 2]);
  const back = convertLora(decodeSafetensors(bytesOf(peft)), 'kohya', 'peft');
  assert.deepEqual([...back.tensors.keys()].sort(), [...original.tensors.keys()].sort());
  for (const [k, t] of original.tensors) {
    const got = back.tensors.get(k)!;
    const values = (x: typeof t) => (x.type === 'float16' ? fromFloat16(x.data as Uint16Array) : x.data);
    assert.deepEqual([...values(got)], [...values(t)], k);
  }
  for (const k of ['ss_network_module', 'ss_network_dim', 'ss_network_alpha', 'ss_output_name'])
    assert.equal(back.metadata[k], original.metadata[k], k);
  // Same merged weights from both forms, on a UNet and text encoder of model D's shapes.
  const { writeModelD } = await import('./model-d.js');
  const dir = await writeModelD(mkdtempSync(join(tmp, 'd-')));
  const { loadModel } = await import('../../../src/onnx/external-data.js');
  for (const c of ['unet', 'text_encoder'] as const) {
    const x = await loadModel(join(dir, c, 'model.onnx'));
    const y = await loadModel(join(dir, c, 'model.onnx'));
    const rx = await mergeLoras(x, c, [{ file: parseLora(original, 'kohya'), weight: 1 }]);
    await mergeLoras(y, c, [{ file: parseLora(peft, 'peft'), weight: 1 }]);
    assert.ok(rx.layers > 0);
    assert.deepEqual(x.graph.initializers, y.graph.initializers, c);
  }
});

test('vidprior adapter convert: kohya and back from the command line; an existing output is kept', () => {
  const cli = (args: string[]) =>
    spawnSync(process.execPath, [resolve('dist/cli/main.js'), 'adapter', 'convert', ...args], { encoding: 'utf8' });
  const kohya = join(tmp, 'clip-kohya.safetensors');
  const r = cli(['--to', 'kohya', adapterPath, kohya, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.equal(result.from, 'peft');
  assert.equal(result.to, 'kohya');
  const peft = join(tmp, 'clip-peft.safetensors');
  assert.equal(cli(['--to', 'peft', kohya, peft]).status, 0);
  assert.deepEqual(readFileSync(peft), readFileSync(adapterPath));
  const again = cli(['--to', 'peft', kohya, peft]);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /\[E_BAD_REQUEST\]: .*clip-peft\.safetensors already exists/);
});
