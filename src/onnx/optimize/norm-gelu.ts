/**
 * Two smaller fusions of the transformer blocks, both exact up to float rounding:
 *
 * - `fuseLayerNorm`: the LayerNorm chain TorchScript writes below opset 17 (ReduceMean → Sub → Pow 2 →
 *   ReduceMean → Add ε → Sqrt → Div → Mul γ → Add β, over the last axis) → LayerNormalization. ONNX Runtime
 *   registers LayerNormalization in the default domain from version 1 (it predates the ONNX op), and runs it on
 *   CPU and WebGPU at opset 14: 9 kernels become 1.
 * - `fuseBiasSplitGelu`: diffusers' GEGLU, proj(x) = x·W + b split in halves along the last axis,
 *   value · gelu(gate) with the exact (erf) GELU → com.microsoft BiasSplitGelu(x·W, b). The proj MatMul stays.
 *   ORT has this kernel on WebGPU and CUDA only (not on CPU): opt-in, for GPU sessions.
 *
 * GroupNorm, as exported (Reshape → InstanceNormalization → Reshape → Mul → Add), is left alone: ORT 1.30 has
 * no GroupNorm kernel on WebGPU, and ONNX GroupNormalization-21 is run by expanding its function body, which
 * is no fewer kernels than the exported chain.
 */
import type { Model, Node } from '../ir.js';
import { attrInt, attrInts } from '../ir.js';
import { cloneModel, removeDeadNodes, sortGraph } from '../graph.js';
import {
  type PassEntry,
  type PassOptions,
  type PassResult,
  Snapshot,
  isStandard,
  useMicrosoftDomain,
} from './match.js';

class NoMatch extends Error {}
const fail = (reason: string): never => {
  throw new NoMatch(reason);
};

/** The single node reading `value` (and no graph output), if it is a standard `opType`. */
function onlyReader(snap: Snapshot, value: string, opType: string): Node | undefined {
  const r = snap.readers(value);
  return r.length === 1 && r[0] && isStandard(r[0]) && r[0].opType === opType ? r[0] : undefined;
}

/** The other input of a binary node, when one input is `value`. */
const other = (n: Node, value: string): string | undefined =>
  n.inputs[0] === value ? n.inputs[1] : n.inputs[1] === value ? n.inputs[0] : undefined;

/** True when ReduceMean reduces only the last axis of a rank-`rank` input, keeping dims. */
function reducesLastAxis(snap: Snapshot, n: Node, rank: number): boolean {
  const axes = attrInts(n, 'axes') ?? (n.inputs[1] ? (snap.known(n.inputs[1]) as number[] | undefined) : undefined);
  return attrInt(n, 'keepdims', 1) === 1 && !!axes && axes.length === 1 && (axes[0] === -1 || axes[0] === rank - 1);
}

/** A 1-D constant of `width` elements. */
function isVector(snap: Snapshot, value: string | undefined, width: number): value is string {
  if (!value) return false;
  // TorchScript exports alias shared weights through Identity nodes.
  let v = value;
  for (let p = snap.producedBy(v, 'Identity'); p; p = snap.producedBy(v, 'Identity')) v = p.inputs[0]!;
  const c = snap.index.constant(v);
  return !!c && c.dims.length === 1 && c.dims[0] === width;
}

function runPass(
  model: Model,
  pass: string,
  opts: PassOptions,
  anchorOp: string,
  matchAt: (snap: Snapshot, n: Node) => { replace: Node; by: Node; details: Record<string, unknown> },
): PassResult {
  const out = cloneModel(model);
  const snap = new Snapshot(out, opts.inputShapes);
  const fused: PassEntry[] = [],
    skipped: PassEntry[] = [];
  const replace = new Map<Node, Node>();
  for (const n of out.graph.nodes) {
    if (n.opType !== anchorOp || !isStandard(n)) continue;
    try {
      const m = matchAt(snap, n);
      replace.set(m.replace, m.by);
      fused.push({ anchor: n.name, fused: m.by.name, details: m.details });
    } catch (err) {
      if (!(err instanceof NoMatch)) throw err;
      skipped.push({ anchor: n.name, reason: err.message });
    }
  }
  if (replace.size) {
    out.graph.nodes = out.graph.nodes.map((n) => replace.get(n) ?? n);
    removeDeadNodes(out.graph);
    sortGraph(out.graph);
    out.graph.valueInfo = [];
  }
  return { model: out, report: { pass, fused, skipped } };
}

