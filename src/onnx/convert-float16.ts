/**
 * float32 → float16 conversion of a model: weights and compute in half precision (GPU speed, half the
 * memory), with float32 kept where half precision is unsafe or not allowed:
 *  - ops in the block list (random generators, Range, ConstantOfShape, CumSum by default) and nodes whose
 *    names match the block patterns (by default diffusers' sinusoidal timestep embedding, `time_proj/`:
 *    sin(t·f) for t up to 1000 loses its phase in fp16);
 *  - input slots the operator defines as float32 only (Resize/Upsample scales and roi) and outputs it
 *    defines as float32 (LayerNormalization's mean and inverse std-dev, stash_type);
 *  - the model's inputs and outputs, unless `io: 'float16'`: Casts at the boundary keep its signature.
 * A Cast is inserted wherever a value's new type differs from what a consumer needs (one per value and
 * type); initializers read in both precisions are stored twice rather than cast at run time.
 */
import { VidpriorError } from '../errors.js';
import type { Graph, Model, Node, TensorValue } from './ir.js';
import { ELEM_TYPE_CODE } from './ir.js';
import { GraphIndex, cloneModel, subgraphsOf } from './graph.js';
import { inferShapes } from './shape-inference.js';

export interface Float16Options {
  /** 'float32' (default): inputs/outputs keep float32 with Casts inside; 'float16': they become float16. */
  io?: 'float32' | 'float16';
  /** Op types computed in float32 (default DEFAULT_FP32_OPS). */
  blockOps?: readonly string[];
  /** Nodes computed in float32, by name (exact strings or patterns; default DEFAULT_FP32_NODES). */
  blockNodes?: readonly (string | RegExp)[];
}

export const DEFAULT_FP32_OPS: readonly string[] = [
  'Range',
  'ConstantOfShape',
  'CumSum',
  'RandomNormal',
  'RandomUniform',
  'RandomNormalLike',
  'RandomUniformLike',
  'Multinomial',
  'Bernoulli',
  'EyeLike',
];

