/**
 * Walking and rewriting graphs: an index (who produces and who consumes each value), topological order, dead
 * code removal, and the small rewrites that passes (folding, autodiff, LoRA injection, fp16 conversion) are made
 * of. Values are names (see ir.ts); a GraphIndex is a snapshot: rebuild it after changing the graph.
 *
 * Subgraphs (If/Loop/Scan bodies) may read values of the enclosing graph by name: such "outer references"
 * count as inputs of the node that owns the subgraph, so sorting, dead-code removal and renaming respect them.
 */
import { VidpriorError } from '../errors.js';
import {
  type AttributeValue,
  type ElemType,
  type Graph,
  type Model,
  type Node,
  type TensorValue,
  type ValueInfo,
  ELEM_SIZE,
  elementCount,
} from './ir.js';

// ---- subgraphs ----------------------------------------------------------------------------------------

/** The subgraphs held by a node's attributes. */
export function subgraphsOf(node: Node): Graph[] {
  const out: Graph[] = [];
  for (const a of Object.values(node.attributes)) {
    if (a.type === 'graph') out.push(a.value);
    else if (a.type === 'graphs') out.push(...a.value);
  }
  return out;
}

/** Names a graph reads from its enclosing scope (used but not defined inside it), recursively. */
export function outerReferences(graph: Graph): Set<string> {
  const defined = new Set<string>([...graph.inputs.map((v) => v.name), ...graph.initializers.map((t) => t.name)]);
  for (const n of graph.nodes) for (const o of n.outputs) defined.add(o);
  const refs = new Set<string>();
  for (const n of graph.nodes) {
    for (const i of n.inputs) if (i && !defined.has(i)) refs.add(i);
    for (const sub of subgraphsOf(n)) for (const r of outerReferences(sub)) if (!defined.has(r)) refs.add(r);
  }
  return refs;
}

/** A node's inputs including the outer references of its subgraphs (omitted optional inputs dropped). */
export function nodeDependencies(node: Node): string[] {
  const deps = node.inputs.filter((i) => i !== '');
  for (const sub of subgraphsOf(node)) deps.push(...outerReferences(sub));
  return deps;
}

// ---- index --------------------------------------------------------------------------------------------

/** A read-only index over one graph. Build a new one after the graph changes. */
export class GraphIndex {
  readonly graph: Graph;
  private readonly producers = new Map<string, Node>();
  private readonly consumerMap = new Map<string, Node[]>();
  private readonly initializers = new Map<string, TensorValue>();
  private readonly infos = new Map<string, ValueInfo>();
  private readonly nodes = new Map<string, Node>();
  private readonly inputs = new Set<string>();
  private readonly outputs = new Set<string>();

  constructor(graph: Graph) {
    this.graph = graph;
    for (const t of graph.initializers) this.initializers.set(t.name, t);
    for (const v of graph.valueInfo) this.infos.set(v.name, v);
    for (const v of graph.outputs) {
      this.infos.set(v.name, v);
      this.outputs.add(v.name);
    }
    for (const v of graph.inputs) {
      this.infos.set(v.name, v);
      this.inputs.add(v.name);
    }
    for (const n of graph.nodes) {
      if (n.name) this.nodes.set(n.name, n);
      for (const o of n.outputs) if (o) this.producers.set(o, n);
      for (const d of new Set(nodeDependencies(n))) {
        const list = this.consumerMap.get(d);
        if (list) list.push(n);
        else this.consumerMap.set(d, [n]);
      }
    }
  }

