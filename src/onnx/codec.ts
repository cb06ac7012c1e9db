/**
 * ONNX ModelProto bytes ⇄ vidprior's IR (ir.ts), through protobufjs and the schema in schema.ts.
 *
 * Decoding keeps tensor bytes as zero-copy views of the input buffer where alignment allows (so a model's
 * weights are not held twice); pass `copyData` to detach them. Tensors stored as external data keep their
 * reference (`TensorValue.external`) and no data: external-data.ts loads them. Encoding always writes
 * `raw_data` for loaded tensors, and external references for the rest.
 */
import protobuf from 'protobufjs';
import { VidpriorError } from '../errors.js';
import {
  type AttributeValue,
  type Dim,
  type ElemType,
  type FunctionDef,
  type Graph,
  type Model,
  type Node,
  type OpsetImport,
  type TensorValue,
  type TypedData,
  type ValueInfo,
  ELEM_SIZE,
  ELEM_TYPE_BY_CODE,
  ELEM_TYPE_CODE,
  allocTyped,
  bytesOf,
  elementCount,
  typedFromBytes,
} from './ir.js';
import {
  type Int64,
  type PAttribute,
  type PDim,
  type PFunction,
  type PGraph,
  type PModel,
  type PNode,
  type POpset,
  type PTensor,
  type PValueInfo,
  onnxTypes,
} from './schema.js';

export interface DecodeOptions {
  /** Copy tensor bytes out of `bytes` instead of viewing them (lets the caller's buffer be freed). */
  copyData?: boolean;
}

/** Protobuf's hard limit on one message; larger models must keep their weights in external data. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

// AttributeProto.AttributeType
const A = {
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
} as const;
const EXTERNAL = 1; // TensorProto.DataLocation
const ATTRIBUTE_TYPE_NAMES: Record<number, AttributeValue['type']> = {
  [A.FLOAT]: 'float',
  [A.INT]: 'int',
  [A.STRING]: 'string',
  [A.TENSOR]: 'tensor',
  [A.GRAPH]: 'graph',
  [A.FLOATS]: 'floats',
  [A.INTS]: 'ints',
  [A.STRINGS]: 'strings',
  [A.TENSORS]: 'tensors',
  [A.GRAPHS]: 'graphs',
};
const ATTRIBUTE_TYPE_CODES = Object.fromEntries(
  Object.entries(ATTRIBUTE_TYPE_NAMES).map(([k, v]) => [v, Number(k)]),
) as Record<AttributeValue['type'], number>;

const utf8 = new TextDecoder();
const utf8Encoder = new TextEncoder();

function has(obj: object, key: string): boolean {
  return Object.hasOwn(obj, key);
}

function toNumber(v: Int64 | undefined): number {
  if (v === undefined) return 0;
  if (typeof v === 'number') return v;
  return Number(toBigInt(v));
}

function toBigInt(v: Int64): bigint {
  if (typeof v === 'number') return BigInt(v);
  const raw = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return v.unsigned ? raw : BigInt.asIntN(64, raw);
}

/** An int64 for protobufjs' writer; numbers beyond ±2^63 (INT64_MAX read as a double) saturate. */
function toLong(v: number | bigint): { low: number; high: number; unsigned: boolean } {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (v >= 2 ** 63) b = (1n << 63n) - 1n;
  else if (v <= -(2 ** 63)) b = -(1n << 63n);
  else b = BigInt(Math.trunc(v));
  const u = BigInt.asUintN(64, b);
  return { low: Number(u & 0xffffffffn) | 0, high: Number(u >> 32n) | 0, unsigned: false };
}

function onnxError(message: string, details?: Record<string, unknown>): VidpriorError {
  return new VidpriorError('E_ONNX', message, details);
}

// ---- decoding ------------------------------------------------------------------------------------------