export const DEFAULT_FP32_NODES: readonly (string | RegExp)[] = [/(^|\/)time_proj\//];

/** Input slots that must stay float32 whatever the node computes in. */
function float32InputSlots(node: Node, opset: number): number[] {
  if (node.opType === 'Resize') return opset >= 11 ? [1, 2] : [1];
  if (node.opType === 'Upsample') return [1];
  return [];
}

/** Output slots that stay float32 (their type is set by an attribute, not by the input type). */
function float32OutputSlots(node: Node): number[] {
  if (node.opType === 'LayerNormalization') return [1, 2];
  return [];
}

/**
 * float32 data → float16 bits, round to nearest even, finite values clamped to ±65504 (as onnxconverter-common
 * does) so that large masks stay finite. Bit arithmetic on the float32 words (not one call per element):
 * SD-sized UNets hold 860M weights.
 */
export function toHalfClamped(data: Float32Array): Uint16Array {
  const words = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const out = new Uint16Array(data.length);
  for (let i = 0; i < words.length; i++) {
    const x = words[i]!;
    const sign = (x >>> 16) & 0x8000;
    const abs = x & 0x7fffffff;
    let h: number;
    if (abs >= 0x7f800000)
      h = 0x7c00 | (abs > 0x7f800000 ? 0x200 : 0); // inf, NaN
    else if (abs >= 0x477ff000)
      h = 0x7bff; // ≥ 65520 would round to inf: clamp to 65504
    else if (abs >= 0x38800000) {
      // normal half
      h = (abs - 0x38000000) >>> 13;
      const rem = abs & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
    } else if (abs >= 0x33000000) {
      // subnormal half
      const shift = 126 - (abs >>> 23);
      const m = (abs & 0x7fffff) | 0x800000;
      h = m >>> shift;
      const rem = m & ((1 << shift) - 1),
        halfway = 1 << (shift - 1);
      if (rem > halfway || (rem === halfway && h & 1)) h++;
    } else h = 0;
    out[i] = sign | h;
  }
  return out;
}

function halfTensor(t: TensorValue, name = t.name): TensorValue {
  if (!t.data)
    throw new VidpriorError(
      'E_ONNX',
      `tensor "${t.name}" is not loaded: load its external data before converting to float16`,
      { tensor: t.name },
    );
  return { ...t, name, type: 'float16', data: toHalfClamped(t.data as Float32Array) };
}

type Precision = 'f16' | 'f32';

/** Returns a float16 copy of `model` (the input is not modified). */
export function convertToFloat16(model: Model, opts: Float16Options = {}): Model {
  const out = cloneModel(model);
  const g = out.graph;
  if (g.nodes.some((n) => subgraphsOf(n).length)) {
    throw new VidpriorError(
      'E_ONNX',
      `model "${g.name}" has control-flow subgraphs, which float16 conversion does not handle`,
    );
  }
  // 1. Types of every value, from shape inference.
  const { infos } = inferShapes(out);
  const isF32 = (v: string): boolean => v !== '' && infos.get(v)?.type === 'float32';
  const opset = out.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx')!.version;
  const blockOps = new Set(opts.blockOps ?? DEFAULT_FP32_OPS);
  const blockNodes = opts.blockNodes ?? DEFAULT_FP32_NODES;
  const ioHalf = opts.io === 'float16';
  const converted = new Set<Node>(
    g.nodes.filter(
      (n) =>
        !blockOps.has(n.opType) && !blockNodes.some((p) => (typeof p === 'string' ? p === n.name : p.test(n.name))),
    ),
  );

  // 2. What each consumer slot needs, and what each producer gives after conversion.
  const wants = (n: Node, slot: number): Precision =>
    converted.has(n) && !float32InputSlots(n, opset).includes(slot) ? 'f16' : 'f32';
  const index = new GraphIndex(g);
  const outputNames = new Set(g.outputs.map((o) => o.name));
  const consumerNeeds = (v: string): Set<Precision> => {
    const needs = new Set<Precision>();
    for (const c of index.consumers(v))
      c.inputs.forEach((i, slot) => {
        if (i === v) needs.add(wants(c, slot));
      });
    if (outputNames.has(v)) needs.add(ioHalf ? 'f16' : 'f32');
    return needs;
  };
  const gives = new Map<string, Precision>();
  for (const v of g.inputs) if (isF32(v.name)) gives.set(v.name, ioHalf ? 'f16' : 'f32');
  // Constants (initializers, Constant nodes) take the precision all their readers want (float16 if any wants it).
  const constantPrecision = (v: string): Precision => (consumerNeeds(v).has('f16') ? 'f16' : 'f32');
  // (An initializer that is also a graph input is an input: a feed may replace it.)
  for (const t of g.initializers)
    if (isF32(t.name) && !index.isInput(t.name)) gives.set(t.name, constantPrecision(t.name));
  for (const n of g.nodes) {
    const keep = float32OutputSlots(n);
    n.outputs.forEach((o, slot) => {
      if (!isF32(o)) return;
      if (n.opType === 'Constant') gives.set(o, constantPrecision(o));
      else gives.set(o, converted.has(n) && !keep.includes(slot) ? 'f16' : 'f32');
    });
  }

  // 3. Convert constants and attributes; rewrite inputs through Casts (or copies of initializers).
  const used = new Set<string>([...g.inputs.map((v) => v.name), ...g.initializers.map((t) => t.name)]);
  for (const n of g.nodes) {
    used.add(n.name);
    for (const o of n.outputs) used.add(o);
  }
  const fresh = (hint: string): string => {
    let name = hint;
    for (let i = 1; used.has(name); i++) name = `${hint}_${i}`;
    used.add(name);
    return name;
  };
  const original = new Map(model.graph.initializers.map((t) => [t.name, t]));
  g.initializers = g.initializers.map((t) => (gives.get(t.name) === 'f16' ? halfTensor(t) : t));
  const extraInits: TensorValue[] = [];
  const casts = new Map<string, string>();
  const castTo = (v: string, to: Precision, before: Node[]): string => {
    const key = `${v}|${to}`;
    let name = casts.get(key);
    if (name) return name;
    name = fresh(`${v}_${to === 'f16' ? 'fp16' : 'fp32'}`);
    const init = index.isInput(v) ? undefined : original.get(v);
    if (init)
      extraInits.push(to === 'f16' ? halfTensor(init, name) : { ...init, name }); // stored twice, never cast
    else before.push(castNode(fresh(`Cast_${name}`), v, name, to));
    casts.set(key, name);
    return name;
  };
  for (const v of g.inputs) if (gives.get(v.name) === 'f16') v.type = 'float16';
  const nodes: Node[] = [];
  for (const n of g.nodes) {
    const before: Node[] = [];
    n.inputs = n.inputs.map((v, slot) => {
      const have = gives.get(v);
      const need = wants(n, slot);
      return !have || have === need ? v : castTo(v, need, before);
    });
    if (converted.has(n)) convertAttributes(n, gives);
    nodes.push(...before, n);
  }
  g.nodes = nodes;
  g.initializers.push(...extraInits);

  // 4. Outputs: keep their names and (unless io 'float16') their float32 type.
  for (const o of g.outputs) {
    const have = gives.get(o.name);
    if (!have) continue;
    const need: Precision = ioHalf ? 'f16' : 'f32';
    if (have === need) {
      o.type = need === 'f16' ? 'float16' : 'float32';
      continue;
    }
    renameOutputProducer(
      g,
      o.name,
      fresh(`${o.name}_${have === 'f16' ? 'fp16' : 'fp32'}`),
      fresh(`Cast_${o.name}`),
      need,
    );
    o.type = need === 'f16' ? 'float16' : 'float32';
  }

  // 5. Recompute value types (this also checks that every op sees consistent input types).
  g.valueInfo = [];
  inferShapes(out);
  return out;
}

/** Attributes that carry a float32 type or value and must follow the node into float16. */
function convertAttributes(n: Node, gives: Map<string, Precision>): void {
  const a = n.attributes;
  if (
    n.opType === 'Cast' &&
    a.to?.type === 'int' &&
    a.to.value === ELEM_TYPE_CODE.float32 &&
    gives.get(n.outputs[0]!) === 'f16'
  ) {
    a.to = { type: 'int', value: ELEM_TYPE_CODE.float16 };
  }
  if (
    n.opType === 'Constant' &&
    a.value?.type === 'tensor' &&
    a.value.value.type === 'float32' &&
    gives.get(n.outputs[0]!) === 'f16'
  ) {
    a.value = { type: 'tensor', value: halfTensor(a.value.value) };
  }
  if (n.opType === 'Constant' && gives.get(n.outputs[0]!) === 'f16' && (a.value_float || a.value_floats)) {
    const vals =
      a.value_float?.type === 'float'
        ? [a.value_float.value]
        : a.value_floats?.type === 'floats'
          ? a.value_floats.value
          : [];
    const scalar = !!a.value_float;
    delete a.value_float;
    delete a.value_floats;
    a.value = {
      type: 'tensor',
      value: {
        name: '',
        type: 'float16',
        dims: scalar ? [] : [vals.length],
        data: toHalfClamped(Float32Array.from(vals)),
      },
    };
  }
  if (
    n.opType === 'ConstantOfShape' &&
    a.value?.type === 'tensor' &&
    a.value.value.type === 'float32' &&
    gives.get(n.outputs[0]!) === 'f16'
  ) {
    a.value = { type: 'tensor', value: halfTensor(a.value.value) };
  }
}

function castNode(name: string, input: string, output: string, to: Precision): Node {
  return {
    name,
    opType: 'Cast',
    domain: '',
    inputs: [input],
    outputs: [output],
    attributes: { to: { type: 'int', value: ELEM_TYPE_CODE[to === 'f16' ? 'float16' : 'float32'] } },
  };
}

/** Renames the value an output is produced under and adds a Cast that produces the output itself. */
function renameOutputProducer(g: Graph, output: string, internal: string, castName: string, to: Precision): void {
  for (const n of g.nodes) {
    n.outputs = n.outputs.map((o) => (o === output ? internal : o));
    n.inputs = n.inputs.map((i) => (i === output ? internal : i));
  }
  g.nodes.push(castNode(castName, internal, output, to));
}