  /** The node producing `value` (undefined for graph inputs, initializers and outer values). */
  producer(value: string): Node | undefined {
    return this.producers.get(value);
  }
  /** Nodes reading `value` (directly or from a subgraph), in graph order, each once. */
  consumers(value: string): Node[] {
    return this.consumerMap.get(value) ?? [];
  }
  initializer(name: string): TensorValue | undefined {
    return this.initializers.get(name);
  }
  /** Type and shape of a graph input, output or annotated intermediate value. */
  valueInfo(name: string): ValueInfo | undefined {
    return this.infos.get(name);
  }
  node(name: string): Node | undefined {
    return this.nodes.get(name);
  }
  isInput(name: string): boolean {
    return this.inputs.has(name);
  }
  isOutput(name: string): boolean {
    return this.outputs.has(name);
  }
  /** True when `name` is defined in this graph (input, initializer or node output). */
  has(name: string): boolean {
    return this.inputs.has(name) || this.initializers.has(name) || this.producers.has(name);
  }

  /**
   * The constant value of `name` when it is one: an initializer that is not also a graph input (those can
   * be overridden at run time), or the output of a Constant node.
   */
  constant(name: string): TensorValue | undefined {
    const init = this.initializers.get(name);
    if (init) return this.inputs.has(name) ? undefined : init;
    const p = this.producers.get(name);
    return p && p.opType === 'Constant' && (p.domain === '' || p.domain === 'ai.onnx')
      ? constantNodeValue(p)
      : undefined;
  }
}

export function indexGraph(graph: Graph): GraphIndex {
  return new GraphIndex(graph);
}

/** The tensor a Constant node produces, whichever value_* attribute holds it. */
export function constantNodeValue(node: Node): TensorValue {
  const name = node.outputs[0] ?? '';
  const a = node.attributes;
  const scalarOrList = (type: ElemType, values: number[], scalar: boolean): TensorValue => {
    const data = type === 'int64' ? BigInt64Array.from(values, (v) => BigInt(v)) : Float32Array.from(values);
    return { name, type, dims: scalar ? [] : [values.length], data };
  };
  const v = a.value,
    f = a.value_float,
    fs = a.value_floats,
    i = a.value_int,
    is = a.value_ints;
  if (v?.type === 'tensor') return { ...v.value, name };
  if (f?.type === 'float') return scalarOrList('float32', [f.value], true);
  if (fs?.type === 'floats') return scalarOrList('float32', fs.value, false);
  if (i?.type === 'int') return scalarOrList('int64', [i.value], true);
  if (is?.type === 'ints') return scalarOrList('int64', is.value, false);
  const s = a.value_string,
    ss = a.value_strings;
  if (s?.type === 'string') return { name, type: 'string', dims: [], strings: [s.value] };
  if (ss?.type === 'strings') return { name, type: 'string', dims: [ss.value.length], strings: ss.value };
  throw new VidpriorError('E_ONNX', `Constant node "${node.name}" has no supported value attribute`, {
    node: node.name,
  });
}

// ---- order --------------------------------------------------------------------------------------------

/**
 * The graph's nodes in an order where every value is produced before it is used. Stable: an already sorted
 * graph keeps its order. Throws E_ONNX naming a node on a cycle or on a value nobody defines.
 */
