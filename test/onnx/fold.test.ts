import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, encodeModel } from '../../src/onnx/codec.js';
import { foldConstants } from '../../src/onnx/fold.js';
import { summarize } from '../../src/onnx/graph.js';
import { type Runtime, type Session, isGpuTensor, openRuntime } from '../../src/runtime/index.js';
import { type Tensor, float32, int64 } from '../../src/tensor.js';
import { maxTensorDiff } from '../assert-close.js';

const FIXTURE = '../shared/fixtures/tiny-sd-torch';

let rt: Runtime;
before(async () => {
  rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
});
after(async () => {
  await rt.close();
});

async function runOnce(bytes: Uint8Array, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const s: Session = await rt.createSession(bytes);
  const out = await s.run(feeds);
  await s.release();
  for (const t of Object.values(out)) assert.ok(!isGpuTensor(t));
  return out as Record<string, Tensor>;
}

test('fold: a Shape → Gather → Concat → Reshape chain becomes one initializer', () => {
  const b = new GraphBuilder('chain', { opset: 17 });
  const x = b.input('x', 'float32', ['batch', 6]);
  const shape = b.op('Shape', [x]);
  const half = b.op('Div', [b.op('Gather', [shape, b.ints([1])], { axis: 0 }), b.ints([2])]);
  const target = b.op('Concat', [b.ints([-1]), half], { axis: 0 });
  b.output(b.op('Reshape', [x, target]), 'y', 'float32');
  const model = b.build();
  // Without input shapes, Shape(x) = [batch, 6] is not a constant, but its static part is: Gather, Div and
  // Concat fold, the Shape node is left unused, and the model stays valid for any batch.
  const generic = structuredClone(model);
  const r1 = foldConstants(generic);
  assert.deepEqual(r1, { folded: 3, removedNodes: 1, removedInitializers: 5 });
  assert.deepEqual(summarize(generic).opCounts, { Identity: 1, Reshape: 1 });
  assert.deepEqual(generic.graph.initializers.find((i) => i.name === target)!.data, BigInt64Array.from([-1n, 3n]));
  const fixed = structuredClone(model);
  const r2 = foldConstants(fixed, { x: [4, 6] });
  assert.ok(r2.folded >= 4, JSON.stringify(r2));
  assert.deepEqual(summarize(fixed).opCounts, { Identity: 1, Reshape: 1 });
  const t = fixed.graph.initializers.find((i) => i.name === target)!;
  assert.deepEqual(t.data, BigInt64Array.from([-1n, 3n]));
  assert.equal(fixed.graph.initializers.length, 1, "the chain's own constants are gone");
});

test('fold: the fixture UNet and text encoder keep their outputs after folding at fixed shapes', async (t) => {
  if (!existsSync(FIXTURE)) {
    t.skip(`${FIXTURE} not found`);
    return;
  }
  const unetBytes = readFileSync(`${FIXTURE}/unet/model.onnx`);
  const unet = decodeModel(unetBytes);
  const before = unet.graph.nodes.length;
  const r = foldConstants(unet, { sample: [1, 4, 8, 8], timestep: [1], encoder_hidden_states: [1, 77, 32] });
  assert.ok(
    unet.graph.nodes.length < before * 0.6,
    `${before} → ${unet.graph.nodes.length} nodes (${JSON.stringify(r)})`,
  );
  assert.ok(!summarize(unet).opCounts.Shape, 'no Shape node is left');
  const feeds = {
    sample: float32(
      [1, 4, 8, 8],
      Float32Array.from({ length: 256 }, (_, i) => Math.sin(i)),
    ),
    timestep: int64([1], [500]),
    encoder_hidden_states: float32(
      [1, 77, 32],
      Float32Array.from({ length: 77 * 32 }, (_, i) => Math.cos(i)),
    ),
  };
  const a = await runOnce(unetBytes, feeds);
  const b = await runOnce(encodeModel(unet), feeds);
  assert.ok(maxTensorDiff(a.out_sample!, b.out_sample!) < 1e-4);

  const teBytes = readFileSync(`${FIXTURE}/text_encoder/model.onnx`);
  const te = decodeModel(teBytes);
  foldConstants(te, { input_ids: [1, 77] });
  const ids = {
    input_ids: {
      type: 'int32',
      dims: [1, 77],
      data: Int32Array.from({ length: 77 }, (_, i) => (i === 0 ? 49406 : i < 4 ? 320 + i : 49407)),
    } as Tensor,
  };
  const ta = await runOnce(teBytes, ids);
  const tb = await runOnce(encodeModel(te), ids);
  assert.ok(maxTensorDiff(ta.last_hidden_state!, tb.last_hidden_state!) < 1e-4);
  assert.ok(maxTensorDiff(ta.pooler_output!, tb.pooler_output!) < 1e-4);
});
