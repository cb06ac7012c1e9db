/**
 * Model-local functions (FunctionProto), as some exporters emit (one function per module, called by a node
 * whose domain and op type name the function). ONNX Runtime runs them as they are; shape inference looks
 * inside them, and passes that rewrite graphs (autodiff, LoRA injection) want them inlined into a flat graph.
 */
import { VidpriorError } from '../errors.js';
import type { AttributeValue, FunctionDef, Graph, Model, Node } from './ir.js';
import { cloneGraph } from './graph.js';

/** The model function a node calls, if any. */
export function calledFunction(model: Pick<Model, 'functions'>, node: Node): FunctionDef | undefined {
  return model.functions.find((f) => f.name === node.opType && f.domain === node.domain);
}

/**
 * The body of `fn` as called by `call`: formal inputs and outputs renamed to the call's values, internal
 * values and node names prefixed with `prefix`, attribute references replaced by the call's attributes (or
 * the function's defaults; an attribute with neither is left out, as ONNX specifies).
 */
export function instantiateFunction(fn: FunctionDef, call: Node, prefix: string): Node[] {
  const rename = new Map<string, string>();
  fn.inputs.forEach((formal, i) => {
    rename.set(formal, call.inputs[i] ?? '');
  });
  fn.outputs.forEach((formal, i) => {
    rename.set(formal, call.outputs[i] ?? '');
  });
  const name = (v: string): string => (v === '' ? '' : (rename.get(v) ?? `${prefix}/${v}`));
  const body = cloneGraph({
    name: fn.name,
    nodes: fn.nodes,
    inputs: [],
    outputs: [],
    initializers: [],
    valueInfo: [],
  }).nodes;
  return body.map((n, i) => {
    const attributes: Record<string, AttributeValue> = { ...n.attributes };
    for (const [attrName, r] of Object.entries(n.attributeRefs ?? {})) {
      const value = call.attributes[r.ref] ?? fn.attributeDefaults?.[r.ref];
      if (!value) continue;
      if (value.type !== r.type) {
        throw new VidpriorError(
          'E_ONNX',
          `node "${call.name}" passes attribute "${r.ref}" as ${value.type}, but function ${fn.domain}::${fn.name} uses it as ${r.type}`,
          { node: call.name },
        );
      }
      attributes[attrName] = value;
    }
    const inner: Node = {
      ...n,
      name: `${prefix}/${n.name || `${n.opType}_${i}`}`,
      inputs: n.inputs.map(name),
      outputs: n.outputs.map(name),
      attributes,
    };
    delete inner.attributeRefs;
    return inner;
  });
}

/**
 * Replaces every call of a model function in the main graph by the function's body, repeatedly (functions
 * may call functions), and drops functions no longer called. Returns the number of calls inlined.
 */
export function inlineFunctions(model: Model, maxDepth = 32): number {
  let inlined = 0;
  for (let depth = 0; ; depth++) {
    const g: Graph = model.graph;
    if (!g.nodes.some((n) => calledFunction(model, n))) break;
    if (depth >= maxDepth)
      throw new VidpriorError('E_ONNX', `model functions nest deeper than ${maxDepth} levels (recursive?)`);
    const nodes: Node[] = [];
    for (const n of g.nodes) {
      const fn = calledFunction(model, n);
      if (!fn) {
        nodes.push(n);
        continue;
      }
      nodes.push(...instantiateFunction(fn, n, n.name || `${fn.name}_${inlined}`));
      inlined++;
    }
    g.nodes = nodes;
  }
  // Keep the functions still reachable from the graph (none after a full inline, unless subgraphs call them).
  const reachable = new Set<FunctionDef>();
  const visit = (nodes: Node[]): void => {
    for (const n of nodes) {
      const f = calledFunction(model, n);
      if (f && !reachable.has(f)) {
        reachable.add(f);
        visit(f.nodes);
      }
      for (const a of Object.values(n.attributes)) {
        if (a.type === 'graph') visit(a.value.nodes);
        else if (a.type === 'graphs') for (const sub of a.value) visit(sub.nodes);
      }
    }
  };
  visit(model.graph.nodes);
  model.functions = model.functions.filter((f) => reachable.has(f));
  return inlined;
}
