/**
 * LoRA on an ONNX UNet: find the layers to adapt (attention projections to_q/to_k/to_v/to_out.0 of self- and
 * cross-attention, optionally convolutions) by the node and weight names real exports carry, and add the
 * low-rank branch y = x·W + (α/r)·(x·A)·B as ONNX nodes.
 *
 * Layout: exporters store a Linear's weight transposed, as the MatMul's [in, out] operand. The LoRA tensors in
 * the graph follow the same convention: `A` is [in, r] and `B` is [r, out] (adapter.ts transposes them to
 * peft's lora_A [r, in] / lora_B [out, r] when saving). With B = 0 the branch adds exact zeros, so the
 * model's output is unchanged bit for bit.
 */
import { VidpriorError } from '../errors.js';
import { GraphBuilder } from '../onnx/builder.js';
import { sortGraph } from '../onnx/graph.js';
import type { ElemType, Model, Node, TensorValue } from '../onnx/ir.js';
import { toFloat16 } from '../tensor.js';

export type LoraKind = 'linear' | 'conv';

/** One layer that gets an adapter. */
export interface LoraTarget {
  /** The diffusers module path, e.g. `down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`. */
  module: string;
  kind: LoraKind;
  /** The MatMul / Conv node the branch attaches to. */
  node: string;
  /** The weight initializer of that node. */
  weight: string;
  inFeatures: number;
  outFeatures: number;
  /** Conv kernel size [kh, kw] (conv only), strides, pads, dilations copied to the A convolution. */
  kernel?: number[];
  type: ElemType;
}

/** The graph values holding one target's LoRA tensors. */
export interface LoraParam {
  target: LoraTarget;
  /** Value name of A: [in, r] (linear) or [r, in, kh, kw] (conv). */
  a: string;
  /** Value name of B: [r, out] (linear) or [out, r, 1, 1] (conv). */
  b: string;
  aDims: number[];
  bDims: number[];
}

export interface LoraOptions {
  rank: number;
  alpha: number;
  /** 'inputs': A and B become graph inputs (training, swappable adapters); 'initializers': constants. */
  as: 'inputs' | 'initializers';
  /** Initial values per target module (graph layout, float32), e.g. from an adapter file; default zeros. */
  initial?: Map<string, { a: Float32Array; b: Float32Array }>;
}

const ATTENTION_PROJECTION =
  /(?:^|[/.])((?:down_blocks|mid_block|up_blocks)[/.].*?[/.]attn[12][/.](?:to_q|to_k|to_v|to_out[/.]0))(?:[/.](?:MatMul|weight))?$/;
const CONV_LAYER =
  /(?:^|[/.])((?:down_blocks|mid_block|up_blocks)[/.].*?[/.](?:conv1|conv2|conv_shortcut|proj_in|proj_out|conv))(?:[/.](?:Conv|weight))?$/;