/** LayerNorm chains (opset < 17 exports) → LayerNormalization. Anchored at the Sub x − mean(x). */
export function fuseLayerNorm(model: Model, opts: PassOptions = {}): PassResult {
  return runPass(model, 'layernorm', opts, 'Sub', (snap, sub) => {
    const [x, m] = sub.inputs as [string, string];
    const mean = snap.producedBy(m, 'ReduceMean');
    const shape = snap.shape(x);
    if (!mean || mean.inputs[0] !== x || !shape) return fail('not x − ReduceMean(x)');
    const width = shape[shape.length - 1];
    if (typeof width !== 'number' || !reducesLastAxis(snap, mean, shape.length))
      fail('the mean is not over a known last axis');
    const readers = snap.readers(sub.outputs[0]!);
    const pow = readers.find((r) => r?.opType === 'Pow');
    const div = readers.find((r) => r?.opType === 'Div');
    if (readers.length !== 2 || !pow || !div || pow.inputs[0] !== sub.outputs[0] || div.inputs[0] !== sub.outputs[0])
      return fail('the centred value is not read by Pow and Div only');
    if (snap.scalar(pow.inputs[1]!) !== 2) fail('Pow exponent is not 2');
    const variance = onlyReader(snap, pow.outputs[0]!, 'ReduceMean');
    if (!variance || !reducesLastAxis(snap, variance, shape.length)) return fail('no variance over the last axis');
    const addEps = onlyReader(snap, variance.outputs[0]!, 'Add');
    const eps = addEps && snap.scalar(other(addEps, variance.outputs[0]!)!);
    if (!addEps || eps === undefined) return fail('no constant ε added to the variance');
    const sqrt = onlyReader(snap, addEps.outputs[0]!, 'Sqrt');
    if (!sqrt || div.inputs[1] !== sqrt.outputs[0] || !snap.onlyReadBy(sqrt.outputs[0]!, div))
      return fail('not divided by √(var + ε)');
    const mul = onlyReader(snap, div.outputs[0]!, 'Mul');
    const gamma = mul && other(mul, div.outputs[0]!);
    if (!mul || !isVector(snap, gamma, width as number)) return fail('no γ of the normalised width');
    const add = onlyReader(snap, mul.outputs[0]!, 'Add');
    const beta = add && other(add, mul.outputs[0]!);
    if (!add || !isVector(snap, beta, width as number)) return fail('no β of the normalised width');
    const name = add.name.replace(/\/[^/]*$/, '/LayerNormalization');
    return {
      replace: add,
      by: {
        name: snap.index.node(name) ? `${name}_fused` : name,
        opType: 'LayerNormalization',
        domain: '',
        inputs: [x, gamma!, beta!],
        outputs: [add.outputs[0]!],
        attributes: { axis: { type: 'int', value: -1 }, epsilon: { type: 'float', value: Math.fround(eps) } },
      },
      details: { width, epsilon: eps },
    };
  });
}

/** x·0.5·(1 + erf(x/√2)) in any association of the three factors: returns x, or undefined. */
function geluInput(snap: Snapshot, value: string): string | undefined {
  const factors: string[] = [];
  const collect = (v: string, depth: number): void => {
    const m = snap.producedBy(v, 'Mul');
    if (m && depth < 2) {
      collect(m.inputs[0]!, depth + 1);
      collect(m.inputs[1]!, depth + 1);
    } else factors.push(v);
  };
  collect(value, 0);
  if (factors.length !== 3) return undefined;
  const half = factors.find((f) => snap.scalar(f) === 0.5);
  const onePlus = factors.find((f) => {
    const add = snap.producedBy(f, 'Add');
    if (!add) return false;
    const erfOut = add.inputs.find((i) => snap.producedBy(i, 'Erf'));
    return !!erfOut && snap.scalar(other(add, erfOut)!) === 1;
  });
  const x = factors.find((f) => f !== half && f !== onePlus);
  if (!half || !onePlus || !x) return undefined;
  const add = snap.producedBy(onePlus, 'Add')!;
  const erf = snap.producedBy(add.inputs.find((i) => snap.producedBy(i, 'Erf'))!, 'Erf')!;
  const scaled = snap.producedBy(erf.inputs[0]!, 'Div', 'Mul');
  if (!scaled || scaled.inputs[0] !== x) return undefined;
  const s = snap.scalar(scaled.inputs[1]!);
  const ok =
    s !== undefined && (scaled.opType === 'Div' ? Math.abs(s - Math.SQRT2) < 1e-6 : Math.abs(s - Math.SQRT1_2) < 1e-6);
  return ok ? x : undefined;
}

