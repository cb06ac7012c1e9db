import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { assertGradients, gradcheck, randomTensor } from './gradcheck.js';
import { buildSdBlock } from './sd-block.js';

describe('autodiff: an SD-shaped ResNet + transformer + upsample block', () => {
  let rt: Runtime;
  before(async () => {
    rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  });
  after(async () => {
    await rt.close();
  });

  for (const opset of [14, 17, 20, 21]) {
    it(`gradients w.r.t. every weight, the sample and the context agree with finite differences (opset ${opset})`, async () => {
      const spec = { opset, batch: 1, cIn: 4, c: 8, size: 4, groups: 2, heads: 2, ctxLen: 3, ctxDim: 6, tembDim: 5 };
      const { model, weights } = buildSdBlock(spec);
      const feeds = {
        sample: randomTensor([1, 4, 4, 4], 1),
        temb: randomTensor([1, 5], 2),
        context: randomTensor([1, 3, 6], 3),
      };
      const report = await gradcheck(rt, model, {
        wrt: [...weights, 'sample', 'context'],
        feeds,
        directions: 2,
        elements: 2,
        eps: 3e-3,
      });
      assertGradients(report, 1e-2);
      assert.equal(report.values.length, weights.length + 2);
      assert.ok(!report.backwardOps.includes('Sum'));
    });
  }
});
