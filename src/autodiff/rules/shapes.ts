/**
 * What gradient rules know about forward values: static shapes, element types and the values of small
 * integer tensors (Slice starts, Pad pads, Reduce axes). Rules ask only through `ShapeOracle`, so the source of
 * the facts can change without touching a rule.
 *
 * `staticShapes(model)` (the default of `buildGradients`) runs static shape inference
 * (src/onnx/shape-inference.ts); `annotatedShapes(model)` reads only what the model states: graph
 * inputs/outputs, value_info, initializers and Constant nodes, and folds the shape arithmetic exporters emit
 * (Shape → Gather → Unsqueeze → Concat → Slice …) into constants.
 */
import { VidpriorError } from '../../errors.js';
import { fromFloat16 } from '../../tensor.js';
import { type InferredShapes, inferShapes } from '../../onnx/shape-inference.js';
import {
  type Dim,
  type ElemType,
  type Model,
  type Node,
  type TensorValue,
  attrInt,
  attrInts,
  attrTensor,
  tensorToNumbers,
} from '../../onnx/ir.js';

export interface ValueMeta {
  type: ElemType;
  shape: number[];
}

export interface ShapeOracle {
  /** The static type and shape of a forward value; throws E_SHAPE when unknown or symbolic. */
  meta(value: string): ValueMeta;
  /**
   * The values of an integer tensor (or a float one of at most 64 elements) when they are known before running:
   * initializers, Constant nodes, folded shape arithmetic.
   */
  constInts(value: string): number[] | undefined;
}

const INT_TYPES = new Set<ElemType>(['int64', 'int32', 'int16', 'int8', 'uint8', 'uint16', 'uint32', 'uint64']);

/** A ShapeOracle over the model's annotations, constants and folded shape arithmetic. */
export function annotatedShapes(model: Model): ShapeOracle {
  const g = model.graph;
  const metas = new Map<string, { type: ElemType; shape: (number | string | null)[] | null }>();
  for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) metas.set(v.name, { type: v.type, shape: v.shape });
  const initializers = new Map<string, TensorValue>();
  for (const t of g.initializers) {
    initializers.set(t.name, t);
    metas.set(t.name, { type: t.type, shape: t.dims });
  }
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  for (const n of g.nodes) {
    const t = n.opType === 'Constant' ? attrTensor(n, 'value') : undefined;
    if (t) metas.set(n.outputs[0]!, { type: t.type, shape: t.dims });
  }

  const folded = new Map<string, number[] | null>();

  function meta(value: string): ValueMeta {
    const m = metas.get(value);
    if (!m?.shape || m.shape.some((d) => typeof d !== 'number')) {
      throw new VidpriorError(
        'E_SHAPE',
        `autodiff needs the static shape of "${value}", which ${m ? `is [${m.shape ?? '?'}]` : 'is not known'}; give the sizes of symbolic graph inputs (inputShapes)`,
        { value },
      );
    }
    return { type: m.type, shape: m.shape as number[] };
  }

  function staticShape(value: string): number[] | undefined {
    const m = metas.get(value);
    return m?.shape?.every((d) => typeof d === 'number') ? (m.shape as number[]) : undefined;
  }

  function constInts(value: string): number[] | undefined {
    if (folded.has(value)) return folded.get(value) ?? undefined;
    folded.set(value, null); // guards against cycles in malformed graphs
    const init = initializers.get(value);
    let result: number[] | undefined;
    if (init) {
      result = init.data && (INT_TYPES.has(init.type) || init.data.length <= 64) ? numbersOf(init) : undefined;
    } else {
      const n = producer.get(value);
      result = n ? foldNode(n) : undefined;
    }
    folded.set(value, result ?? null);
    return result;
  }

  // Folds the integer shape arithmetic of exports; returns undefined for anything else.
  function foldNode(n: Node): number[] | undefined {
    const ins = (i: number) => (n.inputs[i] ? constInts(n.inputs[i]!) : undefined);
    switch (n.opType) {
      case 'Constant': {
        const t = attrTensor(n, 'value');
        if (t?.data) return numbersOf(t);
        const ints = attrInts(n, 'value_ints');
        if (ints) return ints;
        const i = attrInt(n, 'value_int');
        return i === undefined ? undefined : [i];
      }
      case 'Shape': {
        const s = staticShape(n.inputs[0]!);
        if (!s) return undefined;
        const r = s.length;
        const start = normStart(attrInt(n, 'start', 0), r);
        const end = normStart(attrInt(n, 'end', r), r);
        return s.slice(start, end);
      }
      case 'Size': {
        const s = staticShape(n.inputs[0]!);
        return s ? [s.reduce((a, b) => a * b, 1)] : undefined;
      }
      case 'Identity':
      case 'Cast':
      case 'Squeeze':
      case 'Unsqueeze':
      case 'Reshape':
      case 'Flatten':
        return ins(0);
      case 'Concat': {
        const parts = n.inputs.map((v) => constInts(v));
        return parts.every((p) => p) ? (parts.flat() as number[]) : undefined;
      }
      case 'Gather': {
        const data = ins(0),
          idx = ins(1);
        if (!data || !idx) return undefined;
        return idx.map((i) => data[i < 0 ? i + data.length : i]!);
      }
      case 'Slice': {
        const data = ins(0),
          starts = ins(1),
          ends = ins(2),
          steps = n.inputs[4] ? ins(4) : [1];
        if (!data || !starts || !ends || !steps) return undefined;
        const out: number[] = [];
        const { start, end, step } = sliceRange(starts[0]!, ends[0]!, steps[0]!, data.length);
        for (let i = start; step > 0 ? i < end : i > end; i += step) out.push(data[i]!);
        return out;
      }
      case 'Add':
      case 'Sub':
      case 'Mul':
      case 'Div':
      case 'Equal':
      case 'Max':
      case 'Min':
      case 'Mod': {
        const a = ins(0),
          b = ins(1);
        if (!a || !b) return undefined;
        const len = Math.max(a.length, b.length);
        return Array.from({ length: len }, (_, i) =>
          binary(n.opType, a[a.length === 1 ? 0 : i]!, b[b.length === 1 ? 0 : i]!),
        );
      }
      case 'Where': {
        const c = ins(0),
          a = ins(1),
          b = ins(2);
        if (!c || !a || !b) return undefined;
        const len = Math.max(c.length, a.length, b.length);
        const at = (x: number[], i: number) => x[x.length === 1 ? 0 : i]!;
        return Array.from({ length: len }, (_, i) => (at(c, i) ? at(a, i) : at(b, i)));
      }
      case 'ConstantOfShape': {
        const shape = ins(0);
        const t = attrTensor(n, 'value');
        if (!shape) return undefined;
        const v = t?.data ? numbersOf(t)[0]! : 0;
        return new Array(shape.reduce((a, b) => a * b, 1)).fill(v);
      }
      default:
        return undefined;
    }
  }

  return { meta, constInts };
}

