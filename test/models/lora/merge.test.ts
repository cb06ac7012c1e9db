/**
 * Style LoRAs merged into a builder model's weights: kohya and peft layouts give the same weights, each equal
 * to W + multiplier · alpha/r · up·down (linear layers stored transposed for MatMul, Gemm [out, in], 1×1 and
 * 3×3 convolutions, 2-D LoRA tensors on a 1×1 conv), stacked files add up, LDM-named kohya keys reach the same
 * layers, and keys that fit nothing are refused by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildComponent, preset } from '../../../src/models/builder/index.js';
import { parseLora, parseLoraSpec } from '../../../src/models/lora/lora-file.js';
import { findLayers, ldmNames } from '../../../src/models/lora/layers.js';
import { mergeLoras } from '../../../src/models/lora/merge.js';
import type { Model } from '../../../src/onnx/ir.js';
import { encodeSafetensors, decodeSafetensors, type SafeTensor } from '../../../src/training/safetensors.js';
import { type LoraLayerSpec, expectedMerge, kohyaTensors, peftTensors, randomLora, weightValues } from './helpers.js';

const cfg = preset('tiny');
const build = (c: 'unet' | 'text_encoder'): Model => buildComponent(c, cfg, { seed: 3 }).model;

/** Layers of every storage kind in the tiny preset. */
const SPECS: LoraLayerSpec[] = [
  // MatMul, weight stored [in, out]
  {
    component: 'unet',
    module: 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q',
    downDims: [4, 64],
    upDims: [64, 4],
    alpha: 2,
  },
  // cross-attention: in = text width
  {
    component: 'unet',
    module: 'mid_block.attentions.0.transformer_blocks.0.attn2.to_k',
    downDims: [2, 32],
    upDims: [64, 2],
    alpha: 1,
  },
  // 1×1 conv with 4-D LoRA tensors (what kohya writes for proj_in/proj_out)
  {
    component: 'unet',
    module: 'up_blocks.0.attentions.1.proj_out',
    downDims: [4, 64, 1, 1],
    upDims: [64, 4, 1, 1],
    alpha: 4,
  },
  // 1×1 conv with 2-D LoRA tensors (a LoRA trained on a linear-projection model)
  { component: 'unet', module: 'down_blocks.1.attentions.0.proj_in', downDims: [3, 64], upDims: [64, 3], alpha: 3 },
  // Gemm [out, in] (transB = 1)
  { component: 'unet', module: 'mid_block.resnets.0.time_emb_proj', downDims: [4, 128], upDims: [64, 4], alpha: 8 },
  // 3×3 conv (kohya's conv LoRA: the kernel is in down)
  {
    component: 'unet',
    module: 'down_blocks.0.resnets.0.conv1',
    downDims: [2, 32, 3, 3],
    upDims: [32, 2, 1, 1],
    alpha: 1,
  },
  {
    component: 'text_encoder',
    module: 'text_model.encoder.layers.1.mlp.fc1',
    downDims: [4, 32],
    upDims: [64, 4],
    alpha: 4,
  },
  {
    component: 'text_encoder',
    module: 'text_model.encoder.layers.0.self_attn.out_proj',
    downDims: [2, 32],
    upDims: [32, 2],
    alpha: 1,
  },
];

function fileOf(tensors: Map<string, SafeTensor>, metadata: Record<string, string> = {}, source = 'test.safetensors') {
  // Through the bytes, as a file on disk would be read.
  return parseLora(decodeSafetensors(encodeSafetensors(tensors, metadata)), source);
}

test('kohya and peft layouts merge to W + multiplier · alpha/r · up·down, in every storage layout', async () => {
  const values = randomLora(SPECS, 11);
  const kohya = fileOf(kohyaTensors(values));
  const peft = (() => {
    // One alpha per component in peft's metadata: give each layer its own through the per-module alpha keys.
    const { tensors, metadata } = peftTensors(values);
    for (const v of values)
      tensors.set(`${v.spec.component}.${v.spec.module}.alpha`, {
        type: 'float32',
        dims: [],
        data: Float32Array.of(v.spec.alpha),
      });
    return fileOf(tensors, metadata);
  })();
  assert.equal(kohya.layout, 'kohya');
  assert.equal(peft.layout, 'peft');
  for (const component of ['unet', 'text_encoder'] as const) {
    const base = build(component);
    const layers = findLayers(base, component);
    const a = build(component);
    const b = build(component);
    const ra = await mergeLoras(a, component, [{ file: kohya, weight: 0.75 }]);
    await mergeLoras(b, component, [{ file: peft, weight: 0.75 }]);
    const mine = values.filter((v) => v.spec.component === component);
    assert.equal(ra.layers, mine.length);
    for (const v of mine) {
      const layer = layers.get(v.spec.module)!;
      assert.ok(layer, `layer ${v.spec.module}`);
      const want = expectedMerge(weightValues(base, layer.tensor.name), layer.layout, [
        { values: v, multiplier: 0.75 },
      ]);
      assert.deepEqual(weightValues(a, layer.tensor.name), want, `kohya ${v.spec.module}`);
      assert.deepEqual(weightValues(b, layer.tensor.name), want, `peft ${v.spec.module}`);
      assert.notDeepEqual(want, weightValues(base, layer.tensor.name));
    }
    // Every other weight is untouched.
    const touched = new Set(mine.map((v) => layers.get(v.spec.module)!.tensor.name));
    for (const t of base.graph.initializers)
      if (!touched.has(t.name))
        assert.deepEqual(a.graph.initializers.find((x) => x.name === t.name)!.data, t.data, t.name);
  }
});