/** Turns an exporter's node path (`/u/down_blocks.1/attentions.0/…/to_q/MatMul`) into a module path. */
function modulePath(match: string): string {
  return match.replace(/\//g, '.');
}

export interface FindOptions {
  /** Also adapt the ResNet and projection convolutions. */
  convs?: boolean;
  /** Keep only modules whose path matches. */
  include?: RegExp;
}

/** Finds the LoRA targets of a UNet model by node names, falling back to weight names. */
export function findLoraTargets(model: Model, options: FindOptions = {}): LoraTarget[] {
  const g = model.graph;
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  /** The initializer behind a node input, looking through a Transpose or Cast (dynamo / fp16 exports). */
  const weightOf = (value: string): { tensor: TensorValue; transposed: boolean } | null => {
    const direct = inits.get(value);
    if (direct) return { tensor: direct, transposed: false };
    const p = producer.get(value);
    if (p && (p.opType === 'Transpose' || p.opType === 'Cast') && inits.has(p.inputs[0]!)) {
      return { tensor: inits.get(p.inputs[0]!)!, transposed: p.opType === 'Transpose' };
    }
    return null;
  };
  const targets: LoraTarget[] = [];
  const seen = new Set<string>();
  for (const node of g.nodes) {
    if (node.opType === 'MatMul') {
      const w = weightOf(node.inputs[1]!);
      if (w?.tensor.dims.length !== 2) continue;
      const m = ATTENTION_PROJECTION.exec(node.name) ?? ATTENTION_PROJECTION.exec(w.tensor.name);
      if (!m) continue;
      const module = modulePath(m[1]!);
      if (seen.has(module) || (options.include && !options.include.test(module))) continue;
      if (w.transposed) {
        throw new VidpriorError(
          'E_MODEL_INPUT',
          `LoRA target ${module}: weights behind a Transpose are not supported yet (node "${node.name}")`,
        );
      }
      seen.add(module);
      targets.push({
        module,
        kind: 'linear',
        node: node.name,
        weight: w.tensor.name,
        inFeatures: w.tensor.dims[0]!,
        outFeatures: w.tensor.dims[1]!,
        type: w.tensor.type,
      });
    } else if (node.opType === 'Conv' && options.convs) {
      const w = weightOf(node.inputs[1]!);
      if (w?.tensor.dims.length !== 4) continue;
      const m = CONV_LAYER.exec(node.name) ?? CONV_LAYER.exec(w.tensor.name);
      if (!m) continue;
      const module = modulePath(m[1]!);
      if (seen.has(module) || (options.include && !options.include.test(module))) continue;
      const group = node.attributes.group;
      if (group && group.type === 'int' && group.value !== 1) continue;
      seen.add(module);
      const [out, inCh, kh, kw] = w.tensor.dims as [number, number, number, number];
      targets.push({
        module,
        kind: 'conv',
        node: node.name,
        weight: w.tensor.name,
        inFeatures: inCh,
        outFeatures: out,
        kernel: [kh, kw],
        type: w.tensor.type,
      });
    }
  }
  return targets;
}

/** The shapes of A and B for a target at `rank`, in the graph's layout. */
export function loraShapes(t: LoraTarget, rank: number): { aDims: number[]; bDims: number[] } {
  if (t.kind === 'linear') return { aDims: [t.inFeatures, rank], bDims: [rank, t.outFeatures] };
  return { aDims: [rank, t.inFeatures, ...t.kernel!], bDims: [t.outFeatures, rank, 1, 1] };
}

/**
 * Adds the LoRA branch to every target, in place. Returns the parameters in target order.
 * Value names: `lora.<module>.A` / `lora.<module>.B`.
 */
export function injectLora(model: Model, targets: LoraTarget[], options: LoraOptions): LoraParam[] {
  if (!(Number.isInteger(options.rank) && options.rank > 0)) {
    throw new VidpriorError('E_BAD_REQUEST', `LoRA rank must be a positive integer, got ${options.rank}`);
  }
  if (!(options.alpha > 0)) throw new VidpriorError('E_BAD_REQUEST', `LoRA alpha must be > 0, got ${options.alpha}`);
  const b = new GraphBuilder(model);
  const g = model.graph;
  const byName = new Map(g.nodes.map((n) => [n.name, n]));
  const scale = options.alpha / options.rank;
  const params: LoraParam[] = [];
  for (const t of targets) {
    const node = byName.get(t.node);
    if (!node) throw new VidpriorError('E_MODEL_INPUT', `LoRA target node "${t.node}" is not in the model`);
    const { aDims, bDims } = loraShapes(t, options.rank);
    const init = options.initial?.get(t.module);
    const aName = `lora.${t.module}.A`;
    const bName = `lora.${t.module}.B`;
    let a: string, bv: string;
    if (options.as === 'inputs') {
      a = b.input(aName, t.type, aDims);
      bv = b.input(bName, t.type, bDims);
    } else {
      const cast = (v: Float32Array | undefined) => (v && t.type === 'float16' ? toFloat16(v) : v);
      a = b.initializer(aName, t.type, aDims, cast(init?.a));
      bv = b.initializer(bName, t.type, bDims, cast(init?.b));
    }
    const x = node.inputs[0]!;
    const y = node.outputs[0]!;
    // Remember who used y before the branch is added, so only they are rewired.
    const users = g.nodes.filter((n) => n.inputs.includes(y));
    const outputsUsingY = g.outputs.filter((o) => o.name === y);
    const sum = b.scope(`lora/${t.module}`, () => {
      let branch: string;
      if (t.kind === 'linear') {
        branch = b.op('MatMul', [b.op('MatMul', [x, a], {}, { name: 'A' }), bv], {}, { name: 'B' });
      } else {
        const conv = node.attributes;
        const low = b.op(
          'Conv',
          [x, a],
          {
            strides: conv.strides,
            pads: conv.pads,
            dilations: conv.dilations,
            auto_pad: conv.auto_pad,
          },
          { name: 'A' },
        );
        branch = b.op('Conv', [low, bv], {}, { name: 'B' });
      }
      const scaled =
        scale === 1
          ? branch
          : b.op(
              'Mul',
              [branch, b.constant([scale], [], t.type === 'float16' ? 'float16' : 'float32', 'lora_scale')],
              {},
              { name: 'scale' },
            );
      return b.op('Add', [y, scaled], {}, { name: 'add' });
    });
    for (const u of users) u.inputs = u.inputs.map((i) => (i === y ? sum : i));
    for (const o of outputsUsingY) o.name = sum;
    params.push({ target: t, a, b: bv, aDims, bDims });
  }
  // The new nodes were appended at the end; consumers of each branch come earlier in the node list.
  sortGraph(model.graph);
  return params;
}