/** Parses ONNX ModelProto bytes into the IR. Throws E_ONNX on malformed or unsupported content. */
export function decodeModel(bytes: Uint8Array, opts: DecodeOptions = {}): Model {
  let pm: PModel;
  try {
    // A plain Uint8Array view, so that protobufjs hands out Uint8Array subarrays (not Buffer slices).
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    pm = onnxTypes().ModelProto.decode(view) as unknown as PModel;
  } catch (err) {
    throw new VidpriorError('E_ONNX', `not a valid ONNX model: ${(err as Error).message}`, undefined, { cause: err });
  }
  if (!pm.graph) throw onnxError('ONNX model has no graph');
  const metadata: Record<string, string> = {};
  for (const e of pm.metadata_props ?? []) metadata[e.key ?? ''] = e.value ?? '';
  return {
    irVersion: toNumber(pm.ir_version),
    opsetImports: (pm.opset_import ?? []).map(decodeOpset),
    producerName: pm.producer_name ?? '',
    producerVersion: pm.producer_version ?? '',
    domain: pm.domain ?? '',
    modelVersion: toNumber(pm.model_version),
    docString: pm.doc_string ?? '',
    graph: decodeGraph(pm.graph, opts),
    metadata,
    functions: (pm.functions ?? []).map((f) => decodeFunction(f, opts)),
  };
}

function decodeOpset(o: POpset): OpsetImport {
  return { domain: o.domain ?? '', version: toNumber(o.version) };
}

function decodeGraph(g: PGraph, opts: DecodeOptions): Graph {
  if (g.sparse_initializer?.length) {
    throw onnxError(`graph "${g.name ?? ''}" has sparse initializers, which vidprior does not support`);
  }
  const graph: Graph = {
    name: g.name ?? '',
    nodes: (g.node ?? []).map((n) => decodeNode(n, opts)),
    inputs: (g.input ?? []).map((v) => decodeValueInfo(v, true)!),
    outputs: (g.output ?? []).map((v) => decodeValueInfo(v, true)!),
    initializers: (g.initializer ?? []).map((t) => decodeTensor(t, opts)),
    valueInfo: (g.value_info ?? []).map((v) => decodeValueInfo(v, false)).filter((v): v is ValueInfo => v !== null),
  };
  if (g.doc_string) graph.docString = g.doc_string;
  return graph;
}

function decodeNode(n: PNode, opts: DecodeOptions): Node {
  const attributes: Record<string, AttributeValue> = {};
  let refs: Node['attributeRefs'];
  for (const a of n.attribute ?? []) {
    const where = `node "${n.name ?? ''}" (${n.op_type ?? '?'})`;
    if (a.ref_attr_name) {
      const type = ATTRIBUTE_TYPE_NAMES[a.type ?? 0];
      if (!type)
        throw onnxError(
          `${where}: attribute "${a.name}" refers to "${a.ref_attr_name}" with unsupported type ${a.type ?? 0}`,
        );
      (refs ??= {})[a.name ?? ''] = { ref: a.ref_attr_name, type };
    } else {
      attributes[a.name ?? ''] = decodeAttribute(a, where, opts);
    }
  }
  const node: Node = {
    name: n.name ?? '',
    opType: n.op_type ?? '',
    domain: n.domain ?? '',
    inputs: [...(n.input ?? [])],
    outputs: [...(n.output ?? [])],
    attributes,
  };
  if (refs) node.attributeRefs = refs;
  if (n.doc_string) node.docString = n.doc_string;
  return node;
}

/** The attribute's type: its `type` field, or (old writers leave it UNDEFINED) the field that is set. */
function attributeType(a: PAttribute): number {
  if (a.type) return a.type;
  if (has(a, 'f')) return A.FLOAT;
  if (has(a, 'i')) return A.INT;
  if (has(a, 's')) return A.STRING;
  if (has(a, 't')) return A.TENSOR;
  if (has(a, 'g')) return A.GRAPH;
  if (a.floats?.length) return A.FLOATS;
  if (a.ints?.length) return A.INTS;
  if (a.strings?.length) return A.STRINGS;
  if (a.tensors?.length) return A.TENSORS;
  if (a.graphs?.length) return A.GRAPHS;
  return 0;
}