test('stacked LoRAs add up with their multipliers; a negative multiplier subtracts', async () => {
  const spec = SPECS[0]!;
  const one = randomLora([spec], 1);
  const two = randomLora([{ ...spec, downDims: [8, 64], upDims: [64, 8], alpha: 8 }], 2);
  const unet = build('unet');
  const layer = findLayers(unet, 'unet').get(spec.module)!;
  const before = weightValues(unet, layer.tensor.name);
  await mergeLoras(unet, 'unet', [
    { file: fileOf(kohyaTensors(one)), weight: 1 },
    { file: fileOf(peftTensors(two).tensors, peftTensors(two).metadata), weight: -0.5 },
  ]);
  const want = expectedMerge(before, layer.layout, [
    { values: one[0]!, multiplier: 1 },
    { values: two[0]!, multiplier: -0.5 },
  ]);
  assert.deepEqual(weightValues(unet, layer.tensor.name), want);
});

test('kohya keys in the original LDM naming reach the same layers as diffusers names', async () => {
  const values = randomLora(
    SPECS.filter((s) => s.component === 'unet'),
    5,
  );
  const a = build('unet');
  const b = build('unet');
  const ldm = ldmNames(findLayers(a, 'unet').keys());
  assert.equal(ldm.get('down_blocks.1.attentions.0.proj_in'), 'input_blocks.3.1.proj_in');
  assert.equal(ldm.get('down_blocks.0.resnets.0.conv1'), 'input_blocks.1.0.in_layers.2');
  assert.equal(ldm.get('mid_block.resnets.0.time_emb_proj'), 'middle_block.0.emb_layers.1');
  const ldmFile = fileOf(kohyaTensors(values, ldm));
  assert.ok(ldmFile.entries.some((e) => e.name.startsWith('input_blocks_3_1_')));
  await mergeLoras(a, 'unet', [{ file: ldmFile, weight: 1 }]);
  await mergeLoras(b, 'unet', [{ file: fileOf(kohyaTensors(values)), weight: 1 }]);
  assert.deepEqual(a.graph.initializers, b.graph.initializers);
});

test('older diffusers key forms (lora.down/up, lora_linear_layer, attention processors) are read', async () => {
  const [q, , , , , , fc1] = randomLora(SPECS, 9);
  const tensors = new Map<string, SafeTensor>([
    [
      'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight',
      { type: 'float32', dims: q!.spec.downDims, data: q!.down },
    ],
    [
      'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.up.weight',
      { type: 'float32', dims: q!.spec.upDims, data: q!.up },
    ],
    [
      'text_encoder.text_model.encoder.layers.1.mlp.fc1.lora_linear_layer.down.weight',
      { type: 'float32', dims: fc1!.spec.downDims, data: fc1!.down },
    ],
    [
      'text_encoder.text_model.encoder.layers.1.mlp.fc1.lora_linear_layer.up.weight',
      { type: 'float32', dims: fc1!.spec.upDims, data: fc1!.up },
    ],
    [
      'unet.mid_block.attentions.0.proj_in.lora.down.weight',
      { type: 'float32', dims: [2, 64, 1, 1], data: new Float32Array(128).fill(0.1) },
    ],
    [
      'unet.mid_block.attentions.0.proj_in.lora.up.weight',
      { type: 'float32', dims: [64, 2, 1, 1], data: new Float32Array(128).fill(0.1) },
    ],
  ]);
  const file = fileOf(tensors);
  assert.equal(file.layout, 'diffusers');
  assert.deepEqual(file.entries.map((e) => `${e.component}:${e.name}:${e.alpha}`).sort(), [
    'text_encoder:text_model.encoder.layers.1.mlp.fc1:4',
    'unet:down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q:4',
    'unet:mid_block.attentions.0.proj_in:2',
  ]);
  const unet = build('unet');
  assert.equal((await mergeLoras(unet, 'unet', [{ file, weight: 1 }])).layers, 2);
  const te = build('text_encoder');
  assert.equal((await mergeLoras(te, 'text_encoder', [{ file, weight: 1 }])).layers, 1);
});