/** The [start, end) a Slice takes along the last axis (rank `rank`), when known and step 1. */
function lastAxisSlice(snap: Snapshot, n: Node, rank: number): [number, number] | undefined {
  const [starts, ends, axes, steps] = [1, 2, 3, 4].map((i) => (n.inputs[i] ? snap.known(n.inputs[i]!) : undefined));
  if (!starts || !ends || starts.length !== 1 || ends.length !== 1) return undefined;
  const axis = axes ? axes[0] : 0;
  if (axis !== -1 && axis !== rank - 1) return undefined;
  if (steps && steps[0] !== 1) return undefined;
  return typeof starts[0] === 'number' && typeof ends[0] === 'number' ? [starts[0], ends[0]] : undefined;
}

/** GEGLU (value · gelu(gate) of one biased projection) → com.microsoft BiasSplitGelu. Anchored at the Erf. */
export function fuseBiasSplitGelu(model: Model, opts: PassOptions = {}): PassResult {
  const result = runPass(model, 'bias-split-gelu', opts, 'Erf', (snap, erf) => {
    // 1. Up from the Erf to the gate Slice and the biased projection.
    const scaled = snap.producedBy(erf.inputs[0]!, 'Div', 'Mul');
    const gateSlice = scaled && snap.producedBy(scaled.inputs[0]!, 'Slice');
    if (!gateSlice) return fail('the Erf does not read a Slice through x/√2');
    const proj = gateSlice.inputs[0]!;
    const shape = snap.shape(proj);
    const width = shape?.[shape.length - 1];
    if (!shape || typeof width !== 'number' || width % 2) return fail('the projection has no known even width');
    const half = width / 2;
    const gateRange = lastAxisSlice(snap, gateSlice, shape.length);
    if (!gateRange || gateRange[0] !== half || gateRange[1] < width)
      return fail('the gate is not the second half of the projection');
    const add = snap.producedBy(proj, 'Add');
    if (!add) return fail('the projection is not MatMul + a bias vector');
    const mm = add.inputs.map((i) => snap.producedBy(i, 'MatMul')).find(Boolean);
    const bias = mm && other(add, mm.outputs[0]!);
    if (!mm || !isVector(snap, bias, width)) return fail('the projection is not MatMul + a bias vector');
    // 2. Down to value · gelu(gate).
    const gelu = snap.readers(erf.outputs[0]!);
    let v = erf.outputs[0]!;
    let product: Node | undefined;
    for (
      let n = gelu[0];
      n && isStandard(n) && (n.opType === 'Add' || n.opType === 'Mul');
      n = onlyReader(snap, v, 'Mul')
    ) {
      v = n.outputs[0]!;
      if (geluInput(snap, v) === gateSlice.outputs[0]) {
        product = onlyReader(snap, v, 'Mul');
        break;
      }
    }
    if (!product) return fail('no exact (erf) GELU of the gate multiplied by a value');
    const valueSlice = snap.producedBy(other(product, v)!, 'Slice');
    const valueRange = valueSlice && valueSlice.inputs[0] === proj && lastAxisSlice(snap, valueSlice, shape.length);
    if (valueRange === undefined || valueRange === false || valueRange[0] !== 0 || valueRange[1] !== half)
      return fail('the value is not the first half of the projection');
    const readers = snap.readers(proj).filter((r) => r !== gateSlice && r !== valueSlice);
    if (readers.some((r) => r?.opType !== 'Shape')) return fail('the projection is also read outside the GEGLU');
    const name = product.name.replace(/\/[^/]*$/, '/BiasSplitGelu');
    return {
      replace: product,
      by: {
        name: snap.index.node(name) ? `${name}_fused` : name,
        opType: 'BiasSplitGelu',
        domain: 'com.microsoft',
        inputs: [mm.outputs[0]!, bias!],
        outputs: [product.outputs[0]!],
        attributes: {},
      },
      details: { width },
    };
  });
  if (result.report.fused.length) useMicrosoftDomain(result.model);
  return result;
}