function decodeAttribute(a: PAttribute, where: string, opts: DecodeOptions): AttributeValue {
  const type = attributeType(a);
  switch (type) {
    case A.FLOAT:
      return { type: 'float', value: a.f ?? 0 };
    case A.INT:
      return { type: 'int', value: toNumber(a.i) };
    case A.STRING:
      return { type: 'string', value: utf8.decode(a.s ?? new Uint8Array()) };
    case A.TENSOR:
      return { type: 'tensor', value: decodeTensor(a.t ?? {}, opts) };
    case A.GRAPH:
      return { type: 'graph', value: decodeGraph(a.g ?? {}, opts) };
    case A.FLOATS:
      return { type: 'floats', value: [...(a.floats ?? [])] };
    case A.INTS:
      return { type: 'ints', value: (a.ints ?? []).map(toNumber) };
    case A.STRINGS:
      return { type: 'strings', value: (a.strings ?? []).map((s) => utf8.decode(s)) };
    case A.TENSORS:
      return { type: 'tensors', value: (a.tensors ?? []).map((t) => decodeTensor(t, opts)) };
    case A.GRAPHS:
      return { type: 'graphs', value: (a.graphs ?? []).map((g) => decodeGraph(g, opts)) };
    default:
      throw onnxError(`${where}: attribute "${a.name}" has type ${type}, which vidprior does not support`);
  }
}

function elemTypeOf(code: number | undefined, what: string): ElemType {
  const type = ELEM_TYPE_BY_CODE[code ?? 0];
  if (!type)
    throw onnxError(`${what} has element type ${code ?? 0}, which vidprior does not support`, { elemType: code });
  return type;
}

/** Decodes a ValueInfoProto; non-tensor or unknown types are an error for graph IO and skipped otherwise. */
function decodeValueInfo(v: PValueInfo, required: boolean): ValueInfo | null {
  const name = v.name ?? '';
  const tt = v.type?.tensor_type;
  if (!tt || !ELEM_TYPE_BY_CODE[tt.elem_type ?? 0]) {
    if (!required) return null;
    if (!tt) throw onnxError(`graph input/output "${name}" is not a tensor, which vidprior does not support`);
    elemTypeOf(tt.elem_type, `graph input/output "${name}"`);
  }
  const shape: Dim[] | null = tt!.shape
    ? (tt!.shape.dim ?? []).map((d) =>
        has(d, 'dim_value') ? toNumber(d.dim_value) : has(d, 'dim_param') ? d.dim_param! : null,
      )
    : null;
  const info: ValueInfo = { name, type: ELEM_TYPE_BY_CODE[tt!.elem_type!]!, shape };
  if (v.doc_string) info.docString = v.doc_string;
  return info;
}

function decodeTensor(t: PTensor, opts: DecodeOptions): TensorValue {
  const name = t.name ?? '';
  const type = elemTypeOf(t.data_type, `tensor "${name}"`);
  const dims = (t.dims ?? []).map(toNumber);
  const tensor: TensorValue = { name, type, dims };
  if (t.doc_string) tensor.docString = t.doc_string;
  const count = elementCount(dims);

  if (t.data_location === EXTERNAL) {
    const entries: Record<string, string> = {};
    for (const e of t.external_data ?? []) entries[e.key ?? ''] = e.value ?? '';
    if (!entries.location) throw onnxError(`tensor "${name}" is external but names no location`);
    tensor.external = {
      location: entries.location,
      offset: entries.offset ? Number(entries.offset) : 0,
      length: entries.length ? Number(entries.length) : count * ELEM_SIZE[type],
    };
    return tensor;
  }

  if (type === 'string') {
    tensor.strings = (t.string_data ?? []).map((s) => utf8.decode(s));
    if (tensor.strings.length !== count)
      throw onnxError(`tensor "${name}": ${tensor.strings.length} strings for dims [${dims}]`);
    return tensor;
  }

  let data: TypedData;
  if (has(t, 'raw_data')) {
    const raw = opts.copyData ? t.raw_data!.slice() : t.raw_data!;
    data = typedFromBytes(type, raw);
  } else {
    data = decodeTypedFields(t, type, count);
  }
  if (data.length !== count) {
    throw onnxError(`tensor "${name}" holds ${data.length} ${type} values but its dims [${dims}] need ${count}`, {
      tensor: name,
    });
  }
  tensor.data = data;
  return tensor;
}