test('a key that matches no layer, a misfit shape, LyCORIS and SDXL tensors are E_ADAPTER errors naming the key', async () => {
  const rank = (dims: number[]) => ({
    type: 'float32' as const,
    dims,
    data: new Float32Array(dims.reduce((a, b) => a * b, 1)),
  });
  const stray = new Map<string, SafeTensor>([
    ['lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight', rank([4, 64])],
    ['lora_unet_down_blocks_7_attentions_0_proj_in.lora_up.weight', rank([64, 4])],
  ]);
  await assert.rejects(
    () => mergeLoras(build('unet'), 'unet', [{ file: fileOf(stray, {}, 'style.safetensors'), weight: 1 }]),
    (e: Error & { code?: string }) =>
      e.code === 'E_ADAPTER' &&
      /style\.safetensors: lora_unet_down_blocks_7_attentions_0_proj_in matches no layer/.test(e.message),
  );
  const misfit = new Map<string, SafeTensor>([
    ['unet.mid_block.attentions.0.proj_in.lora_A.weight', rank([4, 32])],
    ['unet.mid_block.attentions.0.proj_in.lora_B.weight', rank([64, 4])],
  ]);
  await assert.rejects(
    () => mergeLoras(build('unet'), 'unet', [{ file: fileOf(misfit), weight: 1 }]),
    (e: Error & { code?: string }) =>
      e.code === 'E_ADAPTER' && /unet\.mid_block\.attentions\.0\.proj_in has down \[4,32\]/.test(e.message),
  );
  for (const key of [
    'lora_unet_mid_block_attentions_0_proj_in.hada_w1_a',
    'lora_unet_mid_block_attentions_0_proj_in.lokr_w1',
    'unet.mid_block.attentions.0.proj_in.lora_magnitude_vector',
    'lora_unet_mid_block_attentions_0_proj_in.dora_scale',
  ]) {
    assert.throws(
      () => fileOf(new Map([[key, rank([4, 4])]])),
      (e: Error & { code?: string }) =>
        e.code === 'E_ADAPTER' && e.message.includes(key) && /not a plain LoRA/.test(e.message),
      key,
    );
  }
  assert.throws(
    () => fileOf(new Map([['lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight', rank([4, 4])]])),
    /SDXL/,
  );
  assert.throws(() => fileOf(new Map([['model.diffusion_model.out.2.weight', rank([4, 4])]])), /is not a LoRA key/);
  assert.throws(
    () => fileOf(new Map([['lora_unet_conv_in.lora_down.weight', rank([4, 4, 3, 3])]])),
    /lora_unet_conv_in has no up/,
  );
});

test('--lora file[:weight] parsing', () => {
  assert.deepEqual(parseLoraSpec('style.safetensors'), { path: 'style.safetensors', weight: 1 });
  assert.deepEqual(parseLoraSpec('a/b.safetensors:0.6'), { path: 'a/b.safetensors', weight: 0.6 });
  assert.deepEqual(parseLoraSpec('neg.safetensors:-1.5'), { path: 'neg.safetensors', weight: -1.5 });
  assert.deepEqual(parseLoraSpec('C:\\loras\\x.safetensors'), { path: 'C:\\loras\\x.safetensors', weight: 1 });
  assert.throws(
    () => parseLoraSpec('x.safetensors:99'),
    (e: Error & { code?: string }) => e.code === 'E_BAD_REQUEST',
  );
});

test('products run by the runtime (MatMul) give the exact merge to float32 rounding', async () => {
  const { openRuntime } = await import('../../../src/runtime/index.js');
  const { runtimeProduct } = await import('../../../src/models/lora/product.js');
  const runtime = await openRuntime({ ep: 'cpu' });
  const fast = await runtimeProduct(runtime);
  try {
    const values = randomLora(SPECS, 13);
    const file = fileOf(kohyaTensors(values));
    for (const component of ['unet', 'text_encoder'] as const) {
      const exact = build(component);
      const viaRuntime = build(component);
      await mergeLoras(exact, component, [{ file, weight: 0.9 }]);
      await mergeLoras(viaRuntime, component, [{ file, weight: 0.9 }], fast.product);
      let worst = 0;
      for (const [i, w] of exact.graph.initializers.entries()) {
        if (w.type !== 'float32') continue;
        const a = w.data as Float32Array;
        const b = viaRuntime.graph.initializers[i]!.data as Float32Array;
        for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k]! - b[k]!) / (1 + Math.abs(a[k]!)));
      }
      assert.ok(worst < 1e-6, `${component}: ${worst}`);
    }
  } finally {
    await fast.release();
    await runtime.close();
  }
});

test("peft's own save (adapter_model.safetensors + adapter_config.json) takes lora_alpha from the config", async () => {
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { writeSafetensors } = await import('../../../src/training/safetensors.js');
  const { readLoraFile } = await import('../../../src/models/lora/lora-file.js');
  const dir = await mkdtemp(join(tmpdir(), 'peft-save-'));
  try {
    const [q] = randomLora([SPECS[0]!], 4);
    const m = 'base_model.model.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q';
    await writeSafetensors(
      join(dir, 'adapter_model.safetensors'),
      new Map([
        [`${m}.lora_A.weight`, { type: 'float32' as const, dims: q!.spec.downDims, data: q!.down }],
        [`${m}.lora_B.weight`, { type: 'float32' as const, dims: q!.spec.upDims, data: q!.up }],
      ]),
    );
    await writeFile(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8 }));
    const lora = await readLoraFile(join(dir, 'adapter_model.safetensors'));
    assert.deepEqual(
      lora.entries.map((e) => [e.component, e.name, e.rank, e.alpha]),
      [['unet', 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q', 4, 8]],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
