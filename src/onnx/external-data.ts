/**
 * Models on disk: `.onnx` files whose tensors may live in sibling files (ONNX "external data": a TensorProto
 * with data_location = EXTERNAL and location/offset/length entries). Models over 2 GB must be stored this way
 * (protobuf's limit), so saving streams each large initializer to one data file — never one giant buffer —
 * and the `.onnx` itself stays small.
 *
 * Loading reads each external tensor into its own exactly-sized buffer with positioned reads (no mmap in
 * Node), or leaves it unloaded (`loadExternal: false`) with `external.baseDir` set, so that a later
 * `readExternalTensor` or `saveModel` can still find the bytes.
 */
import { open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { VidpriorError } from '../errors.js';
import { decodeModel, encodeModel, PROTOBUF_LIMIT } from './codec.js';
import {
  type Graph,
  type Model,
  type TensorValue,
  type TypedData,
  ELEM_SIZE,
  bytesOf,
  elementCount,
  typedFromBytes,
} from './ir.js';

export interface LoadOptions {
  /** Read external tensors now (default true); otherwise they stay references with `external.baseDir`. */
  loadExternal?: boolean;
  /**
   * Copy inline tensors out of the file's buffer (default true). Protobuf framing leaves most raw_data
   * unaligned, so most tensors are copied anyway, and a few zero-copy views would keep the whole file
   * buffer alive next to the copies; copying all lets it go (steady memory ≈ 1× the weights, not ≈ 2×).
   */
  copyData?: boolean;
}

export interface ExternalDataOptions {
  /** Initializers of at least this many bytes go to the data file (default 1024). */
  threshold?: number;
  /** Data file name, in the model's folder (default `<model file name>.data`). */
  fileName?: string;
}

export interface SaveOptions {
  /**
   * true / options: store initializers ≥ threshold in a sibling data file. false: everything inline (fails
   * over 2 GB). Default 'auto': inline when it fits in protobuf's limit, external otherwise.
   */
  externalData?: boolean | 'auto' | ExternalDataOptions;
}

/** Tensors of at least this size start on a page boundary in the data file (as onnx's own tools do). */
const PAGE_ALIGN_FROM = 1 << 20;
const PAGE = 4096;
const SMALL_ALIGN = 64;
/** Largest single fs read/write (Node caps one call at 2 GB). */
const IO_CHUNK = 1 << 30;

/** Every tensor of a graph: initializers and tensor attributes, subgraphs included. */
export function forEachTensor(graph: Graph, fn: (t: TensorValue) => void): void {
  graph.initializers.forEach(fn);
  for (const node of graph.nodes) {
    for (const a of Object.values(node.attributes)) {
      if (a.type === 'tensor') fn(a.value);
      else if (a.type === 'tensors') a.value.forEach(fn);
      else if (a.type === 'graph') forEachTensor(a.value, fn);
      else if (a.type === 'graphs') for (const g of a.value) forEachTensor(g, fn);
    }
  }
}

/** Reads a `.onnx` file and (by default) the external data it refers to, relative to the file's folder. */
export async function loadModel(path: string, opts: LoadOptions = {}): Promise<Model> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new VidpriorError(
      'E_MODEL_MISSING',
      `cannot read ONNX model ${path}: ${(err as Error).message}`,
      { path },
      { cause: err },
    );
  }
  let model: Model;
  try {
    model = decodeModel(bytes, { copyData: opts.copyData ?? true });
  } catch (err) {
    if (err instanceof VidpriorError)
      throw new VidpriorError(err.code, `${path}: ${err.message}`, { path, ...err.details }, { cause: err });
    throw err;
  }
  const baseDir = resolve(dirname(path));
  const external: TensorValue[] = [];
  forEachTensor(model.graph, (t) => {
    if (t.external && !t.data) {
      t.external.baseDir = baseDir;
      external.push(t);
    }
  });
  if (opts.loadExternal ?? true) await loadExternalData(external);
  return model;
}

/** Loads the given external tensors (each needs `external.baseDir`), opening each data file once. */
export async function loadExternalData(tensors: TensorValue[]): Promise<void> {
  const byFile = new Map<string, TensorValue[]>();
  for (const t of tensors) {
    const file = externalPath(t);
    byFile.set(file, [...(byFile.get(file) ?? []), t]);
  }
  for (const [file, list] of byFile) {
    const fh = await openExternal(file, list[0]!);
    try {
      const size = (await fh.stat()).size;
      for (const t of list) {
        t.data = await readTensorFrom(fh, file, size, t);
        delete t.external;
      }
    } finally {
      await fh.close();
    }
  }
}