/** A tensor's elements as numbers; float16/bfloat16 decoded from their bits (not read as integers). */
function numbersOf(t: TensorValue): number[] {
  if (t.type === 'float16') return Array.from(fromFloat16(t.data as Uint16Array));
  if (t.type === 'bfloat16') {
    const f = new Float32Array(new Uint32Array(Array.from(t.data as Uint16Array, (h) => h << 16)).buffer);
    return Array.from(f);
  }
  return tensorToNumbers(t);
}

function normStart(i: number, r: number): number {
  return Math.min(Math.max(i < 0 ? i + r : i, 0), r);
}

function binary(op: string, a: number, b: number): number {
  switch (op) {
    case 'Add':
      return a + b;
    case 'Sub':
      return a - b;
    case 'Mul':
      return a * b;
    case 'Div':
      return Math.trunc(a / b); // integer division (shape math is int64)
    case 'Equal':
      return a === b ? 1 : 0;
    case 'Max':
      return Math.max(a, b);
    case 'Min':
      return Math.min(a, b);
    default:
      return ((a % b) + b) % b; // Mod, fmod=0: sign of the divisor
  }
}

/** ONNX Slice semantics for one axis: clamped start/end for a dim of size `dim`. */
export function sliceRange(
  start: number,
  end: number,
  step: number,
  dim: number,
): { start: number; end: number; step: number } {
  if (step === 0) throw new VidpriorError('E_ONNX', 'Slice step must not be 0', { step });
  let s = start < 0 ? start + dim : start;
  let e = end < 0 ? end + dim : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), dim);
    e = Math.min(Math.max(e, 0), dim);
  } else {
    s = Math.min(Math.max(s, -1), dim - 1);
    e = Math.min(Math.max(e, -1), dim - 1);
  }
  return { start: s, end: e, step };
}

/** How many elements a slice selects. */
export function sliceCount(r: { start: number; end: number; step: number }): number {
  const span = r.step > 0 ? r.end - r.start : r.start - r.end;
  return span <= 0 ? 0 : Math.ceil(span / Math.abs(r.step));
}

/**
 * The ShapeOracle autodiff uses by default: static shape inference (src/onnx/shape-inference.ts) over the
 * model's declared input shapes, backed by the annotations and folded constants of `annotatedShapes`. When
 * inference cannot handle the model, the annotations alone answer, and a missing shape names the reason.
 */
export function staticShapes(model: Model, inputShapes: Record<string, Dim[]> = {}): ShapeOracle {
  let inferred: InferredShapes | undefined;
  let inferenceError: string | undefined;
  const annotated = annotatedShapes(model);
  const valueInfo = model.graph.valueInfo;
  try {
    inferred = inferShapes(model, inputShapes);
  } catch (err) {
    inferenceError = err instanceof Error ? err.message : String(err);
  } finally {
    // Inference fills value_info in place: leave the model as it was. (With fully static value_info, ORT 1.30's
    // ReshapeFusion fails to load the TorchScript UNet export: "Attempting to get index by a name which does not
    // exist … _new_reshape"; disabling ReshapeFusion avoids it.)
    model.graph.valueInfo = valueInfo;
  }
  return {
    meta(value) {
      const info = inferred?.infos.get(value);
      if (info?.shape?.every((d) => typeof d === 'number')) return { type: info.type, shape: info.shape as number[] };
      try {
        return annotated.meta(value);
      } catch (err) {
        if (info && err instanceof VidpriorError) {
          throw new VidpriorError(
            'E_SHAPE',
            `autodiff needs the static shape of "${value}", which is [${info.shape ?? '?'}]; give the sizes of symbolic graph inputs (inputShapes)`,
            { value },
          );
        }
        if (inferenceError && err instanceof VidpriorError) {
          throw new VidpriorError('E_SHAPE', `${err.message} (shape inference failed: ${inferenceError})`, err.details);
        }
        throw err;
      }
    },
    constInts(value) {
      const known = inferred?.values.get(value);
      if (known?.values.every((v) => typeof v === 'number')) return known.values as number[];
      return annotated.constInts(value);
    },
  };
}
