/**
 * Named tensors read one at a time, from whatever file holds them: a safetensors file (read here: its JSON
 * header, then positioned reads of one tensor's bytes), a torch `.ckpt` (pickle.ts), or several files seen as
 * one (a diffusers folder's components). Converting a 2 GB checkpoint this way holds one tensor at a time,
 * never the whole file.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { VidpriorError } from '../../errors.js';
import { type ElemType, type TypedData, ELEM_SIZE, elementCount, typedFromBytes } from '../../onnx/ir.js';
import { MAX_SAFETENSORS_HEADER, SAFETENSORS_DTYPES } from '../../training/safetensors.js';

export interface TensorInfo {
  type: ElemType;
  dims: number[];
}

export interface TensorSource {
  /** What the tensors come from (a path), for messages. */
  readonly label: string;
  names(): string[];
  info(name: string): TensorInfo | undefined;
  /** The tensor's elements in its stored type (float16/bfloat16 as raw bits). */
  read(name: string): Promise<TypedData>;
  /** Free-form metadata (safetensors `__metadata__`). */
  metadata(): Record<string, string>;
  close(): Promise<void>;
}

/** Node reads at most 2 GB per call. */
const IO_CHUNK = 1 << 30;

interface Entry extends TensorInfo {
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

/** Reads `into.byteLength` bytes at `position`, in chunks; E_MODEL_INPUT when the file ends early. */
export async function readFully(fh: FileHandle, into: Uint8Array, position: number, label: string): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const len = Math.min(IO_CHUNK, into.byteLength - done);
    const { bytesRead } = await fh.read(into, done, len, position + done);
    if (bytesRead === 0)
      throw new VidpriorError('E_MODEL_INPUT', `${label} ends at byte ${position + done}, inside a tensor`, {
        file: label,
      });
    done += bytesRead;
  }
}

async function openFile(path: string, what: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'E_MODEL_MISSING' : 'E_IO';
    throw new VidpriorError(
      code,
      `cannot open ${what} ${path}: ${(err as Error).message}`,
      { file: path },
      {
        cause: err,
      },
    );
  }
}

/** Opens a safetensors file and reads its header (tensors are read on demand). */
export async function openSafetensors(path: string): Promise<TensorSource> {
  const fh = await openFile(path, 'safetensors file');
  try {
    const size = (await fh.stat()).size;
    const bad = (why: string) =>
      new VidpriorError('E_MODEL_INPUT', `${path} is not a valid safetensors file: ${why}`, { file: path });
    if (size < 8) throw bad('shorter than its 8-byte header length');
    const head = new Uint8Array(8);
    await readFully(fh, head, 0, path);
    const headerLength = Number(new DataView(head.buffer).getBigUint64(0, true));
    if (headerLength > MAX_SAFETENSORS_HEADER || 8 + headerLength > size) throw bad(`header length ${headerLength} does not fit`);
    const json = new Uint8Array(headerLength);
    await readFully(fh, json, 8, path);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(json).toString('utf8')) as Record<string, unknown>;
    } catch {
      throw bad('the header is not JSON');
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header))
      throw bad('the header is not an object');
    const dataStart = 8 + headerLength;
    const entries = new Map<string, Entry>();
    let meta: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') {
        if (raw && typeof raw === 'object') meta = raw as Record<string, string>;
        continue;
      }
      const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const type = typeof e.dtype === 'string' ? SAFETENSORS_DTYPES[e.dtype] : undefined;
      if (!type) throw bad(`tensor "${name}" has unsupported dtype ${JSON.stringify(e.dtype)}`);
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0))
        throw bad(`tensor "${name}" has no valid shape`);
      const offsets = e.data_offsets;
      if (!Array.isArray(offsets) || offsets.length !== 2) throw bad(`tensor "${name}" has no data_offsets`);
      const [b, en] = offsets as [number, number];
      const dims = e.shape as number[];
      if (!(Number.isInteger(b) && Number.isInteger(en) && b >= 0 && en >= b && dataStart + en <= size))
        throw bad(`tensor "${name}" has data_offsets [${b}, ${en}] outside the file`);
      if (en - b !== elementCount(dims) * ELEM_SIZE[type])
        throw bad(`tensor "${name}" has ${en - b} bytes for ${type} [${dims}]`);
      entries.set(name, { type, dims, begin: dataStart + b, end: dataStart + en });
    }
    return {
      label: path,
      names: () => [...entries.keys()],
      info: (name) => {
        const e = entries.get(name);
        return e && { type: e.type, dims: e.dims };
      },
      metadata: () => meta,
      async read(name) {
        const e = entries.get(name);
        if (!e)
          throw new VidpriorError('E_MODEL_INPUT', `${path} has no tensor "${name}"`, { file: path, tensor: name });
        const bytes = new Uint8Array(e.end - e.begin); // fresh: aligned for every element type
        await readFully(fh, bytes, e.begin, path);
        return typedFromBytes(e.type, bytes);
      },
      close: () => fh.close(),
    };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** Several sources seen as one; a name found in two of them is an error (sharded files never overlap). */
export function combineSources(label: string, sources: TensorSource[]): TensorSource {
  const owner = new Map<string, TensorSource>();
  for (const s of sources) {
    for (const n of s.names()) {
      if (owner.has(n))
        throw new VidpriorError('E_MODEL_INPUT', `tensor "${n}" is in both ${owner.get(n)!.label} and ${s.label}`, {
          tensor: n,
        });
      owner.set(n, s);
    }
  }
  return {
    label,
    names: () => [...owner.keys()],
    info: (name) => owner.get(name)?.info(name),
    metadata: () => Object.assign({}, ...sources.map((s) => s.metadata())),
    read: (name) => {
      const s = owner.get(name);
      if (!s) throw new VidpriorError('E_MODEL_INPUT', `${label} has no tensor "${name}"`, { tensor: name });
      return s.read(name);
    },
    async close() {
      for (const s of sources) await s.close();
    },
  };
}
