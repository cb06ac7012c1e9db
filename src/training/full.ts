/**
 * Full-UNet fine-tuning: every UNet weight trainable. The parameters are found by where the graph uses them
 * (Conv/Gemm/MatMul weights and biases, normalization scales and shifts, linear biases) and named after the
 * diffusers module that uses them, e.g. `down_blocks.0.resnets.0.conv1.weight`.
 *
 * Exporters deduplicate identical initializers: a freshly initialised model's GroupNorm scales are all ones,
 * and the TorchScript exporter keeps one tensor that many layers read through Identity nodes. PyTorch trains
 * those as separate parameters, so here every USE is its own parameter ("untied"), named after its consumer.
 *
 * Training keeps the base weights as they are and learns a delta: the graph reads W = W0 + Δ wherever it read
 * W0, with Δ a graph input starting at zero. The base weights stay one copy (initializers of the one training
 * graph), the state to checkpoint is Δ and its moments, and the result is the delta itself. Δ files store
 * diffusers' layout (Linear weights [out, in], norm scales [C]) so they can be added to a diffusers state dict.
 */
import { VidpriorError } from '../errors.js';
import { GraphBuilder } from '../onnx/builder.js';
import { sortGraph } from '../onnx/graph.js';
import type { Model, Node, TensorValue } from '../onnx/ir.js';

/** One trainable weight of the UNet (one use of an initializer). */
export interface FullParam {
  /** The diffusers parameter name, e.g. `mid_block.attentions.0.proj_in.weight`. */
  name: string;
  /** The value the consumer read (an initializer, or an Identity of one). */
  value: string;
  /** The initializer behind it. */
  initializer: string;
  /** The node that reads the weight and at which input. */
  node: string;
  input: number;
  /** Dims in the graph. */
  dims: number[];
  /** How the graph's layout maps to diffusers': same, transposed (MatMul [in,out]), or reshaped to `torchDims`. */
  layout: 'same' | 'transpose' | 'reshape';
  torchDims: number[];
}

const TOP_MODULES = [
  'conv_in',
  'conv_out',
  'conv_norm_out',
  'time_embedding',
  'add_embedding',
  'class_embedding',
  'down_blocks',
  'mid_block',
  'up_blocks',
];
const TOP = new RegExp(`(?:^|[/.])((?:${TOP_MODULES.join('|')})(?:[/.].*)?)$`);

