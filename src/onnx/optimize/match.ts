/**
 * What the fusion passes share: a snapshot of the graph with shapes and known values (shape inference), and
 * small questions asked while matching a pattern (is this a scalar constant, are two dims provably equal, is
 * this value read by one node only). A pass matches on the snapshot, then edits the graph and takes a new one.
 */
import type { Dim, Graph, Model, Node } from '../ir.js';
import { elementCount } from '../ir.js';
import { knownFromTensor } from '../const-eval.js';
import { GraphIndex } from '../graph.js';
import { type InferredShapes, inferShapes } from '../shape-inference.js';

/** One subgraph a pass replaced, or left alone and why. */
export interface PassEntry {
  /** The node the pattern is anchored at (e.g. the Softmax of an attention block). */
  anchor: string;
  /** The fused node's name when fused. */
  fused?: string;
  /** Why it was left alone when not fused. */
  reason?: string;
  /** Facts about the match (heads, scale …). */
  details?: Record<string, unknown>;
}

export interface PassReport {
  pass: string;
  fused: PassEntry[];
  skipped: PassEntry[];
  /** Other facts worth reporting (e.g. Casts added by float16 conversion). */
  notes?: string[];
}

export interface PassResult {
  model: Model;
  report: PassReport;
}

export interface PassOptions {
  /**
   * Input shapes for shape inference (default: pipelineInputShapes). Symbolic dims give proofs that hold
   * for every size; numbers prove a match only for those sizes.
   */
  inputShapes?: Record<string, Dim[]>;
}

const STANDARD = new Set(['', 'ai.onnx']);

/**
 * The input shapes vidprior's pipelines feed a UNet with, where they narrow the model's declared ones: the
 * timestep is one value ([1]; src/models/loader.ts timestepDims), broadcast to the batch. With the declared
 * ['steps'] the time embedding's batch dim cannot be proved (Expand of 'steps' to 'batch'), and with it every
 * dim downstream of the first ResNet. Batch, height, width and sequence stay symbolic.
 */
export function pipelineInputShapes(model: Model): Record<string, Dim[]> {
  const t = model.graph.inputs.find((v) => v.name === 'timestep');
  return t?.shape?.length === 1 && typeof t.shape[0] !== 'number' ? { timestep: [1] } : {};
}

/** The graph with its index and inferred shapes/values. */
export class Snapshot {
  readonly graph: Graph;
  readonly index: GraphIndex;
  readonly shapes: InferredShapes;

  constructor(model: Model, inputShapes?: Record<string, Dim[]>) {
    this.graph = model.graph;
    this.shapes = inferShapes(model, inputShapes ?? pipelineInputShapes(model));
    this.index = new GraphIndex(model.graph);
  }

  /** The producing node when it is a standard-domain `opType`. */
  producedBy(value: string, ...opTypes: string[]): Node | undefined {
    const p = this.index.producer(value);
    return p && STANDARD.has(p.domain) && opTypes.includes(p.opType) ? p : undefined;
  }

  shape(value: string): Dim[] | null {
    return this.shapes.infos.get(value)?.shape ?? null;
  }

  rank(value: string): number | undefined {
    return this.shape(value)?.length;
  }

  /** The numbers of a small known value (constants, computed shape vectors); symbols and unknowns as they are. */
  known(value: string): (number | string | null)[] | undefined {
    return this.shapes.values.get(value)?.values;
  }

  /** The number a one-element constant holds (scalar or [1], [1,1] …), else undefined. */
  scalar(value: string): number | undefined {
    let k = this.shapes.values.get(value);
    if (!k) {
      const c = this.index.constant(value);
      if (c && elementCount(c.dims) === 1) k = knownFromTensor(c);
    }
    if (k?.values.length !== 1 || typeof k.values[0] !== 'number') return undefined;
    return k.values[0];
  }

  /** Nodes reading `value`; graph outputs count as a reader (returned as undefined entries). */
  readers(value: string): (Node | undefined)[] {
    const out: (Node | undefined)[] = [...this.index.consumers(value)];
    if (this.index.isOutput(value)) out.push(undefined);
    return out;
  }

  /** True when exactly one node reads `value` and it is not a graph output. */
  onlyReadBy(value: string, node: Node): boolean {
    const r = this.readers(value);
    return r.length === 1 && r[0] === node;
  }
}

/** True when two dims are provably the same size (the same number, or the same symbol). */
export function sameDim(a: Dim | undefined, b: Dim | undefined): boolean {
  return a !== null && a !== undefined && a === b;
}

/** The module path of a node named like exporters do (`/u/down_blocks.1/…/attn1/Softmax` → `…/attn1`). */
export function modulePrefix(nodeName: string): string {
  const i = nodeName.lastIndexOf('/');
  return i > 0 ? nodeName.slice(0, i) : nodeName;
}

/** A node name not used in the graph yet. */
export function freshNodeName(graph: Graph, hint: string, taken: Set<string>): string {
  if (taken.size === 0)
    for (const n of graph.nodes) {
      taken.add(n.name);
      for (const o of n.outputs) taken.add(o);
    }
  let name = hint;
  for (let i = 1; taken.has(name); i++) name = `${hint}_${i}`;
  taken.add(name);
  return name;
}

export function isStandard(node: Node): boolean {
  return STANDARD.has(node.domain);
}

/** Makes sure the model imports com.microsoft (contrib ops), version 1. */
export function useMicrosoftDomain(model: Model): void {
  if (!model.opsetImports.some((o) => o.domain === 'com.microsoft'))
    model.opsetImports.push({ domain: 'com.microsoft', version: 1 });
}
