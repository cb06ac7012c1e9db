/**
 * Static shape inference: the element type and shape of every value in a graph, for the operators Stable
 * Diffusion exports and vidprior's own training graphs use (rules in shape-rules*.ts). Small int tensors are
 * evaluated along the way (const-eval.ts), so a Reshape whose target is computed from Shape → Gather → Concat
 * gets static dims when the inputs are static, and symbolic dims (e.g. 'batch') flow through such chains.
 *
 *   const { infos } = inferShapes(model, { sample: [1, 4, 16, 16], ... });
 *
 * Fills `graph.valueInfo` (intermediate values) and checks the declared outputs; an operator without a rule
 * is an E_SHAPE error naming the op and the node.
 */
import { VidpriorError } from '../errors.js';
import { type Dim, type Graph, type Model, type Node, type ValueInfo, elementCount } from './ir.js';
import { type Known, evaluateNode, knownFromTensor } from './const-eval.js';
import { GraphIndex, constantNodeValue, opsetOf, topologicalSort } from './graph.js';
import { calledFunction, instantiateFunction } from './functions.js';
import { type RuleContext, type ShapeInfo, type ShapeRule, fmt, isStatic, shapeError } from './shape-dims.js';
import { RULES } from './shape-rules.js';
import { MS_RULES, NN_RULES } from './shape-rules-nn.js';

export type { ShapeInfo } from './shape-dims.js';

export interface InferShapesOptions {
  /** Largest tensor (elements) whose values are computed (default 4096). */
  maxValueElements?: number;
  /** Also write the given input shapes and the inferred output shapes into graph.inputs / graph.outputs. */
  setSignature?: boolean;
}

export interface InferredShapes {
  /** Type and shape of every value: inputs, initializers, node outputs. */
  infos: Map<string, ShapeInfo>;
  /** Known elements of small values (shape arithmetic, constants), possibly symbolic. */
  values: Map<string, Known>;
}

const STANDARD = new Set(['', 'ai.onnx']);

/** The rule for a node, or undefined. Exported so that tests and autodiff can ask whether an op is covered. */
export function shapeRuleFor(node: Node): ShapeRule | undefined {
  if (STANDARD.has(node.domain)) return RULES[node.opType] ?? NN_RULES[node.opType];
  if (node.domain === 'com.microsoft') return MS_RULES[node.opType];
  return undefined;
}

/**
 * Infers every value's type and shape. `inputShapes` overrides graph input shapes (numbers or symbols);
 * it must agree with the static dims the model declares.
 */
export function inferShapes(
  model: Model,
  inputShapes: Record<string, Dim[]> = {},
  opts: InferShapesOptions = {},
): InferredShapes {
  const graph = model.graph;
  const maxValues = opts.maxValueElements ?? 4096;
  const opset = opsetOf(model);
  if (opset === undefined) throw new VidpriorError('E_SHAPE', `model "${graph.name}" imports no default-domain opset`);
  const infos = new Map<string, ShapeInfo>();
  const values = new Map<string, Known>();
  const index = new GraphIndex(graph);

  // 1. Graph inputs (with the caller's shapes) and initializers.
  for (const name of Object.keys(inputShapes)) {
    if (!index.isInput(name)) {
      throw new VidpriorError(
        'E_SHAPE',
        `"${name}" is not an input of "${graph.name}" (inputs: ${graph.inputs.map((v) => v.name).join(', ')})`,
        { input: name },
      );
    }
  }
  for (const v of graph.inputs) infos.set(v.name, { type: v.type, shape: inputShape(v, inputShapes[v.name]) });
  for (const t of graph.initializers) {
    if (!index.isInput(t.name)) infos.set(t.name, { type: t.type, shape: [...t.dims] });
  }
  const knownValueOf = (name: string): Known | undefined => {
    if (!name) return undefined;
    let k = values.get(name);
    if (!k) {
      const init = index.constant(name);
      if (init && index.initializer(name) && elementCount(init.dims) <= maxValues && (k = knownFromTensor(init)))
        values.set(name, k);
    }
    return k;
  };

  // 2. Nodes in dependency order; calls of model functions are inferred through their bodies.
  const inferNode = (node: Node, depth: number, defaultOpset: number): void => {
    const nodeOpset = STANDARD.has(node.domain) ? defaultOpset : (opsetOf(model, node.domain) ?? 1);
    const rule = shapeRuleFor(node);
    if (!rule) {
      const fn = calledFunction(model, node);
      if (!fn || depth > 32) {
        throw new VidpriorError(
          'E_SHAPE',
          `no shape rule for operator ${node.domain ? `${node.domain}::` : ''}${node.opType} (node "${node.name}")`,
          { node: node.name, opType: node.opType },
        );
      }
      const fnOpset = fn.opsetImports.find((o) => STANDARD.has(o.domain))?.version ?? defaultOpset;
      for (const inner of instantiateFunction(fn, node, `${node.name || fn.name}#${depth}`))
        inferNode(inner, depth + 1, fnOpset);
      return;
    }
    const fail = (m: string): never => {
      throw shapeError(node, m);
    };
    const ctx: RuleContext = {
      node,
      opset: nodeOpset,
      inputCount: node.inputs.length,
      fail,
      input: (i) =>
        node.inputs[i]
          ? (infos.get(node.inputs[i]!) ?? fail(`input ${i} "${node.inputs[i]}" has no known type`))
          : undefined,
      req: (i) => ctx.input(i) ?? fail(`required input ${i} is missing`),
      value: (i) => knownValueOf(node.inputs[i] ?? ''),
    };
    const outs = rule(ctx);
    if (node.opType === 'Constant' && STANDARD.has(node.domain)) {
      const t = constantNodeValue(node);
      const k = elementCount(t.dims) <= maxValues ? knownFromTensor(t) : undefined;
      if (k) values.set(node.outputs[0]!, k);
    }
    node.outputs.forEach((o, i) => {
      if (o && outs[i]) infos.set(o, outs[i]!);
    });
    propagateValues(node, ctx, outs, values, nodeOpset, maxValues);
  };
  for (const node of topologicalSort(graph)) inferNode(node, 0, opset);

  // 3. Record intermediate values; check (or set) the declared outputs.
  const declared = new Set([...graph.inputs, ...graph.outputs].map((v) => v.name));
  const kept = graph.valueInfo.filter((v) => !infos.has(v.name) && !declared.has(v.name));
  const inferred: ValueInfo[] = [];
  for (const node of graph.nodes) {
    for (const o of node.outputs) {
      const info = infos.get(o);
      if (o && info && !declared.has(o))
        inferred.push({ name: o, type: info.type, shape: info.shape ? [...info.shape] : null });
    }
  }
  graph.valueInfo = [...kept, ...inferred];
  checkOutputs(graph, infos, opts.setSignature ?? false);
  if (opts.setSignature) for (const v of graph.inputs) v.shape = infos.get(v.name)?.shape ?? v.shape;
  return { infos, values };
}

