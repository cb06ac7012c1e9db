/**
 * A small builder for ONNX graphs in code: the model builder (CLIP, UNet, VAE), autodiff and the training
 * graph all emit nodes through it.
 *
 *   const b = new GraphBuilder('mlp', { opset: 17 });
 *   const x = b.input('x', 'float32', ['batch', 4]);
 *   const w = b.initializer('fc.weight', 'float32', [4, 2], weights);
 *   b.output(b.op('Relu', [b.op('MatMul', [x, w])]), 'y');
 *   const model = b.build();
 *
 * Values are names (strings). Attribute values are inferred from plain JS values: an integer becomes INT,
 * except for attributes that ONNX defines as FLOAT (epsilon, alpha, …, see FLOAT_ATTRIBUTES); wrap with
 * `attr.float()` / `attr.int()` from ir.ts to say it explicitly.
 */
import { VidpriorError } from '../errors.js';
import {
  type AttributeValue,
  type Dim,
  type ElemType,
  type Graph,
  type Model,
  type Node,
  type TensorValue,
  type TypedData,
  allocTyped,
  elementCount,
  emptyModel,
} from './ir.js';

/** Attributes that ONNX types as FLOAT / FLOATS even when the value written is a whole number. */
const FLOAT_ATTRIBUTES = new Set([
  'epsilon',
  'alpha',
  'beta',
  'gamma',
  'momentum',
  'ratio',
  'value_float',
  'value_floats',
  'scale',
  'bias',
  'lambd',
  'spatial_scale',
  'cubic_coeff_a',
  'extrapolation_value',
  'seed',
  'mean',
  'high',
  'low',
  'scales',
  'mask_filter_value',
  'max',
  'min',
]);

export type AttrInput = number | string | boolean | number[] | string[] | AttributeValue | TensorValue | Graph;

export interface OpOptions {
  /** Node name; defaults to `<scope>/<OpType>_<n>`. */
  name?: string;
  /** Operator domain ('' = standard, 'com.microsoft' = ORT contrib). */
  domain?: string;
  /** Output value names (default: fresh names derived from the node name). */
  outputs?: string[];
}

export interface BuilderOptions {
  opset: number;
  /** Extra opset imports, e.g. { 'com.microsoft': 1 }. */
  domains?: Record<string, number>;
}

export class GraphBuilder {
  readonly model: Model;
  private readonly used = new Set<string>();
  private readonly constCache = new Map<string, string>();
  private scopes: string[] = [];
  private counter = 0;

  constructor(name: string, options: BuilderOptions);
  constructor(model: Model);
  constructor(nameOrModel: string | Model, options?: BuilderOptions) {
    if (typeof nameOrModel === 'string') {
      this.model = emptyModel(nameOrModel, options!.opset);
      for (const [domain, version] of Object.entries(options!.domains ?? {}))
        this.model.opsetImports.push({ domain, version });
    } else {
      this.model = nameOrModel;
      const g = nameOrModel.graph;
      for (const v of g.inputs) this.used.add(v.name);
      for (const t of g.initializers) this.used.add(t.name);
      for (const n of g.nodes) {
        this.used.add(n.name);
        for (const o of n.outputs) this.used.add(o);
      }
    }
  }

  get graph(): Graph {
    return this.model.graph;
  }

  /** The default-domain opset the graph is built for (rules differ across opsets, e.g. ReduceMean axes). */
  get opset(): number {
    return this.model.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx')!.version;
  }

  /** Makes sure the model imports `domain` (for contrib ops). */
  useDomain(domain: string, version: number): void {
    if (!this.model.opsetImports.some((o) => o.domain === domain)) this.model.opsetImports.push({ domain, version });
  }

  /** A name not used yet in the graph, derived from `hint`. */
  fresh(hint: string): string {
    let name = hint;
    for (let i = 1; this.used.has(name); i++) name = `${hint}_${i}`;
    this.used.add(name);
    return name;
  }

