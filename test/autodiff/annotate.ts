/**
 * Static shapes for test graphs, measured instead of inferred: one probe run returns Shape(v) of every node
 * output, and element types follow from a small propagation over the ops the tests use. Autodiff reads the
 * result through the model's value_info, exactly as it reads shapes from shape inference.
 */
import { GraphBuilder } from '../../src/onnx/builder.js';
import { cloneModel } from '../../src/onnx/graph.js';
import { type ElemType, type Model, ELEM_TYPE_BY_CODE, attrInt, attrTensor } from '../../src/onnx/ir.js';
import { encodeModel } from '../../src/onnx/codec.js';
import type { Runtime } from '../../src/runtime/index.js';
import type { Tensor } from '../../src/tensor.js';

const INT64_OUT = new Set(['Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero']);
const BOOL_OUT = new Set([
  'Equal',
  'Less',
  'LessOrEqual',
  'Greater',
  'GreaterOrEqual',
  'Not',
  'And',
  'Or',
  'Xor',
  'IsNaN',
  'IsInf',
]);

/** Element types of every value, propagated from inputs and initializers. */
export function propagateTypes(model: Model): Map<string, ElemType> {
  const types = new Map<string, ElemType>();
  const g = model.graph;
  for (const v of g.inputs) types.set(v.name, v.type);
  for (const t of g.initializers) types.set(t.name, t.type);
  for (const n of g.nodes) {
    let t: ElemType | undefined;
    if (INT64_OUT.has(n.opType)) t = 'int64';
    else if (BOOL_OUT.has(n.opType)) t = 'bool';
    else if (n.opType === 'Cast') t = ELEM_TYPE_BY_CODE[attrInt(n, 'to', 1)];
    else if (n.opType === 'Constant') t = attrTensor(n, 'value')?.type ?? 'int64';
    else if (n.opType === 'ConstantOfShape') t = attrTensor(n, 'value')?.type ?? 'float32';
    else if (n.opType === 'Where') t = types.get(n.inputs[1]!);
    else t = types.get(n.inputs.find((i) => i) ?? '');
    for (const o of n.outputs) if (t) types.set(o, t);
  }
  return types;
}

/** Adds value_info with the static shape of every node output, measured by one run of `feeds`. */
export async function annotateByProbe(rt: Runtime, model: Model, feeds: Record<string, Tensor>): Promise<void> {
  const probe = cloneModel(model);
  const b = new GraphBuilder(probe);
  const values = probe.graph.nodes.flatMap((n) => n.outputs).filter((o) => o);
  probe.graph.outputs = [];
  const shapeOutputs = values.map((v) =>
    b.output(b.op('Shape', [v]), `probe_shape_${values.indexOf(v)}`, 'int64', [null]),
  );
  const session = await rt.createSession(encodeModel(probe), { label: 'shape-probe' });
  try {
    const inputFeeds = Object.fromEntries(probe.graph.inputs.map((i) => [i.name, feeds[i.name]!]));
    const out = await session.run(inputFeeds);
    const types = propagateTypes(model);
    const known = new Set([...model.graph.inputs, ...model.graph.valueInfo].map((v) => v.name));
    values.forEach((v, i) => {
      const shape = Array.from((out[shapeOutputs[i]!] as Tensor<'int64'>).data, Number);
      const type = types.get(v) ?? 'float32';
      const existing = model.graph.outputs.find((o) => o.name === v);
      if (existing) {
        existing.shape = shape;
        existing.type = type;
      }
      if (!known.has(v)) model.graph.valueInfo.push({ name: v, type, shape });
    });
  } finally {
    await session.release();
  }
}
