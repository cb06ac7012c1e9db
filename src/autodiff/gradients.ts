/**
 * Reverse-mode autodiff over an ONNX graph: appends the backward pass of `loss` with respect to `wrt` to the
 * same graph, in standard ONNX operators at the model's own opset, and returns the gradient value names.
 *
 *   const { gradients } = buildGradients(model, { loss: 'loss', wrt: ['lora_A', 'lora_B'] });
 *   builder.output(gradients['lora_A']!, 'grad_lora_A');
 *
 * Only nodes on a path from a `wrt` value to the loss are differentiated, and only through differentiable
 * inputs (shape arithmetic, indices and conditions never carry a gradient). Gradients that fan in are summed
 * with chains of Add (variadic Sum falls back to the CPU on WebGPU).
 */
import { VidpriorError } from '../errors.js';
import { GraphBuilder } from '../onnx/builder.js';
import { topologicalSort } from '../onnx/graph.js';
import type { Dim, ElemType, Model, Node } from '../onnx/ir.js';
import { toFloat16 } from '../tensor.js';
import { type InputGrads, RuleContext } from './rules/context.js';
import { GRADIENT_RULES } from './rules/index.js';
import { type ShapeOracle, staticShapes } from './rules/shapes.js';

export interface GradientOptions {
  /** The scalar (or any-shaped) value to differentiate. */
  loss: string;
  /** Values that get gradients: initializers, graph inputs or any forward value. */
  wrt: string[];
  /** A value holding d(objective)/d(loss), of the loss's shape; default: ones. */
  seedGrad?: string;
  /** Static sizes of graph inputs with symbolic dims (e.g. { sample: [1, 4, 64, 64] }), for shape inference. */
  inputShapes?: Record<string, Dim[]>;
  /** Where static shapes come from; default: static shape inference (with `inputShapes`), then annotations. */
  shapes?: ShapeOracle;
  /** Builder to emit through (when the caller keeps adding nodes); default: a new one over `model`. */
  builder?: GraphBuilder;
}

export interface GradientResult {
  /** For each `wrt` name, the value holding its gradient (zeros when the loss does not depend on it). */
  gradients: Record<string, string>;
  /** How many backward nodes were added. */
  nodesAdded: number;
}

export function buildGradients(model: Model, options: GradientOptions): GradientResult {
  const b = options.builder ?? new GraphBuilder(model);
  const graph = model.graph;
  const shapes = options.shapes ?? staticShapes(model, options.inputShapes);
  const nodesBefore = graph.nodes.length;
  const forward = topologicalSort(graph); // exports are sorted; hand-edited graphs may not be

  // 1. Check the request names real values, at an opset the rules emit for.
  if (b.opset < 13) {
    throw new VidpriorError(
      'E_ONNX',
      `autodiff emits the backward pass at the model's opset, and opset ${b.opset} is older than the 13 it supports (re-export the model at opset 13 or newer)`,
      { opset: b.opset },
    );
  }
  const known = new Set<string>([...graph.inputs.map((v) => v.name), ...graph.initializers.map((t) => t.name)]);
  for (const n of forward) for (const o of n.outputs) known.add(o);
  for (const v of [options.loss, ...options.wrt, ...(options.seedGrad ? [options.seedGrad] : [])]) {
    if (!known.has(v))
      throw new VidpriorError('E_BAD_REQUEST', `autodiff: the graph has no value named "${v}"`, { value: v });
  }

  // 2. Values reachable from wrt through differentiable inputs, and values the loss depends on.
  const fromWrt = new Set(options.wrt);
  const diffInputs = new Map<Node, number[]>();
  for (const n of forward) {
    const rule = ruleFor(n);
    const diff = rule?.differentiable ? rule.differentiable(n) : n.inputs.map((_, i) => i);
    diffInputs.set(n, diff);
    if (diff.some((i) => n.inputs[i] && fromWrt.has(n.inputs[i]!))) for (const o of n.outputs) fromWrt.add(o);
  }
  const toLoss = new Set([options.loss]);
  for (let k = forward.length - 1; k >= 0; k--) {
    const n = forward[k]!;
    if (n.outputs.some((o) => toLoss.has(o))) for (const i of n.inputs) if (i) toLoss.add(i);
  }

  // 3. Seed the loss gradient.
  const grads = new Map<string, string[]>();
  const lossMeta = shapes.meta(options.loss);
  grads.set(options.loss, [options.seedGrad ?? onesLike(b, lossMeta.type, lossMeta.shape)]);

  // Sums the contributions of a value with an Add chain, once, when its gradient is first read.
  const total = (value: string): string | undefined => {
    const parts = grads.get(value);
    if (!parts || parts.length === 0) return undefined;
    let sum = parts[0]!;
    for (let i = 1; i < parts.length; i++) sum = b.scope(`grad/sum/${value}`, () => b.op('Add', [sum, parts[i]!]));
    grads.set(value, [sum]);
    return sum;
  };

  // 4. Walk the forward nodes in reverse topological order, emitting each one's backward nodes.
  for (let k = forward.length - 1; k >= 0; k--) {
    const n = forward[k]!;
    const diff = diffInputs.get(n)!;
    const needed = n.inputs.map((v, i) => Boolean(v) && fromWrt.has(v) && diff.includes(i));
    if (!needed.some(Boolean) || !n.outputs.some((o) => toLoss.has(o))) continue;
    const dY = n.outputs.map((o) => total(o));
    if (dY.every((g) => g === undefined)) continue;
    const rule = ruleFor(n);
    if (!rule?.backward) {
      throw new VidpriorError(
        'E_NO_GRADIENT',
        `no gradient rule for ${n.domain ? `${n.domain}.` : ''}${n.opType} (node "${n.name}"), which lies between the loss and ${options.wrt.length === 1 ? `"${options.wrt[0]}"` : 'the trained values'}`,
        { op: n.opType, domain: n.domain, node: n.name },
      );
    }
    const ctx = new RuleContext(b, shapes, n, needed);
    const dX: InputGrads = rule.backward(ctx, dY);
    n.inputs.forEach((v, i) => {
      const g = dX[i];
      if (!g || !needed[i]) return;
      const list = grads.get(v) ?? [];
      list.push(g);
      grads.set(v, list);
    });
  }

  // 5. Collect the gradient of each wrt value (zeros when the loss does not depend on it).
  const gradients: Record<string, string> = {};
  for (const w of options.wrt) {
    const g = total(w);
    if (g) {
      gradients[w] = g;
      continue;
    }
    const m = shapes.meta(w);
    gradients[w] = b.scope('grad/zeros', () => b.op('Expand', [b.scalar(0, m.type), b.ints(m.shape)]));
  }
  return { gradients, nodesAdded: graph.nodes.length - nodesBefore };
}

/** d(loss)/d(loss): ones of the loss's type and shape. */
function onesLike(b: GraphBuilder, type: ElemType, shape: number[]): string {
  const n = shape.reduce((a, d) => a * d, 1);
  if (type === 'float16') return b.constant(toFloat16(new Float32Array(n).fill(1)), shape, 'float16', 'grad/seed');
  if (type === 'bfloat16') return b.constant(new Uint16Array(n).fill(0x3f80), shape, 'bfloat16', 'grad/seed');
  return b.constant(new Array(n).fill(1), shape, type === 'float64' ? 'float64' : 'float32', 'grad/seed');
}

function ruleFor(n: Node) {
  if (n.domain !== '' && n.domain !== 'ai.onnx') return undefined;
  return GRADIENT_RULES[n.opType];
}