  /** Runs `fn` with node names prefixed by `prefix` (nested scopes join with '/'). */
  scope<T>(prefix: string, fn: () => T): T {
    this.scopes.push(prefix);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  private scoped(name: string): string {
    return this.scopes.length ? `/${this.scopes.join('/')}/${name}` : name;
  }

  input(name: string, type: ElemType, shape: Dim[] | null): string {
    if (this.used.has(name)) throw new VidpriorError('E_ONNX', `graph already has a value named "${name}"`);
    this.used.add(name);
    this.graph.inputs.push({ name, type, shape });
    return name;
  }

  /**
   * Marks `value` as a graph output. When `name` differs from the value's name an Identity renames it
   * (an output must be produced under its own name).
   */
  output(value: string, name?: string, type?: ElemType, shape?: Dim[] | null): string {
    let out = value;
    if (name && name !== value) {
      if (this.used.has(name)) throw new VidpriorError('E_ONNX', `graph already has a value named "${name}"`);
      this.used.add(name);
      this.graph.nodes.push({
        name: this.fresh(this.scoped(`Identity_${name}`)),
        opType: 'Identity',
        domain: '',
        inputs: [value],
        outputs: [name],
        attributes: {},
      });
      out = name;
    }
    this.graph.outputs.push({ name: out, type: type ?? this.typeOf(value) ?? 'float32', shape: shape ?? null });
    return out;
  }

  /** Adds a named initializer; `data` defaults to zeros. Returns its name. */
  initializer(name: string, type: ElemType, dims: number[], data?: TypedData): string {
    const n = elementCount(dims);
    const values = data ?? allocTyped(type, n);
    if (values.length !== n)
      throw new VidpriorError('E_ONNX', `initializer "${name}": ${values.length} values for dims [${dims}]`);
    const unique = this.fresh(name);
    this.graph.initializers.push({ name: unique, type, dims: [...dims], data: values });
    return unique;
  }

  /**
   * A constant as an initializer, shared between identical small constants (shapes, axes, scalars).
   * `type` defaults to int64 for integer lists and float32 otherwise.
   */
  constant(values: number[] | TypedData, dims?: number[], type?: ElemType, hint = 'const'): string {
    const arr = Array.isArray(values) ? values : null;
    const elemType: ElemType = type ?? (arr?.every(Number.isInteger) ? 'int64' : 'float32');
    const shape = dims ?? [Array.isArray(values) ? values.length : values.length];
    const key = arr && arr.length <= 64 ? `${elemType}|${shape.join(',')}|${arr.join(',')}` : null;
    if (key && this.constCache.has(key)) return this.constCache.get(key)!;
    let data: TypedData;
    if (arr) {
      data = allocTyped(elemType, arr.length);
      // A double at or past 2^63 (INT64_MAX written as a JS number) saturates instead of wrapping to INT64_MIN.
      if (data instanceof BigInt64Array)
        arr.forEach((v, i) => {
          (data as BigInt64Array)[i] = v >= 2 ** 63 ? (1n << 63n) - 1n : v <= -(2 ** 63) ? -(1n << 63n) : BigInt(v);
        });
      else if (data instanceof BigUint64Array)
        arr.forEach((v, i) => {
          (data as BigUint64Array)[i] = BigInt(v);
        });
      else
        arr.forEach((v, i) => {
          (data as Float32Array)[i] = v;
        });
    } else {
      data = values as TypedData;
    }
    const name = this.initializer(this.scoped(hint), elemType, shape, data);
    if (key) this.constCache.set(key, name);
    return name;
  }

  /** A 1-D int64 constant (shapes, axes, starts/ends). */
  ints(values: number[]): string {
    return this.constant(values, [values.length], 'int64', 'ints');
  }

  /** A scalar constant (rank 0). */
  scalar(value: number, type: ElemType = 'float32'): string {
    return this.constant([value], [], type, 'scalar');
  }

  /** Adds one node and returns its first output. */
  op(
    opType: string,
    inputs: (string | undefined)[],
    attrs: Record<string, AttrInput | undefined> = {},
    options: OpOptions = {},
  ): string {
    return this.opMulti(opType, inputs, 1, attrs, options)[0]!;
  }

  /** Adds one node with `outputs` outputs (a count or names) and returns their names. */
  opMulti(
    opType: string,
    inputs: (string | undefined)[],
    outputs: number | string[],
    attrs: Record<string, AttrInput | undefined> = {},
    options: OpOptions = {},
  ): string[] {
    const nodeName = options.name
      ? this.fresh(this.scoped(options.name))
      : this.fresh(this.scoped(`${opType}_${this.counter++}`));
    const outNames =
      options.outputs ??
      (Array.isArray(outputs)
        ? outputs.map((o) => this.fresh(o))
        : Array.from({ length: outputs }, (_, i) => this.fresh(`${nodeName}_output_${i}`)));
    const node: Node = {
      name: nodeName,
      opType,
      domain: options.domain ?? '',
      inputs: inputs.map((i) => i ?? ''),
      outputs: outNames,
      attributes: toAttributes(attrs),
    };
    for (const o of outNames) this.used.add(o);
    this.graph.nodes.push(node);
    return outNames;
  }

  /** The element type of a value when the builder can tell (inputs, initializers, annotated values). */
  typeOf(value: string): ElemType | undefined {
    const g = this.graph;
    return (
      g.inputs.find((v) => v.name === value)?.type ??
      g.initializers.find((t) => t.name === value)?.type ??
      g.valueInfo.find((v) => v.name === value)?.type
    );
  }

  build(): Model {
    return this.model;
  }
}

export function toAttributes(attrs: Record<string, AttrInput | undefined>): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined) continue;
    out[name] = toAttribute(name, value);
  }
  return out;
}

function toAttribute(name: string, value: AttrInput): AttributeValue {
  const isFloat = FLOAT_ATTRIBUTES.has(name);
  if (typeof value === 'number')
    return isFloat || !Number.isInteger(value) ? { type: 'float', value } : { type: 'int', value };
  if (typeof value === 'boolean') return { type: 'int', value: value ? 1 : 0 };
  if (typeof value === 'string') return { type: 'string', value };
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === 'string')) return { type: 'strings', value: value as string[] };
    const nums = value as number[];
    return isFloat || !nums.every(Number.isInteger) ? { type: 'floats', value: nums } : { type: 'ints', value: nums };
  }
  if ('type' in value && 'value' in value) return value as AttributeValue;
  if ('nodes' in value) return { type: 'graph', value: value as Graph };
  return { type: 'tensor', value: value as TensorValue };
}
