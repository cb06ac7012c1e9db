/**
 * vidprior's in-memory form of an ONNX model: plain objects mirroring ModelProto, easy to walk, rewrite and
 * build. `codec.ts` turns it into protobuf bytes and back; `graph.ts` indexes and rewrites it; `builder.ts`
 * makes new graphs; `shape-inference.ts` fills in static shapes.
 *
 * Names, not object references, connect nodes (as in ONNX): a value is produced by at most one node or is a
 * graph input or an initializer; the empty string is an omitted optional input.
 */
import { VidpriorError } from '../errors.js';

/** Element types vidprior handles (ONNX TensorProto.DataType by name). */
export type ElemType =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  | 'string';

/** ONNX's numeric codes for the element types (TensorProto.DataType). */
export const ELEM_TYPE_CODE: Record<ElemType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
  bfloat16: 16,
};

export const ELEM_TYPE_BY_CODE: Record<number, ElemType> = Object.fromEntries(
  Object.entries(ELEM_TYPE_CODE).map(([k, v]) => [v, k as ElemType]),
);

/** Bytes per element (strings have no fixed size: 0). */
export const ELEM_SIZE: Record<ElemType, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  int64: 8,
  uint64: 8,
  bool: 1,
  string: 0,
};

/** The typed array that holds each element type; float16/bfloat16 are raw bits in a Uint16Array. */
export type TypedData =
  | Float32Array
  | Float64Array
  | Uint16Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** A dimension: a number when static, a name when symbolic, null when unknown. */
export type Dim = number | string | null;

/** Where an initializer's bytes live when stored outside the .onnx file. */
export interface ExternalRef {
  /** File path relative to the model's folder. */
  location: string;
  offset: number;
  length: number;
  /**
   * Absolute folder `location` is relative to, set when a model was loaded without its external data
   * (external-data.ts reads or copies the bytes from there later). Not written to the file.
   */
  baseDir?: string;
}

/** A constant tensor (ONNX TensorProto): an initializer, or the value of a Constant / tensor attribute. */
export interface TensorValue {
  name: string;
  type: ElemType;
  dims: number[];
  /** The elements (little-endian, row-major). Absent while the bytes are still external. */
  data?: TypedData;
  /** For string tensors. */
  strings?: string[];
  /** Set when the bytes live in an external file and have not been loaded. */
  external?: ExternalRef;
  docString?: string;
}

