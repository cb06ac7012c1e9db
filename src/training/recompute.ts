/**
 * Activation checkpointing expressed in the graph: the backward pass reads a recomputed copy of a forward
 * value instead of the value itself, so the forward one can be freed as soon as the forward pass is done with
 * it. ORT frees a value after its last reader, so this saves memory only if nothing merges the copy back into
 * the original: sessions over a training graph switch off ORT's CommonSubexpressionElimination.
 *
 * What is recomputed: attention probabilities, Softmax(scale · Q·Kᵀ). They are the largest activations of an
 * SD UNet (heads × tokens² per attention layer: 8 × 4096² floats, 512 MiB, at 64×64 latents), and cheap to
 * make again from Q and K, which the backward pass keeps anyway.
 */
import type { Model, Node } from '../onnx/ir.js';

/** Ops allowed between the scores MatMul and the Softmax (scaling by a constant). */
const SCALING = new Set(['Mul', 'Div', 'Add', 'Cast']);

/**
 * Rewrites the backward nodes (from index `firstBackward` on) to read recomputed attention probabilities.
 * Returns how many attention layers were rewired.
 */
export function recomputeAttention(model: Model, firstBackward: number): number {
  const g = model.graph;
  const forward = g.nodes.slice(0, firstBackward);
  const backward = g.nodes.slice(firstBackward);
  const producer = new Map<string, Node>();
  for (const n of forward) for (const o of n.outputs) producer.set(o, n);
  const constants = new Set(g.initializers.map((t) => t.name));
  for (const n of forward) if (n.opType === 'Constant') for (const o of n.outputs) constants.add(o);

  const inserts = new Map<Node, Node[]>(); // backward node → recomputing nodes to put before it
  let rewired = 0;
  for (const softmax of forward) {
    if (softmax.opType !== 'Softmax') continue;
    // 1. The segment: MatMul → (scaling by constants)* → Softmax.
    const segment: Node[] = [softmax];
    let cur = producer.get(softmax.inputs[0]!);
    while (cur && SCALING.has(cur.opType) && cur.inputs.slice(1).every((i) => constants.has(i) || i === '')) {
      segment.unshift(cur);
      cur = producer.get(cur.inputs[0]!);
    }
    if (!cur || (cur.opType !== 'MatMul' && cur.opType !== 'Einsum')) continue;
    segment.unshift(cur);
    // 2. Backward readers of the segment's values.
    const outputs = new Set(segment.flatMap((n) => n.outputs));
    const readers = backward.filter((n) => n.inputs.some((i) => outputs.has(i)));
    if (readers.length === 0) continue;
    // 3. A copy of the segment, its values renamed; the readers read the copies.
    const renamed = new Map<string, string>();
    for (const o of outputs) renamed.set(o, `${o}/recompute`);
    const copies: Node[] = segment.map((n) => ({
      ...n,
      name: `${n.name}/recompute`,
      inputs: n.inputs.map((i) => renamed.get(i) ?? i),
      outputs: n.outputs.map((o) => renamed.get(o)!),
      attributes: { ...n.attributes },
    }));
    for (const r of readers) r.inputs = r.inputs.map((i) => renamed.get(i) ?? i);
    inserts.set(readers[0]!, copies);
    rewired++;
  }
  // Each copy goes right before its first reader (graph order is ORT's default execution order).
  const nodes: Node[] = [...forward];
  for (const n of backward) {
    const before = inserts.get(n);
    if (before) nodes.push(...before);
    nodes.push(n);
  }
  g.nodes = nodes;
  return rewired;
}