function inputShape(v: ValueInfo, override: Dim[] | undefined): Dim[] | null {
  if (!override) return v.shape ? [...v.shape] : null;
  if (v.shape) {
    const bad =
      v.shape.length !== override.length ||
      v.shape.some((d, i) => isStatic(d) && isStatic(override[i]) && d !== override[i]);
    if (bad)
      throw new VidpriorError(
        'E_SHAPE',
        `input "${v.name}" is declared ${fmt(v.shape)}, cannot use shape ${fmt(override)}`,
        { input: v.name },
      );
  }
  return [...override];
}

/** Records the elements of a node's outputs when they can be computed (Shape of known shapes, constants …). */
function propagateValues(
  node: Node,
  ctx: RuleContext,
  outs: ShapeInfo[],
  values: Map<string, Known>,
  opset: number,
  maxValues: number,
): void {
  if (!STANDARD.has(node.domain) || node.opType === 'Constant') return;
  const out = node.outputs[0];
  if (!out) return;
  if (node.opType === 'Shape') {
    const s = ctx.input(0)?.shape;
    const len = outs[0]!.shape![0];
    if (!s || !isStatic(len)) return;
    const r = s.length;
    const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
    const start = clamp(node.attributes.start?.type === 'int' ? node.attributes.start.value : 0);
    values.set(out, { type: 'int64', dims: [len], values: s.slice(start, start + len) });
    return;
  }
  if (node.opType === 'Size') {
    const s = ctx.input(0)?.shape;
    if (s?.every(isStatic)) values.set(out, { type: 'int64', dims: [], values: [elementCount(s as number[])] });
    return;
  }
  if (outs.some((o) => !o.shape?.every(isStatic) || elementCount(o.shape as number[]) > maxValues)) return;
  const inputs = node.inputs.map((_, i) => ctx.value(i));
  const dims = outs.map((o) => o.shape as number[]);
  const result = evaluateNode(
    node,
    inputs,
    dims,
    outs.map((o) => o.type),
    opset,
  );
  if (!result) return;
  result.forEach((vals, i) => {
    const name = node.outputs[i];
    if (name) values.set(name, { type: outs[i]!.type, dims: dims[i]!, values: vals });
  });
}

function checkOutputs(graph: Graph, infos: Map<string, ShapeInfo>, set: boolean): void {
  for (const o of graph.outputs) {
    const info = infos.get(o.name);
    if (!info)
      throw new VidpriorError('E_SHAPE', `output "${o.name}" of "${graph.name}" is produced by no node`, {
        output: o.name,
      });
    if (info.type !== o.type) {
      throw new VidpriorError('E_SHAPE', `output "${o.name}" is declared ${o.type} but computes ${info.type}`, {
        output: o.name,
      });
    }
    if (o.shape && info.shape) {
      const bad =
        o.shape.length !== info.shape.length ||
        o.shape.some((d, i) => isStatic(d) && isStatic(info.shape![i]) && d !== info.shape![i]);
      if (bad)
        throw new VidpriorError(
          'E_SHAPE',
          `output "${o.name}" is declared ${fmt(o.shape)} but computes ${fmt(info.shape)}`,
          { output: o.name },
        );
    }
    if (set && info.shape) o.shape = [...info.shape];
  }
}

/** The static shape of `name` from an inference result; E_SHAPE when any dim is not a number. */
export function staticShape(result: InferredShapes, name: string): number[] {
  const s = result.infos.get(name)?.shape;
  if (!s?.every(isStatic))
    throw new VidpriorError('E_SHAPE', `value "${name}" has no static shape (${fmt(s ?? null)})`, { value: name });
  return s as number[];
}