/** Reads one external tensor's data without attaching it (for callers that stream weights). */
export async function readExternalTensor(t: TensorValue): Promise<TypedData> {
  const file = externalPath(t);
  const fh = await openExternal(file, t);
  try {
    return await readTensorFrom(fh, file, (await fh.stat()).size, t);
  } finally {
    await fh.close();
  }
}

/** The data file of an external tensor; refuses locations that leave the model's folder (as ONNX does). */
function externalPath(t: TensorValue): string {
  const ext = t.external;
  if (!ext) throw new VidpriorError('E_ONNX', `tensor "${t.name}" is not external`, { tensor: t.name });
  if (!ext.baseDir)
    throw new VidpriorError(
      'E_ONNX',
      `external tensor "${t.name}" has no base folder: load its model with loadModel()`,
      { tensor: t.name },
    );
  const rel = normalize(ext.location);
  if (isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`)) {
    throw new VidpriorError(
      'E_ONNX',
      `external data location "${ext.location}" of tensor "${t.name}" lies outside the model's folder`,
      { tensor: t.name, location: ext.location },
    );
  }
  return join(ext.baseDir, rel);
}

async function openExternal(file: string, t: TensorValue): Promise<FileHandle> {
  try {
    return await open(file, 'r');
  } catch (err) {
    throw new VidpriorError(
      'E_MODEL_MISSING',
      `external data file ${file} (tensor "${t.name}") cannot be opened: ${(err as Error).message}`,
      { path: file, tensor: t.name },
      { cause: err },
    );
  }
}

async function readTensorFrom(fh: FileHandle, file: string, fileSize: number, t: TensorValue): Promise<TypedData> {
  const { offset, length } = t.external!;
  const expected = elementCount(t.dims) * ELEM_SIZE[t.type];
  if (length !== expected) {
    throw new VidpriorError(
      'E_ONNX',
      `external tensor "${t.name}" has length ${length} but ${t.type} [${t.dims}] needs ${expected} bytes`,
      { tensor: t.name },
    );
  }
  if (offset < 0 || offset + length > fileSize) {
    throw new VidpriorError(
      'E_ONNX',
      `external tensor "${t.name}" needs bytes ${offset}..${offset + length} of ${file}, which has ${fileSize}`,
      { tensor: t.name, path: file },
    );
  }
  const bytes = new Uint8Array(length); // a fresh buffer: aligned for every element type
  await readFully(fh, bytes, offset);
  return typedFromBytes(t.type, bytes);
}

