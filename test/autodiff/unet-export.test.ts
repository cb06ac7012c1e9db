import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { decodeModel } from '../../src/onnx/codec.js';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { type Tensor, int64 } from '../../src/tensor.js';
import { assertGradients, gradcheck, prepareBackward, randomTensor } from './gradcheck.js';
import { encodeModel } from '../../src/onnx/codec.js';
import { buildComponent, preset } from '../../src/models/builder/index.js';

const UNET = '../shared/fixtures/tiny-sd-torch/unet/model.onnx';

describe('autodiff: the real tiny SD UNet export (TorchScript, opset 14)', {
  skip: existsSync(UNET) ? false : `${UNET} is absent`,
}, () => {
  let rt: Runtime;
  before(async () => {
    rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  });
  after(async () => {
    await rt.close();
  });

  const feeds = (): Record<string, Tensor> => ({
    sample: randomTensor([1, 4, 8, 8], 1),
    timestep: int64([1], [420]),
    encoder_hidden_states: randomTensor([1, 77, 32], 2),
  });

  it('gradients of selected weights (conv, attention projections, norms, time embedding) and inputs agree with finite differences', async () => {
    const model = decodeModel(readFileSync(UNET));
    const weightOf = (nodePart: string) => {
      const n = model.graph.nodes.find((nd) => nd.name.includes(nodePart));
      assert.ok(n, `no node named like ${nodePart}`);
      return n.inputs[1]!;
    };
    const wrt = [
      'u.conv_in.weight',
      'u.time_embedding.linear_1.weight',
      'u.down_blocks.0.resnets.0.conv1.bias',
      'u.down_blocks.1.attentions.0.proj_in.weight',
      'u.down_blocks.1.attentions.0.transformer_blocks.0.norm1.weight',
      'u.down_blocks.1.attentions.0.transformer_blocks.0.ff.net.0.proj.bias',
      weightOf('down_blocks.1/attentions.0/transformer_blocks.0/attn1/to_q/MatMul'),
      weightOf('down_blocks.1/attentions.0/transformer_blocks.0/attn2/to_k/MatMul'),
      weightOf('up_blocks.0/attentions.1/transformer_blocks.0/attn2/to_out.0/MatMul'),
      'u.up_blocks.0.upsamplers.0.conv.weight',
      'u.conv_out.weight',
      'sample',
      'encoder_hidden_states',
    ];
    const report = await gradcheck(rt, model, { wrt, feeds: feeds(), directions: 1, elements: 2, eps: 3e-3 });
    assertGradients(report, 2e-2);
  });

  it('the gradient of every float weight builds, runs and is finite', async () => {
    const model = decodeModel(readFileSync(UNET));
    const wrt = model.graph.initializers
      .filter((t) => t.type === 'float32' && t.dims.length >= 1 && t.data && t.data.length > 1)
      .map((t) => t.name);
    const { backward, feeds: allFeeds, gradNames } = await prepareBackward(rt, model, { wrt, feeds: feeds() });
    const session = await rt.createSession(encodeModel(backward));
    const out = await session.run(Object.fromEntries(backward.graph.inputs.map((i) => [i.name, allFeeds[i.name]!])));
    await session.release();
    let nonzero = 0;
    for (const w of wrt) {
      const g = (out[gradNames[w]!] as Tensor<'float32'>).data;
      assert.ok(g.every(Number.isFinite), `${w} has a non-finite gradient`);
      if (g.some((v) => v !== 0)) nonzero++;
    }
    assert.ok(nonzero >= wrt.length - 2, `${wrt.length - nonzero} of ${wrt.length} weights got an all-zero gradient`);
  });
});

describe("autodiff: the project's own tiny UNet (model builder), opset 14 and 17", () => {
  let rt: Runtime;
  before(async () => {
    rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  });
  after(async () => {
    await rt.close();
  });

  for (const opset of [14, 17]) {
    it(`opset ${opset}: attention projection, conv and norm gradients agree with finite differences`, async () => {
      const { model } = buildComponent('unet', preset('tiny'), { opset });
      const pick = (re: RegExp) => {
        const t = model.graph.initializers.find((i) => re.test(i.name));
        assert.ok(t, `no weight matching ${re}`);
        return t.name;
      };
      const wrt = [
        pick(/attn1\.to_q\.weight$/),
        pick(/attn2\.to_v\.weight$/),
        pick(/attn2\.to_out\.0\.weight$/),
        pick(/conv_in\.weight$/),
        pick(/norm1\.weight$/),
        pick(/ff\.net\.0\.proj\.weight$/),
        'sample',
      ];
      const hidden = model.graph.inputs.find((i) => i.name === 'encoder_hidden_states')!.shape!.at(-1) as number;
      const feeds = {
        sample: randomTensor([1, 4, 8, 8], 1),
        timestep: int64([1], [300]),
        encoder_hidden_states: randomTensor([1, 5, hidden], 2),
      };
      const report = await gradcheck(rt, model, { wrt, feeds, directions: 1, elements: 2, eps: 3e-3 });
      assertGradients(report, 2e-2);
    });
  }
});