/** The typed repeated fields that writers use instead of raw_data (onnx.proto says which type goes where). */
function decodeTypedFields(t: PTensor, type: ElemType, count: number): TypedData {
  switch (type) {
    case 'float32':
      return Float32Array.from(t.float_data ?? []);
    case 'float64':
      return Float64Array.from(t.double_data ?? []);
    case 'int64':
      return BigInt64Array.from(t.int64_data ?? [], toBigInt);
    case 'uint64':
      return BigUint64Array.from(t.uint64_data ?? [], (v) => BigInt.asUintN(64, toBigInt(v)));
    case 'uint32':
      return Uint32Array.from(t.uint64_data ?? [], toNumber);
    case 'int32':
    case 'int16':
    case 'int8':
    case 'uint16':
    case 'uint8':
    case 'bool':
    case 'float16':
    case 'bfloat16': {
      // Small types sit one per int32; float16/bfloat16 as their 16 raw bits.
      const src = t.int32_data ?? [];
      const out = allocTyped(type, src.length) as Int32Array;
      for (let i = 0; i < src.length; i++) out[i] = src[i]!;
      return out;
    }
    default:
      throw onnxError(
        `tensor "${t.name ?? ''}" of type ${type} has no data field vidprior can read (${count} values expected)`,
      );
  }
}

function decodeFunction(f: PFunction, opts: DecodeOptions): FunctionDef {
  const fn: FunctionDef = {
    name: f.name ?? '',
    domain: f.domain ?? '',
    inputs: [...(f.input ?? [])],
    outputs: [...(f.output ?? [])],
    attributes: [...(f.attribute ?? [])],
    nodes: (f.node ?? []).map((n) => decodeNode(n, opts)),
    opsetImports: (f.opset_import ?? []).map(decodeOpset),
  };
  if (f.attribute_proto?.length) {
    fn.attributeDefaults = {};
    for (const a of f.attribute_proto)
      fn.attributeDefaults[a.name ?? ''] = decodeAttribute(a, `function "${fn.name}"`, opts);
  }
  if (f.doc_string) fn.docString = f.doc_string;
  return fn;
}

// ---- encoding ------------------------------------------------------------------------------------------

/**
 * Serializes the IR to ModelProto bytes. Tensors with data are written inline (raw_data); tensors without
 * data but with an external reference are written as references. Throws E_ONNX when the result would pass
 * protobuf's 2 GB limit (save with external data instead: external-data.ts).
 */
export function encodeModel(model: Model): Uint8Array {
  const inlineBytes = inlineTensorBytes(model.graph);
  if (inlineBytes > PROTOBUF_LIMIT) {
    throw onnxError(
      `model "${model.graph.name}" holds ${inlineBytes} bytes of tensors inline, over protobuf's 2 GB limit: save it with external data`,
      { bytes: inlineBytes },
    );
  }
  const pm = {
    ir_version: toLong(model.irVersion),
    opset_import: model.opsetImports.map(encodeOpset),
    producer_name: model.producerName,
    producer_version: model.producerVersion,
    domain: model.domain,
    model_version: toLong(model.modelVersion),
    doc_string: model.docString,
    graph: encodeGraph(model.graph),
    metadata_props: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
    functions: model.functions.map(encodeFunction),
  };
  // One buffer sized up front (tensor bytes + room for the graph) and returned without the final copy
  // protobufjs would make: encoding a few hundred MB of weights would otherwise copy them twice more.
  const writer = protobuf.Writer.create();
  const reserve = (writer as unknown as { _reserve?: (n: number) => void })._reserve;
  if (typeof reserve === 'function') reserve.call(writer, inlineBytes + 4096 + countNodes(model.graph) * 512);
  const out = onnxTypes().ModelProto.encode(pm, writer).finish(true);
  // Trim when the guess was far off (the view would keep a much larger buffer alive).
  return out.buffer.byteLength > out.byteLength * 1.25 + (1 << 20) ? out.slice() : out;
}

function countNodes(g: Graph): number {
  let n = g.nodes.length;
  for (const node of g.nodes) {
    for (const a of Object.values(node.attributes)) {
      if (a.type === 'graph') n += countNodes(a.value);
      else if (a.type === 'graphs') for (const sub of a.value) n += countNodes(sub);
    }
  }
  return n;
}

/** Bytes of tensor data a graph (and its subgraphs) would hold inline. */
function inlineTensorBytes(g: Graph): number {
  let total = 0;
  const tensor = (t: TensorValue): void => {
    if (t.data) total += t.data.byteLength;
  };
  for (const t of g.initializers) tensor(t);
  for (const n of g.nodes) {
    for (const a of Object.values(n.attributes)) {
      if (a.type === 'tensor') tensor(a.value);
      else if (a.type === 'tensors') a.value.forEach(tensor);
      else if (a.type === 'graph') total += inlineTensorBytes(a.value);
      else if (a.type === 'graphs') for (const sub of a.value) total += inlineTensorBytes(sub);
    }
  }
  return total;
}

