/**
 * safetensors files (the format LoRA adapters are shared in): an 8-byte little-endian header length, a JSON
 * header `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__: {string: string}}`, then the bytes.
 * Written by hand because the format is tiny and no maintained npm package reads and writes it.
 */
import { type FileHandle, open, readFile, rename, rm } from 'node:fs/promises';
import { VidpriorError } from '../errors.js';
import { type ElemType, type TypedData, bytesOf, typedFromBytes } from '../onnx/ir.js';

export interface SafeTensor {
  type: ElemType;
  dims: number[];
  data: TypedData;
}

export interface SafetensorsFile {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

/** safetensors dtype names → element types. */
export const SAFETENSORS_DTYPES: Record<string, ElemType> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
  U16: 'uint16',
  U32: 'uint32',
  U64: 'uint64',
};
const ELEM_TO_DTYPE: Partial<Record<ElemType, string>> = Object.fromEntries(
  Object.entries(SAFETENSORS_DTYPES).map(([k, v]) => [v, k]),
);

/** Maximum header size accepted (the reference implementation's limit is 100 MB). */
export const MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024;

function sortedEntries(entries: [string, SafeTensor][]): [string, SafeTensor][] {
  // Sorted by name, like the reference writer, so the same adapter always gives the same bytes.
  return [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The 8-byte length and the JSON header (padded so the data starts 8-byte aligned). */
function encodeHeader(entries: [string, SafeTensor][], metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of sortedEntries(entries)) {
    const dtype = ELEM_TO_DTYPE[t.type];
    if (!dtype)
      throw new VidpriorError('E_ADAPTER', `tensor "${name}" has type ${t.type}, which safetensors cannot store`);
    const n = t.dims.reduce((a, b) => a * b, 1);
    if (n !== t.data.length)
      throw new VidpriorError('E_ADAPTER', `tensor "${name}": ${t.data.length} values for shape [${t.dims}]`);
    header[name] = { dtype, shape: t.dims, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8); // keep the data 8-byte aligned
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  return out;
}

export function encodeSafetensors(
  tensors: Map<string, SafeTensor> | Record<string, SafeTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header = encodeHeader(entries, metadata);
  const sorted = sortedEntries(entries);
  const out = new Uint8Array(header.byteLength + sorted.reduce((s, [, t]) => s + t.data.byteLength, 0));
  out.set(header, 0);
  let pos = header.byteLength;
  for (const [, t] of sorted) {
    out.set(bytesOf(t.data), pos);
    pos += t.data.byteLength;
  }
  return out;
}

export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors data'): SafetensorsFile {
  const bad = (why: string): VidpriorError =>
    new VidpriorError('E_ADAPTER', `${source} is not a valid safetensors file: ${why}`, { file: source });
  if (bytes.byteLength < 8) throw bad('shorter than its 8-byte header length');
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (headerLength > MAX_SAFETENSORS_HEADER || 8 + headerLength > bytes.byteLength)
    throw bad(`header length ${headerLength} does not fit the file`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerLength).toString('utf8')) as Record<
      string,
      unknown
    >;
  } catch {
    throw bad('the header is not JSON');
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.byteLength - dataStart;
  const tensors = new Map<string, SafeTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    const type = e.dtype ? SAFETENSORS_DTYPES[e.dtype] : undefined;
    if (!type) throw bad(`tensor "${name}" has unsupported dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || !Array.isArray(e.data_offsets))
      throw bad(`tensor "${name}" lacks shape or data_offsets`);
    const [begin, end] = e.data_offsets;
    if (!(begin! >= 0 && end! >= begin! && end! <= dataLength))
      throw bad(`tensor "${name}" has data_offsets [${begin}, ${end}] outside the data`);
    const data = typedFromBytes(type, bytes.subarray(dataStart + begin!, dataStart + end!));
    const n = e.shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw bad(`tensor "${name}" has ${data.length} values for shape [${e.shape}]`);
    tensors.set(name, { type, dims: e.shape, data });
  }
  return { tensors, metadata };
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new VidpriorError('E_ADAPTER', `cannot read adapter file ${path}: ${(err as Error).message}`, { file: path });
  }
  return decodeSafetensors(bytes, path);
}

/** Writes atomically (temp file + fsync + rename) so a crash never leaves half an adapter behind. */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, SafeTensor> | Record<string, SafeTensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  // Streamed tensor by tensor: a full-UNet delta or checkpoint is gigabytes, never one buffer.
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header = encodeHeader(entries, metadata);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.write(header);
      for (const [, t] of sortedEntries(entries)) await writeAll(fh, bytesOf(t.data));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw new VidpriorError('E_IO', `cannot write ${path}: ${(err as Error).message}`, { file: path }, { cause: err });
  }
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  const CHUNK = 1 << 30; // one write call is capped at 2 GB
  for (let done = 0; done < bytes.byteLength; ) {
    const { bytesWritten } = await fh.write(bytes, done, Math.min(CHUNK, bytes.byteLength - done));
    done += bytesWritten;
  }
}

/** A safetensors file opened for reading one tensor at a time (deltas of a full UNet are gigabytes). */
export interface SafetensorsReader {
  metadata: Record<string, string>;
  /** Name → type and dims, in file order. */
  entries: Map<string, { type: ElemType; dims: number[] }>;
  read(name: string): Promise<SafeTensor>;
  close(): Promise<void>;
}

export async function openSafetensors(path: string): Promise<SafetensorsReader> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new VidpriorError('E_ADAPTER', `cannot read ${path}: ${(err as Error).message}`, { file: path });
  }
  try {
    const size = (await fh.stat()).size;
    const lengthBytes = new Uint8Array(8);
    await fh.read(lengthBytes, 0, 8, 0);
    const headerLength = Number(new DataView(lengthBytes.buffer).getBigUint64(0, true));
    if (size < 8 || headerLength > MAX_SAFETENSORS_HEADER || 8 + headerLength > size)
      throw new VidpriorError('E_ADAPTER', `${path} is not a valid safetensors file: bad header length`, {
        file: path,
      });
    const headerBytes = new Uint8Array(headerLength);
    await fh.read(headerBytes, 0, headerLength, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(headerBytes).toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new VidpriorError('E_ADAPTER', `${path} is not a valid safetensors file: the header is not JSON`);
    }
    const metadata = (header.__metadata__ as Record<string, string> | undefined) ?? {};
    const entries = new Map<string, { type: ElemType; dims: number[] }>();
    const offsets = new Map<string, [number, number]>();
    const dataStart = 8 + headerLength;
    for (const [name, entry] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const e = entry as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
      const type = e.dtype ? SAFETENSORS_DTYPES[e.dtype] : undefined;
      const [begin, end] = e.data_offsets ?? [-1, -1];
      if (!type || !Array.isArray(e.shape) || !(begin >= 0 && end >= begin && dataStart + end <= size))
        throw new VidpriorError('E_ADAPTER', `${path} is not a valid safetensors file: bad entry "${name}"`, {
          file: path,
        });
      entries.set(name, { type, dims: e.shape });
      offsets.set(name, [begin, end]);
    }
    return {
      metadata,
      entries,
      async read(name) {
        const e = entries.get(name);
        const o = offsets.get(name);
        if (!e || !o) throw new VidpriorError('E_ADAPTER', `${path} has no tensor "${name}"`, { file: path });
        const bytes = new Uint8Array(o[1] - o[0]);
        for (let done = 0; done < bytes.byteLength; ) {
          const { bytesRead } = await fh.read(bytes, done, bytes.byteLength - done, dataStart + o[0] + done);
          if (bytesRead === 0) throw new VidpriorError('E_ADAPTER', `${path} ends early`, { file: path });
          done += bytesRead;
        }
        const data = typedFromBytes(e.type, bytes);
        if (data.length !== e.dims.reduce((a, b) => a * b, 1))
          throw new VidpriorError('E_ADAPTER', `${path}: tensor "${name}" has the wrong size for [${e.dims}]`);
        return { type: e.type, dims: e.dims, data };
      },
      close: () => fh.close(),
    };
  } catch (err) {
    await fh.close().catch(() => {});
    throw err;
  }
}