/** `…/u/down_blocks.0/resnets.0/norm1/Mul` → `down_blocks.0.resnets.0.norm1` (null when no UNet module). */
function moduleOfNode(nodeName: string): string | null {
  const path = nodeName.split('/').slice(0, -1).join('/');
  const m = TOP.exec(path);
  return m ? m[1]!.replace(/\//g, '.') : null;
}

/** `u.mid_block.attentions.0.norm.weight` → `mid_block.attentions.0.norm.weight` (null when not one). */
function parameterOfValue(value: string): string | null {
  const m = TOP.exec(value);
  return m && /\.(weight|bias)$/.test(m[1]!) ? m[1]!.replace(/\//g, '.') : null;
}

/** Which parameter of its module a consumer's input is: weight, bias, or none (data, shapes, constants). */
function slotOf(node: Node, input: number, dims: number[]): 'weight' | 'bias' | null {
  switch (node.opType) {
    case 'Conv':
    case 'ConvTranspose':
    case 'Gemm':
    case 'LayerNormalization':
    case 'GroupNormalization':
      return input === 1 ? 'weight' : input === 2 ? 'bias' : null;
    case 'MatMul':
      return input === 1 && dims.length === 2 ? 'weight' : null;
    case 'Mul':
      return 'weight';
    case 'Add':
      return 'bias';
    default:
      return null;
  }
}

/**
 * Finds every trainable weight of a UNet: float32 initializers of two or more elements read as a weight or
 * bias by a node inside a UNet module (conv_in … up_blocks … conv_out). Constants (timestep frequencies,
 * GroupNorm's per-group InstanceNormalization ones, scalars, shapes) are not parameters.
 */
export function findFullParams(model: Model): FullParam[] {
  const g = model.graph;
  const inits = new Map<string, TensorValue>(g.initializers.map((t) => [t.name, t]));
  const identitySource = new Map<string, string>();
  for (const n of g.nodes)
    if (n.opType === 'Identity' && inits.has(n.inputs[0]!)) identitySource.set(n.outputs[0]!, n.inputs[0]!);
  const params: FullParam[] = [];
  const names = new Set<string>();
  for (const node of g.nodes) {
    if (node.opType === 'Identity') continue;
    node.inputs.forEach((value, input) => {
      const initName = inits.has(value) ? value : identitySource.get(value);
      if (!initName) return;
      const t = inits.get(initName)!;
      const count = t.dims.reduce((a, b) => a * b, 1);
      if (t.type !== 'float32' || count < 2) return;
      const slot = slotOf(node, input, t.dims);
      if (!slot) return;
      const module = moduleOfNode(node.name);
      let name = module ? `${module}.${slot}` : parameterOfValue(value);
      if (!name) return;
      if (names.has(name)) name = `${name}@${value}`; // two weights of one module: keep both, say which
      names.add(name);
      const isLinear = node.opType === 'MatMul' || (node.opType === 'Gemm' && !transB(node));
      const squeezed = t.dims.filter((d) => d !== 1);
      const reshape = !isLinear && t.dims.length > 1 && squeezed.length === 1 && slotIsVector(node);
      params.push({
        name,
        value,
        initializer: initName,
        node: node.name,
        input,
        dims: [...t.dims],
        layout: isLinear && input === 1 ? 'transpose' : reshape ? 'reshape' : 'same',
        torchDims: isLinear && input === 1 ? [t.dims[1]!, t.dims[0]!] : reshape ? squeezed : [...t.dims],
      });
    });
  }
  if (params.length === 0)
    throw new VidpriorError(
      'E_MODEL_INPUT',
      'found no UNet weights to train (no Conv/MatMul/Gemm weights under UNet modules)',
    );
  return params;
}

function transB(node: Node): boolean {
  const a = node.attributes.transB;
  return a?.type === 'int' && a.value === 1;
}

/** Norm scales/shifts and biases: per-channel vectors stored broadcastable ([C,1,1]) by GroupNorm exports. */
function slotIsVector(node: Node): boolean {
  return node.opType === 'Mul' || node.opType === 'Add';
}

/** The graph values of one parameter's delta. */
export interface FullDelta {
  param: FullParam;
  /** Graph input holding Δ (graph layout, float32, starts at zero). */
  delta: string;
  /** The base weight W0 the consumer read before (AdamW's decay acts on W0 + Δ). */
  base: string;
}

/**
 * Rewires every parameter's consumer to read W0 + Δ, with Δ a new graph input `full.<name>`. In place.
 */
export function injectFullDeltas(model: Model, params: FullParam[]): FullDelta[] {
  const b = new GraphBuilder(model);
  const byName = new Map(model.graph.nodes.map((n) => [n.name, n]));
  const out: FullDelta[] = [];
  for (const p of params) {
    const node = byName.get(p.node);
    if (!node || node.inputs[p.input] !== p.value)
      throw new VidpriorError('E_MODEL_INPUT', `weight ${p.name}: node "${p.node}" does not read "${p.value}"`);
    const delta = b.input(`full.${p.name}`, 'float32', p.dims);
    const sum = b.op('Add', [p.value, delta], {}, { name: `full/${p.name}/add` });
    node.inputs[p.input] = sum;
    out.push({ param: p, delta, base: p.value });
  }
  sortGraph(model.graph);
  return out;
}

/** Graph layout → diffusers layout (a copy when the layout differs). */
export function toTorchLayout(p: FullParam, data: Float32Array): Float32Array {
  if (p.layout !== 'transpose') return data;
  return transpose2d(data, p.dims[0]!, p.dims[1]!);
}

/** Diffusers layout → graph layout. */
export function fromTorchLayout(p: FullParam, data: Float32Array): Float32Array {
  if (p.layout !== 'transpose') return data;
  return transpose2d(data, p.dims[1]!, p.dims[0]!);
}

function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/** Parameter count of a set of weights. */
export function parameterCount(params: readonly { dims: readonly number[] }[]): number {
  return params.reduce((s, p) => s + p.dims.reduce((a, b) => a * b, 1), 0);
}