function encodeOpset(o: OpsetImport): POpset {
  return { domain: o.domain, version: toLong(o.version) };
}

function encodeGraph(g: Graph): PGraph {
  return {
    node: g.nodes.map(encodeNode),
    name: g.name,
    initializer: g.initializers.map(encodeTensor),
    doc_string: g.docString,
    input: g.inputs.map(encodeValueInfo),
    output: g.outputs.map(encodeValueInfo),
    value_info: g.valueInfo.map(encodeValueInfo),
  };
}

function encodeNode(n: Node): PNode {
  return {
    input: n.inputs,
    output: n.outputs,
    name: n.name,
    op_type: n.opType,
    domain: n.domain,
    attribute: [
      ...Object.entries(n.attributes).map(([name, a]) => encodeAttribute(name, a)),
      ...Object.entries(n.attributeRefs ?? {}).map(([name, r]) => ({
        name,
        ref_attr_name: r.ref,
        type: ATTRIBUTE_TYPE_CODES[r.type],
      })),
    ],
    doc_string: n.docString,
  };
}

function encodeAttribute(name: string, a: AttributeValue): PAttribute {
  switch (a.type) {
    case 'float':
      return { name, type: A.FLOAT, f: a.value };
    case 'int':
      return { name, type: A.INT, i: toLong(a.value) };
    case 'string':
      return { name, type: A.STRING, s: utf8Encoder.encode(a.value) };
    case 'tensor':
      return { name, type: A.TENSOR, t: encodeTensor(a.value) };
    case 'graph':
      return { name, type: A.GRAPH, g: encodeGraph(a.value) };
    case 'floats':
      return { name, type: A.FLOATS, floats: a.value };
    case 'ints':
      return { name, type: A.INTS, ints: a.value.map(toLong) };
    case 'strings':
      return { name, type: A.STRINGS, strings: a.value.map((s) => utf8Encoder.encode(s)) };
    case 'tensors':
      return { name, type: A.TENSORS, tensors: a.value.map(encodeTensor) };
    case 'graphs':
      return { name, type: A.GRAPHS, graphs: a.value.map(encodeGraph) };
  }
}

function encodeValueInfo(v: ValueInfo): PValueInfo {
  const shape =
    v.shape === null
      ? undefined
      : {
          dim: v.shape.map(
            (d): PDim =>
              typeof d === 'number' ? { dim_value: toLong(d) } : typeof d === 'string' ? { dim_param: d } : {},
          ),
        };
  return { name: v.name, type: { tensor_type: { elem_type: ELEM_TYPE_CODE[v.type], shape } }, doc_string: v.docString };
}

/** A TensorProto: raw_data when the data is loaded, else the external reference. */
export function encodeTensor(t: TensorValue): PTensor {
  const pt: PTensor = {
    dims: t.dims.map(toLong) as Int64[],
    data_type: ELEM_TYPE_CODE[t.type],
    name: t.name,
    doc_string: t.docString,
  };
  if (t.type === 'string') {
    pt.string_data = (t.strings ?? []).map((s) => utf8Encoder.encode(s));
  } else if (t.data) {
    pt.raw_data = bytesOf(t.data);
  } else if (t.external) {
    pt.data_location = EXTERNAL;
    pt.external_data = [
      { key: 'location', value: t.external.location },
      { key: 'offset', value: String(t.external.offset) },
      { key: 'length', value: String(t.external.length) },
    ];
  } else {
    throw onnxError(`tensor "${t.name}" has neither data nor an external reference`, { tensor: t.name });
  }
  return pt;
}

function encodeFunction(f: FunctionDef): PFunction {
  return {
    name: f.name,
    domain: f.domain,
    input: f.inputs,
    output: f.outputs,
    attribute: f.attributes,
    attribute_proto: Object.entries(f.attributeDefaults ?? {}).map(([name, a]) => encodeAttribute(name, a)),
    node: f.nodes.map(encodeNode),
    opset_import: f.opsetImports.map(encodeOpset),
    doc_string: f.docString,
  };
}