export function topologicalSort(graph: Graph, outerScope: Iterable<string> = []): Node[] {
  const nodes = graph.nodes;
  const available = new Set<string>([
    ...outerScope,
    ...graph.inputs.map((v) => v.name),
    ...graph.initializers.map((t) => t.name),
  ]);
  const producerIndex = new Map<string, number>();
  nodes.forEach((n, i) => {
    for (const o of n.outputs) if (o) producerIndex.set(o, i);
  });
  const waiting = new Array<number>(nodes.length).fill(0);
  const dependents: number[][] = nodes.map(() => []);
  nodes.forEach((n, i) => {
    for (const d of new Set(nodeDependencies(n))) {
      const p = producerIndex.get(d);
      if (p !== undefined && p !== i) {
        waiting[i]!++;
        dependents[p]!.push(i);
      } else if (p === i)
        throw new VidpriorError('E_ONNX', `node "${n.name}" (${n.opType}) reads its own output "${d}"`, {
          node: n.name,
        });
      else if (!available.has(d))
        throw new VidpriorError(
          'E_ONNX',
          `node "${n.name}" (${n.opType}) reads "${d}", which no node, input or initializer defines`,
          { node: n.name, value: d },
        );
    }
  });
  // Kahn's algorithm with the ready set ordered by original position (a binary min-heap).
  const heap: number[] = [];
  const push = (x: number): void => {
    heap.push(x);
    for (let i = heap.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (heap[p]! <= x) break;
      heap[i] = heap[p]!;
      heap[p] = x;
      i = p;
    }
  };
  const pop = (): number => {
    const top = heap[0]!,
      last = heap.pop()!;
    if (heap.length) {
      let i = 0;
      heap[0] = last;
      for (;;) {
        const l = 2 * i + 1,
          r = l + 1;
        let m = i;
        if (l < heap.length && heap[l]! < heap[m]!) m = l;
        if (r < heap.length && heap[r]! < heap[m]!) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  };
  waiting.forEach((w, i) => {
    if (w === 0) push(i);
  });
  const order: Node[] = [];
  while (heap.length) {
    const i = pop();
    order.push(nodes[i]!);
    for (const d of dependents[i]!) if (--waiting[d]! === 0) push(d);
  }
  if (order.length < nodes.length) {
    const stuck = nodes.find((_, i) => waiting[i]! > 0)!;
    throw new VidpriorError(
      'E_ONNX',
      `graph "${graph.name}" has a cycle through node "${stuck.name}" (${stuck.opType})`,
      { node: stuck.name },
    );
  }
  return order;
}

/** Sorts `graph.nodes` in place (see topologicalSort). */
export function sortGraph(graph: Graph): void {
  graph.nodes = topologicalSort(graph);
}

// ---- rewrites -----------------------------------------------------------------------------------------

/**
 * Removes nodes whose outputs reach no graph output, then initializers and value infos nobody uses. Graph
 * inputs stay (they are the model's signature). Returns how many nodes and initializers went.
 */
export function removeDeadNodes(graph: Graph): { nodes: number; initializers: number } {
  const index = new GraphIndex(graph);
  const live = new Set<string>(graph.outputs.map((v) => v.name));
  const liveNodes = new Set<Node>();
  const stack = [...live];
  while (stack.length) {
    const p = index.producer(stack.pop()!);
    if (!p || liveNodes.has(p)) continue;
    liveNodes.add(p);
    for (const d of nodeDependencies(p))
      if (!live.has(d)) {
        live.add(d);
        stack.push(d);
      }
  }
  const nodesBefore = graph.nodes.length,
    initsBefore = graph.initializers.length;
  graph.nodes = graph.nodes.filter((n) => liveNodes.has(n));
  graph.initializers = graph.initializers.filter((t) => live.has(t.name));
  graph.valueInfo = graph.valueInfo.filter((v) => live.has(v.name));
  return { nodes: nodesBefore - graph.nodes.length, initializers: initsBefore - graph.initializers.length };
}

/** Renames uses of a value inside a graph and its subgraphs (a subgraph that defines the name shadows it). */
function renameUses(graph: Graph, from: string, to: string): void {
  for (const n of graph.nodes) {
    n.inputs = n.inputs.map((i) => (i === from ? to : i));
    for (const sub of subgraphsOf(n)) {
      const shadowed =
        sub.inputs.some((v) => v.name === from) ||
        sub.initializers.some((t) => t.name === from) ||
        sub.nodes.some((m) => m.outputs.includes(from));
      if (!shadowed) renameUses(sub, from, to);
    }
  }
}

/**
 * Makes every node that reads `from` read `to` instead (subgraphs included). With `outputs`, a graph output
 * named `from` is renamed too, else it keeps being produced under its own name.
 */
export function replaceAllUses(graph: Graph, from: string, to: string, opts: { outputs?: boolean } = {}): void {
  renameUses(graph, from, to);
  if (opts.outputs) for (const o of graph.outputs) if (o.name === from) o.name = to;
}

/** Renames a value everywhere it appears: its definition, its uses, outputs and value infos. */
export function renameValue(graph: Graph, from: string, to: string): void {
  if (from === to) return;
  const index = new GraphIndex(graph);
  if (!index.has(from))
    throw new VidpriorError('E_ONNX', `graph "${graph.name}" has no value "${from}" to rename`, { value: from });
  if (index.has(to))
    throw new VidpriorError('E_ONNX', `cannot rename "${from}" to "${to}": the graph already has a value "${to}"`, {
      value: to,
    });
  for (const v of [...graph.inputs, ...graph.outputs, ...graph.valueInfo]) if (v.name === from) v.name = to;
  for (const t of graph.initializers) if (t.name === from) t.name = to;
  for (const n of graph.nodes) n.outputs = n.outputs.map((o) => (o === from ? to : o));
  renameUses(graph, from, to);
}

/** Inserts nodes before or after the named node (default: at the end). Does not re-sort. */
export function insertNodes(graph: Graph, nodes: Node[], at: { before?: string; after?: string } = {}): void {
  const anchor = at.before ?? at.after;
  if (anchor === undefined) {
    graph.nodes.push(...nodes);
    return;
  }
  const i = graph.nodes.findIndex((n) => n.name === anchor);
  if (i < 0) throw new VidpriorError('E_ONNX', `graph "${graph.name}" has no node "${anchor}"`, { node: anchor });
  graph.nodes.splice(at.before !== undefined ? i : i + 1, 0, ...nodes);
}

/** A name not yet used for a value or node in the graph, derived from `hint`. */
export function uniqueName(graph: Graph, hint: string): string {
  const used = new Set<string>([...graph.inputs.map((v) => v.name), ...graph.initializers.map((t) => t.name)]);
  for (const n of graph.nodes) {
    used.add(n.name);
    for (const o of n.outputs) used.add(o);
  }
  let name = hint;
  for (let i = 1; used.has(name); i++) name = `${hint}_${i}`;
  return name;
}

// ---- cloning ------------------------------------------------------------------------------------------

/** A deep copy of the graph's structure. Tensor data is shared unless `copyData` (treat data as immutable). */
export function cloneGraph(graph: Graph, opts: { copyData?: boolean } = {}): Graph {
  const tensor = (t: TensorValue): TensorValue => {
    const c: TensorValue = { ...t, dims: [...t.dims] };
    if (t.data && opts.copyData) c.data = t.data.slice();
    if (t.strings) c.strings = [...t.strings];
    if (t.external) c.external = { ...t.external };
    return c;
  };
  const attribute = (a: AttributeValue): AttributeValue => {
    switch (a.type) {
      case 'tensor':
        return { type: 'tensor', value: tensor(a.value) };
      case 'tensors':
        return { type: 'tensors', value: a.value.map(tensor) };
      case 'graph':
        return { type: 'graph', value: cloneGraph(a.value, opts) };
      case 'graphs':
        return { type: 'graphs', value: a.value.map((g) => cloneGraph(g, opts)) };
      case 'ints':
      case 'floats':
      case 'strings':
        return { ...a, value: [...a.value] } as AttributeValue;
      default:
        return { ...a };
    }
  };
  const info = (v: ValueInfo): ValueInfo => ({ ...v, shape: v.shape ? [...v.shape] : null });
  return {
    ...graph,
    nodes: graph.nodes.map((n) => ({
      ...n,
      inputs: [...n.inputs],
      outputs: [...n.outputs],
      attributes: Object.fromEntries(Object.entries(n.attributes).map(([k, a]) => [k, attribute(a)])),
    })),
    inputs: graph.inputs.map(info),
    outputs: graph.outputs.map(info),
    initializers: graph.initializers.map(tensor),
    valueInfo: graph.valueInfo.map(info),
  };
}

/** A deep copy of a model (see cloneGraph for data sharing). */
export function cloneModel(model: Model, opts: { copyData?: boolean } = {}): Model {
  return {
    ...model,
    opsetImports: model.opsetImports.map((o) => ({ ...o })),
    graph: cloneGraph(model.graph, opts),
    metadata: { ...model.metadata },
    functions: model.functions.map((f) => ({
      ...f,
      nodes: cloneGraph({ name: '', nodes: f.nodes, inputs: [], outputs: [], initializers: [], valueInfo: [] }, opts)
        .nodes,
    })),
  };
}

// ---- opsets and summaries -----------------------------------------------------------------------------

/** The model's opset for `domain` ('' and 'ai.onnx' both name the default domain); undefined if not imported. */
export function opsetOf(model: Model, domain = ''): number | undefined {
  const isDefault = (d: string): boolean => d === '' || d === 'ai.onnx';
  return model.opsetImports.find((o) => (isDefault(domain) ? isDefault(o.domain) : o.domain === domain))?.version;
}

export interface ModelSummary {
  graphName: string;
  producer: string;
  irVersion: number;
  opsets: Record<string, number>;
  nodeCount: number;
  /** Node count per op type ('domain::Op' outside the default domain), most frequent first. */
  opCounts: Record<string, number>;
  /** Initializer elements and bytes per element type (external tensors included). */
  parameters: { count: number; bytes: number; byType: Partial<Record<ElemType, { count: number; bytes: number }>> };
  /** Bytes of initializers stored as external data. */
  externalBytes: number;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

/** Op counts, parameter counts and the signature of a model (for `vidprior models inspect`). */
export function summarize(model: Model): ModelSummary {
  const g = model.graph;
  const counts = new Map<string, number>();
  const countOps = (graph: Graph): void => {
    for (const n of graph.nodes) {
      const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}::${n.opType}` : n.opType;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      subgraphsOf(n).forEach(countOps);
    }
  };
  countOps(g);
  const byType: ModelSummary['parameters']['byType'] = {};
  let count = 0,
    bytes = 0,
    externalBytes = 0;
  for (const t of g.initializers) {
    const n = elementCount(t.dims);
    const b = t.data ? t.data.byteLength : t.external ? t.external.length : n * ELEM_SIZE[t.type];
    const entry = (byType[t.type] ??= { count: 0, bytes: 0 });
    entry.count += n;
    entry.bytes += b;
    count += n;
    bytes += b;
    if (t.external && !t.data) externalBytes += b;
  }
  return {
    graphName: g.name,
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    irVersion: model.irVersion,
    opsets: Object.fromEntries(model.opsetImports.map((o) => [o.domain || 'ai.onnx', o.version])),
    nodeCount: g.nodes.length,
    opCounts: Object.fromEntries([...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))),
    parameters: { count, bytes, byType },
    externalBytes,
    inputs: g.inputs.filter((v) => !g.initializers.some((t) => t.name === v.name)),
    outputs: g.outputs,
  };
}

/** A few human-readable lines for a summary. */
export function formatSummary(s: ModelSummary): string {
  const shape = (v: ValueInfo): string =>
    `${v.name}: ${v.type}[${v.shape ? v.shape.map((d) => d ?? '?').join(', ') : '?'}]`;
  const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
  return [
    `graph ${s.graphName || '(unnamed)'} · ${s.producer || 'unknown producer'} · IR ${s.irVersion} · opsets ${Object.entries(
      s.opsets,
    )
      .map(([d, v]) => `${d} ${v}`)
      .join(', ')}`,
    `inputs:  ${s.inputs.map(shape).join('; ')}`,
    `outputs: ${s.outputs.map(shape).join('; ')}`,
    `parameters: ${s.parameters.count.toLocaleString('en-US')} (${mib(s.parameters.bytes)}; ${Object.entries(
      s.parameters.byType,
    )
      .map(([t, e]) => `${t} ${mib(e!.bytes)}`)
      .join(', ')})${s.externalBytes ? `, ${mib(s.externalBytes)} external` : ''}`,
    `nodes: ${s.nodeCount} · ${Object.entries(s.opCounts)
      .map(([op, n]) => `${op} ${n}`)
      .join(', ')}`,
  ].join('\n');
}
