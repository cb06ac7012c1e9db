/**
 * Style LoRAs on the reference implementation's own ONNX export (../shared/fixtures/tiny-sd-torch: TorchScript
 * names, Linear weights stored transposed as `onnx::MatMul_*`, modules under wrapper scopes `/u/` and `/m/`,
 * the text model exported from its inner module). Checked against an independent form of the same LoRA: the
 * low-rank branch y = x·W + s·(x·downᵀ)·upᵀ added as graph nodes (src/training/lora.ts) — merging the weights
 * must give the same outputs, for UNet attention projections and 1×1 convs and for the text encoder.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { parseLora } from '../../../src/models/lora/lora-file.js';
import { findLayers } from '../../../src/models/lora/layers.js';
import { mergeLoras } from '../../../src/models/lora/merge.js';
import { decodeModel } from '../../../src/onnx/codec.js';
import type { Model } from '../../../src/onnx/ir.js';
import { Rng } from '../../../src/random.js';
import { openRuntime, type Runtime } from '../../../src/runtime/index.js';
import { type Tensor, float32, int32, int64 } from '../../../src/tensor.js';
import { type LoraTarget, injectLora } from '../../../src/training/lora.js';
import { decodeSafetensors, encodeSafetensors } from '../../../src/training/safetensors.js';
import { runModel } from '../builder/helpers.js';
import { maxAbsDiff } from '../../assert-close.js';
import { type LoraLayerSpec, type LoraValues, kohyaTensors, peftTensors, randomLora } from './helpers.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch';
const skip = existsSync(`${FIXTURE}/unet/model.onnx`) ? false : `${FIXTURE} is absent (needs ../shared)`;
const RANK = 4;
const ALPHA = 2;
const WEIGHT = 0.8;
let runtime: Runtime;

before(async () => {
  if (!skip) runtime = await openRuntime({ ep: 'cpu' });
});
after(async () => {
  await runtime?.close();
});

const load = (c: string): Model => decodeModel(readFileSync(`${FIXTURE}/${c}/model.onnx`), { copyData: true });

/** The same LoRA as graph branches: A = downᵀ ([in, r]) for linear layers, B = weight · upᵀ. */
function withBranches(model: Model, component: 'unet' | 'text_encoder', values: LoraValues[]): Model {
  const layers = findLayers(model, component);
  const targets: LoraTarget[] = [];
  const initial = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (const v of values) {
    const l = layers.get(v.spec.module)!;
    const conv = l.op === 'Conv';
    targets.push({
      module: v.spec.module,
      kind: conv ? 'conv' : 'linear',
      node: l.node.name,
      weight: l.tensor.name,
      inFeatures: conv ? l.tensor.dims[1]! : l.inFeatures,
      outFeatures: l.outFeatures,
      kernel: conv ? l.tensor.dims.slice(2) : undefined,
      type: 'float32',
    });
    const [out, inner] = [l.outFeatures, l.inFeatures];
    const t = (m: Float32Array, rows: number, cols: number) => {
      const o = new Float32Array(m.length);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) o[c * rows + r] = m[r * cols + c]!;
      return o;
    };
    const up = v.up.map((x) => x * WEIGHT);
    initial.set(v.spec.module, conv ? { a: v.down, b: up } : { a: t(v.down, RANK, inner), b: t(up, out, RANK) });
  }
  injectLora(model, targets, { rank: RANK, alpha: ALPHA, as: 'initializers', initial });
  return model;
}

async function check(
  component: 'unet' | 'text_encoder',
  specs: LoraLayerSpec[],
  feeds: Record<string, Tensor>,
  output: string,
) {
  const values = randomLora(specs, 21);
  const base = (await runModel(runtime, load(component), feeds))[output]!;
  const branched = (await runModel(runtime, withBranches(load(component), component, values), feeds))[output]!;
  for (const [layout, file] of [
    ['kohya', kohyaTensors(values)],
    ['peft', peftTensors(values).tensors],
  ] as const) {
    const meta = layout === 'peft' ? peftTensors(values).metadata : {};
    const lora = parseLora(decodeSafetensors(encodeSafetensors(file, meta)), `${layout}.safetensors`);
    const merged = load(component);
    const report = await mergeLoras(merged, component, [{ file: lora, weight: WEIGHT }]);
    assert.equal(report.layers, specs.length);
    const got = (await runModel(runtime, merged, feeds))[output]!;
    assert.ok(
      maxAbsDiff(got.data, branched.data) < 2e-5,
      `${component} ${layout}: ${maxAbsDiff(got.data, branched.data)}`,
    );
    assert.ok(maxAbsDiff(got.data, base.data) > 1e-3, `${component} ${layout}: the LoRA changed nothing`);
  }
}

const linear = (component: 'unet' | 'text_encoder', module: string, inF: number, outF: number): LoraLayerSpec => ({
  component,
  module,
  downDims: [RANK, inF],
  upDims: [outF, RANK],
  alpha: ALPHA,
});

test('UNet: merged kohya/peft LoRA on attention projections and 1×1 convs equals the LoRA branch', {
  skip,
}, async () => {
  const rng = new Rng(4);
  const b = 'down_blocks.1.attentions.0';
  await check(
    'unet',
    [
      linear('unet', `${b}.transformer_blocks.0.attn1.to_q`, 64, 64),
      linear('unet', `${b}.transformer_blocks.0.attn2.to_k`, 32, 64),
      linear('unet', `${b}.transformer_blocks.0.attn2.to_out.0`, 64, 64),
      linear('unet', 'mid_block.attentions.0.transformer_blocks.0.ff.net.2', 256, 64),
      { component: 'unet', module: `${b}.proj_in`, downDims: [RANK, 64, 1, 1], upDims: [64, RANK, 1, 1], alpha: ALPHA },
    ],
    {
      sample: float32([1, 4, 8, 8], rng.normalArray(256)),
      timestep: int64([1], [500]),
      encoder_hidden_states: float32([1, 77, 32], rng.normalArray(77 * 32)),
    },
    'out_sample',
  );
});

test('text encoder: a merged LoRA changes last_hidden_state exactly as the LoRA branch does', { skip }, async () => {
  const ids = new Int32Array(77).fill(49407);
  ids.set([49406, 320, 1125, 539, 320, 2368, 49407]);
  await check(
    'text_encoder',
    [
      linear('text_encoder', 'text_model.encoder.layers.0.self_attn.q_proj', 32, 32),
      linear('text_encoder', 'text_model.encoder.layers.0.self_attn.v_proj', 32, 32),
      linear('text_encoder', 'text_model.encoder.layers.1.mlp.fc1', 32, 37),
      linear('text_encoder', 'text_model.encoder.layers.1.mlp.fc2', 37, 32),
    ],
    { input_ids: int32([1, 77], ids) },
    'last_hidden_state',
  );
});