async function readFully(fh: FileHandle, into: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const len = Math.min(IO_CHUNK, into.byteLength - done);
    const { bytesRead } = await fh.read(into, done, len, position + done);
    if (bytesRead === 0) throw new VidpriorError('E_ONNX', `unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
}

async function writeFully(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const len = Math.min(IO_CHUNK, bytes.byteLength - done);
    const { bytesWritten } = await fh.write(bytes, done, len, position + done);
    done += bytesWritten;
  }
}

function tensorBytes(t: TensorValue): number {
  return t.data ? t.data.byteLength : t.external ? t.external.length : 0;
}

/**
 * Writes `model` to `path`. With external data, initializers at or above the threshold are streamed one by
 * one into the data file beside it (unloaded external tensors are copied chunk by chunk from their source),
 * and the `.onnx` holds references. Files are written under temporary names and renamed when complete, so a
 * failure never leaves a half-written model, and saving over the model's own files is safe.
 * The caller's model is not modified.
 */
export async function saveModel(model: Model, path: string, opts: SaveOptions = {}): Promise<void> {
  // 1. Decide what goes external.
  let total = 0;
  forEachTensor(model.graph, (t) => {
    total += tensorBytes(t);
  });
  const mode = opts.externalData ?? 'auto';
  const useExternal = mode === 'auto' ? total > PROTOBUF_LIMIT - (64 << 20) : mode !== false;
  const ext: ExternalDataOptions = typeof mode === 'object' ? mode : {};
  const threshold = ext.threshold ?? 1024;
  const fileName = ext.fileName ?? `${basename(path)}.data`;
  if (fileName.includes('/') || fileName.includes('\\')) {
    throw new VidpriorError('E_BAD_REQUEST', `external data file name must be a plain file name, got "${fileName}"`, {
      fileName,
    });
  }
  const dir = dirname(path);
  const tmpSuffix = `.tmp-${process.pid}-${Date.now()}`;
  const modelTmp = `${path}${tmpSuffix}`;
  const dataPath = join(dir, fileName);
  const dataTmp = `${dataPath}${tmpSuffix}`;

  try {
    // 2. Stream the large initializers to the data file; remember where each went.
    const placed = new Map<TensorValue, TensorValue>();
    if (useExternal) {
      const fh = await open(dataTmp, 'w');
      try {
        let offset = 0;
        for (const t of model.graph.initializers) {
          const length = tensorBytes(t);
          if (t.type === 'string' || length < threshold) continue;
          const align = length >= PAGE_ALIGN_FROM ? PAGE : SMALL_ALIGN;
          offset = Math.ceil(offset / align) * align;
          if (t.data) await writeFully(fh, bytesOf(t.data), offset);
          else await copyExternal(t, fh, offset);
          placed.set(t, {
            name: t.name,
            type: t.type,
            dims: t.dims,
            docString: t.docString,
            external: { location: fileName, offset, length },
          });
          offset += length;
        }
      } finally {
        await fh.close();
      }
    }
    // 3. Encode the (now small) model with references in place of the streamed tensors.
    //    Unloaded external initializers that stay inline are read now (into copies: the caller's model is
    //    left as it was).
    const initializers: TensorValue[] = [];
    for (const t of model.graph.initializers) {
      const p = placed.get(t);
      if (p) initializers.push(p);
      else if (!t.data && t.type !== 'string' && t.external?.baseDir) {
        initializers.push({
          name: t.name,
          type: t.type,
          dims: t.dims,
          docString: t.docString,
          data: await readExternalTensor(t),
        });
      } else initializers.push(t);
    }
    const graph: Graph = { ...model.graph, initializers };
    const unresolved: string[] = [];
    forEachTensor(graph, (t) => {
      if (!t.data && t.type !== 'string' && t.external?.baseDir) unresolved.push(t.name);
    });
    if (unresolved.length) {
      throw new VidpriorError(
        'E_ONNX',
        `tensor "${unresolved[0]}" is still external to another model: load it or save with external data`,
        { tensors: unresolved },
      );
    }
    await writeFile(modelTmp, encodeModel({ ...model, graph }));
    // 4. Put both files in place.
    if (placed.size) await rename(dataTmp, dataPath);
    else await rm(dataTmp, { force: true });
    await rename(modelTmp, path);
  } catch (err) {
    await rm(modelTmp, { force: true });
    await rm(dataTmp, { force: true });
    if (err instanceof VidpriorError) throw err;
    throw new VidpriorError(
      'E_ONNX',
      `cannot save ONNX model ${path}: ${(err as Error).message}`,
      { path },
      { cause: err },
    );
  }
}

/** Copies an unloaded external tensor's bytes into `out` at `offset`, in bounded chunks. */
async function copyExternal(t: TensorValue, out: FileHandle, offset: number): Promise<void> {
  const file = externalPath(t);
  const src = await openExternal(file, t);
  try {
    const { offset: from, length } = t.external!;
    const size = (await src.stat()).size;
    if (from + length > size) {
      throw new VidpriorError(
        'E_ONNX',
        `external tensor "${t.name}" needs bytes ${from}..${from + length} of ${file}, which has ${size}`,
        { tensor: t.name, path: file },
      );
    }
    const chunk = new Uint8Array(Math.min(length, 16 << 20));
    for (let done = 0; done < length; ) {
      const n = Math.min(chunk.byteLength, length - done);
      await readFully(src, chunk.subarray(0, n), from + done);
      await writeFully(out, chunk.subarray(0, n), offset + done);
      done += n;
    }
  } finally {
    await src.close();
  }
}

/** Size in bytes of a saved model: the `.onnx` plus the external data files it refers to. */
export async function savedModelBytes(path: string): Promise<number> {
  const model = await loadModel(path, { loadExternal: false });
  const files = new Set<string>();
  forEachTensor(model.graph, (t) => {
    if (t.external) files.add(externalPath(t));
  });
  let total = (await stat(path)).size;
  for (const f of files) total += (await stat(f)).size;
  return total;
}
