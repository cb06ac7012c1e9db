import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { saveModel } from '../../src/onnx/external-data.js';
import { OnnxFlowEstimator } from '../../src/metrics/flow-onnx.js';
import { rgbToGray } from '../../src/metrics/image.js';
import { VidpriorError } from '../../src/errors.js';
import { renderShifted, smoothTexture } from './helpers.js';

/**
 * A stand-in flow network with dynamic size: flow = (1.5, −0.5) on a half-resolution grid, plus 0 × a value
 * from each frame so both inputs are used. At full resolution that is (3, −1) pixels.
 */
function constantFlowModel(): GraphBuilder {
  const b = new GraphBuilder('const_flow', { opset: 17 });
  const a = b.input('image1', 'float32', [1, 3, 'h', 'w']);
  const c = b.input('image2', 'float32', [1, 3, 'h', 'w']);
  const both = b.op('Add', [a, c]);
  const two = b.op('Slice', [both, b.ints([0]), b.ints([2]), b.ints([1])]);
  const pooled = b.op('AveragePool', [two], { kernel_shape: [2, 2], strides: [2, 2] });
  const zero = b.op('Mul', [pooled, b.scalar(0)]);
  b.output(b.op('Add', [zero, b.constant([1.5, -0.5], [1, 2, 1, 1], 'float32')]), 'flow', 'float32', [
    1,
    2,
    'h2',
    'w2',
  ]);
  return b;
}

test('an ONNX flow network: frames padded to a multiple, flow brought back to the frame grid and rescaled', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-flow-onnx-'));
  try {
    const path = join(dir, 'flow.onnx');
    await saveModel(constantFlowModel().build(), path);
    const est = await OnnxFlowEstimator.open({ model: path, ep: 'cpu', valueRange: 255, multiple: 16 });
    try {
      const tex = smoothTexture(1, 8, 30);
      const f0 = renderShifted(tex, 40, 24, 0, 0); // 40×24 → the network sees 48×32, answers on 24×16
      const f1 = renderShifted(tex, 40, 24, 1, 0);
      const flow = await est.flow(rgbToGray(f0), rgbToGray(f1), f0, f1);
      assert.deepEqual([flow.width, flow.height], [40, 24]);
      // Half-res vectors (1.5, −0.5) × (40/24, 24/16): the size ratio between the frame and the flow grid.
      for (const u of flow.u) assert.ok(Math.abs(u - 1.5 * (40 / 24)) < 1e-4, `u ${u}`);
      for (const v of flow.v) assert.ok(Math.abs(v + 0.5 * (24 / 16)) < 1e-4, `v ${v}`);
      assert.match(est.name, /ONNX network/);
    } finally {
      await est.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a model that is not a flow network is refused with its inputs and outputs named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-flow-onnx-'));
  try {
    const b = new GraphBuilder('not_flow', { opset: 17 });
    b.output(b.op('Relu', [b.input('x', 'float32', [1, 4])]), 'y', 'float32', [1, 4]);
    const path = join(dir, 'bad.onnx');
    await saveModel(b.build(), path);
    await assert.rejects(
      OnnxFlowEstimator.open({ model: path, ep: 'cpu' }),
      (e: unknown) =>
        e instanceof VidpriorError && e.code === 'E_MODEL_INPUT' && /inputs x float32\[1,4\]/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