/** A typed attribute value (ONNX AttributeProto); the tag keeps INT and FLOAT apart. */
export type AttributeValue =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: TensorValue }
  | { type: 'graph'; value: Graph }
  | { type: 'ints'; value: number[] }
  | { type: 'floats'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensors'; value: TensorValue[] }
  | { type: 'graphs'; value: Graph[] };

export interface Node {
  /** Unique within the graph when set (exporters always set it; the builder makes one). */
  name: string;
  opType: string;
  /** '' (or 'ai.onnx') for the standard domain, 'com.microsoft' for contrib ops. */
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, AttributeValue>;
  /**
   * Inside a function body only: attributes whose value is the calling node's attribute `ref`
   * (AttributeProto.ref_attr_name). functions.ts substitutes them when a call is inlined.
   */
  attributeRefs?: Record<string, { ref: string; type: AttributeValue['type'] }>;
  docString?: string;
}

/** A graph input/output or an intermediate value's type (ONNX ValueInfoProto with a tensor type). */
export interface ValueInfo {
  name: string;
  type: ElemType;
  /** null when the rank is unknown. */
  shape: Dim[] | null;
  docString?: string;
}

export interface Graph {
  name: string;
  nodes: Node[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: TensorValue[];
  /** Types of intermediate values (filled by shape inference). */
  valueInfo: ValueInfo[];
  docString?: string;
}

export interface OpsetImport {
  domain: string;
  version: number;
}

/** A model-local function (FunctionProto); kept so that models using them round-trip. */
export interface FunctionDef {
  name: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: string[];
  nodes: Node[];
  opsetImports: OpsetImport[];
  /** Default values of attributes (FunctionProto.attribute_proto), by attribute name. */
  attributeDefaults?: Record<string, AttributeValue>;
  docString?: string;
}

export interface Model {
  irVersion: number;
  opsetImports: OpsetImport[];
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  graph: Graph;
  metadata: Record<string, string>;
  functions: FunctionDef[];
}

/** The default-domain opset of a model (the one SD exports are versioned by). */
export function defaultOpset(model: Model): number {
  const imp = model.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  if (!imp) throw new VidpriorError('E_ONNX', `model "${model.graph.name}" imports no default-domain opset`);
  return imp.version;
}

// ---- attribute helpers ------------------------------------------------------------------------------

export function attrInt(node: Node, name: string): number | undefined;
export function attrInt(node: Node, name: string, fallback: number): number;
export function attrInt(node: Node, name: string, fallback?: number): number | undefined {
  const a = node.attributes[name];
  if (!a) return fallback;
  if (a.type !== 'int')
    throw new VidpriorError(
      'E_ONNX',
      `node "${node.name}" (${node.opType}): attribute ${name} is ${a.type}, expected int`,
    );
  return a.value;
}

export function attrFloat(node: Node, name: string): number | undefined;
export function attrFloat(node: Node, name: string, fallback: number): number;
export function attrFloat(node: Node, name: string, fallback?: number): number | undefined {
  const a = node.attributes[name];
  if (!a) return fallback;
  if (a.type !== 'float' && a.type !== 'int')
    throw new VidpriorError(
      'E_ONNX',
      `node "${node.name}" (${node.opType}): attribute ${name} is ${a.type}, expected float`,
    );
  return a.value;
}

export function attrInts(node: Node, name: string): number[] | undefined;
export function attrInts(node: Node, name: string, fallback: number[]): number[];
export function attrInts(node: Node, name: string, fallback?: number[]): number[] | undefined {
  const a = node.attributes[name];
  if (!a) return fallback;
  if (a.type !== 'ints')
    throw new VidpriorError(
      'E_ONNX',
      `node "${node.name}" (${node.opType}): attribute ${name} is ${a.type}, expected ints`,
    );
  return a.value;
}

export function attrString(node: Node, name: string): string | undefined;
export function attrString(node: Node, name: string, fallback: string): string;
export function attrString(node: Node, name: string, fallback?: string): string | undefined {
  const a = node.attributes[name];
  if (!a) return fallback;
  if (a.type !== 'string')
    throw new VidpriorError(
      'E_ONNX',
      `node "${node.name}" (${node.opType}): attribute ${name} is ${a.type}, expected string`,
    );
  return a.value;
}

export function attrTensor(node: Node, name: string): TensorValue | undefined {
  const a = node.attributes[name];
  if (!a) return undefined;
  if (a.type !== 'tensor')
    throw new VidpriorError(
      'E_ONNX',
      `node "${node.name}" (${node.opType}): attribute ${name} is ${a.type}, expected tensor`,
    );
  return a.value;
}

/** Attribute constructors for code that builds nodes by hand. */
export const attr = {
  int: (value: number): AttributeValue => ({ type: 'int', value }),
  float: (value: number): AttributeValue => ({ type: 'float', value }),
  string: (value: string): AttributeValue => ({ type: 'string', value }),
  ints: (value: number[]): AttributeValue => ({ type: 'ints', value }),
  floats: (value: number[]): AttributeValue => ({ type: 'floats', value }),
  tensor: (value: TensorValue): AttributeValue => ({ type: 'tensor', value }),
  graph: (value: Graph): AttributeValue => ({ type: 'graph', value }),
};

// ---- tensor value helpers ---------------------------------------------------------------------------

export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Allocates the right typed array for `n` elements of `type`. */
export function allocTyped(type: ElemType, n: number): TypedData {
  switch (type) {
    case 'float32':
      return new Float32Array(n);
    case 'float64':
      return new Float64Array(n);
    case 'float16':
    case 'bfloat16':
    case 'uint16':
      return new Uint16Array(n);
    case 'int8':
      return new Int8Array(n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(n);
    case 'int16':
      return new Int16Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'uint32':
      return new Uint32Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'uint64':
      return new BigUint64Array(n);
    case 'string':
      throw new VidpriorError('E_ONNX', 'string tensors have no typed array');
  }
}

/** A view of raw little-endian bytes as the typed array of `type` (copies when unaligned). */
export function typedFromBytes(type: ElemType, bytes: Uint8Array): TypedData {
  const size = ELEM_SIZE[type];
  if (size === 0) throw new VidpriorError('E_ONNX', 'string tensors have no raw bytes');
  if (bytes.byteLength % size !== 0)
    throw new VidpriorError('E_ONNX', `${bytes.byteLength} bytes is not a whole number of ${type} elements`);
  // new Uint8Array(bytes) copies (Buffer.prototype.slice would return another unaligned view).
  const src = bytes.byteOffset % size === 0 ? bytes : new Uint8Array(bytes);
  const n = src.byteLength / size;
  switch (type) {
    case 'float32':
      return new Float32Array(src.buffer, src.byteOffset, n);
    case 'float64':
      return new Float64Array(src.buffer, src.byteOffset, n);
    case 'float16':
    case 'bfloat16':
    case 'uint16':
      return new Uint16Array(src.buffer, src.byteOffset, n);
    case 'int8':
      return new Int8Array(src.buffer, src.byteOffset, n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(src.buffer, src.byteOffset, n);
    case 'int16':
      return new Int16Array(src.buffer, src.byteOffset, n);
    case 'int32':
      return new Int32Array(src.buffer, src.byteOffset, n);
    case 'uint32':
      return new Uint32Array(src.buffer, src.byteOffset, n);
    case 'int64':
      return new BigInt64Array(src.buffer, src.byteOffset, n);
    case 'uint64':
      return new BigUint64Array(src.buffer, src.byteOffset, n);
    default:
      throw new VidpriorError('E_ONNX', `no typed array for ${type}`);
  }
}

/** The bytes of a typed array (a view, no copy). */
export function bytesOf(data: TypedData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Reads a small integer tensor (shapes, axes, pads) as numbers. */
export function tensorToNumbers(t: TensorValue): number[] {
  if (!t.data) throw new VidpriorError('E_ONNX', `tensor "${t.name}" has no loaded data`);
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}

export function emptyModel(graphName: string, opset: number): Model {
  return {
    irVersion: opset >= 21 ? 10 : opset >= 19 ? 9 : 8,
    opsetImports: [{ domain: '', version: opset }],
    producerName: 'vidprior',
    producerVersion: '0.1.0',
    domain: '',
    modelVersion: 1,
    docString: '',
    graph: { name: graphName, nodes: [], inputs: [], outputs: [], initializers: [], valueInfo: [] },
    metadata: {},
    functions: [],
  };
}
