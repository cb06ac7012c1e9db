/**
 * NumPy .npy files (format versions 1.0, 2.0 and 3.0): little-endian float16/float32/float64 arrays in C order,
 * e.g. the `--noise-file` latents. Anything else (Fortran order, big-endian, other dtypes, a truncated file) is
 * E_BAD_INPUT naming the file and what was found.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { VidpriorError } from '../errors.js';
import { fromFloat16, sizeOf, tensor, type Tensor } from '../tensor.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export type NpyDtype = 'float16' | 'float32' | 'float64';

export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  data: Uint16Array | Float32Array | Float64Array;
}

const DESCR: Record<string, NpyDtype> = { '<f2': 'float16', '<f4': 'float32', '<f8': 'float64' };
const BYTES: Record<NpyDtype, number> = { float16: 2, float32: 4, float64: 8 };

function bad(name: string, why: string, details: Record<string, unknown> = {}): VidpriorError {
  return new VidpriorError('E_BAD_INPUT', `${name}: ${why}`, { path: name, ...details });
}

/** Parses the bytes of a .npy file; `name` is used in error messages. */
export function parseNpy(bytes: Uint8Array, name = 'array.npy'): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b))
    throw bad(name, 'not a NumPy .npy file (bad magic bytes)');
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let offset: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    offset = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw bad(name, 'truncated .npy header');
    headerLen = view.getUint32(8, true);
    offset = 12;
  } else throw bad(name, `unsupported .npy format version ${major}.${bytes[7]}`);
  if (offset + headerLen > bytes.length) throw bad(name, 'truncated .npy header');
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(offset, offset + headerLen));
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(header)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    throw bad(name, `malformed .npy header ${JSON.stringify(header.trim())}`);
  const dtype = DESCR[descr];
  if (!dtype) {
    throw bad(
      name,
      `dtype ${descr} is not supported: expected little-endian float32 ('<f4'), float16 ('<f2') or float64 ('<f8')`,
      { dtype: descr },
    );
  }
  if (fortran === 'True')
    throw bad(name, 'the array is in Fortran order: save it C-contiguous (np.ascontiguousarray)', {
      fortran_order: true,
    });
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw bad(name, `bad shape (${shapeText})`);
  const count = sizeOf(shape);
  const start = offset + headerLen;
  const need = count * BYTES[dtype];
  if (bytes.length - start < need) {
    throw bad(
      name,
      `truncated: shape (${shape.join(', ')}) of ${dtype} needs ${need} data bytes, the file has ${bytes.length - start}`,
      { shape },
    );
  }
  // Copy into a fresh, aligned buffer (the data offset need not be a multiple of the element size).
  // (Buffer#slice would share memory: copy explicitly.)
  const copy = new Uint8Array(need);
  copy.set(bytes.subarray(start, start + need));
  const raw = copy.buffer;
  const data =
    dtype === 'float16' ? new Uint16Array(raw) : dtype === 'float32' ? new Float32Array(raw) : new Float64Array(raw);
  return { dtype, shape, data };
}

export async function readNpy(path: string): Promise<NpyArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new VidpriorError(
      'E_BAD_INPUT',
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { path },
      { cause: err },
    );
  }
  return parseNpy(bytes, path);
}

/** Reads a .npy as a float32 tensor (float16 widened, float64 rounded), optionally checking its shape. */
export async function readNpyFloat32(path: string, expectedShape?: readonly number[]): Promise<Tensor<'float32'>> {
  const a = await readNpy(path);
  if (expectedShape && (a.shape.length !== expectedShape.length || a.shape.some((d, i) => d !== expectedShape[i]))) {
    throw new VidpriorError(
      'E_BAD_INPUT',
      `${path} has shape [${a.shape.join(', ')}] but [${expectedShape.join(', ')}] is needed`,
      { path, shape: a.shape, expected: expectedShape },
    );
  }
  const data =
    a.dtype === 'float32'
      ? (a.data as Float32Array)
      : a.dtype === 'float16'
        ? fromFloat16(a.data as Uint16Array)
        : Float32Array.from(a.data as Float64Array);
  return tensor('float32', a.shape, data);
}

/** The bytes of a .npy file (version 1.0, or 2.0 for huge headers), header padded to 64 bytes like NumPy. */
export function encodeNpy(array: NpyArray): Uint8Array {
  const descr = Object.entries(DESCR).find(([, d]) => d === array.dtype)![0];
  if (array.data.length !== sizeOf(array.shape)) {
    throw new VidpriorError(
      'E_SHAPE',
      `npy data has ${array.data.length} values but shape (${array.shape.join(', ')}) needs ${sizeOf(array.shape)}`,
    );
  }
  const shape = array.shape.length === 1 ? `(${array.shape[0]},)` : `(${array.shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const v1 = dict.length + 1 + 10 < 65536;
  const prefix = v1 ? 10 : 12;
  const total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  dict = `${dict.padEnd(total - prefix - 1, ' ')}\n`;
  const dataBytes = new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength);
  const out = new Uint8Array(total + dataBytes.length);
  out.set(MAGIC, 0);
  out[6] = v1 ? 1 : 2;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (v1) view.setUint16(8, dict.length, true);
  else view.setUint32(8, dict.length, true);
  out.set(new TextEncoder().encode(dict), prefix);
  out.set(dataBytes, total);
  return out;
}

/** Writes a float tensor (float32, or float16 as raw half bits) or an NpyArray to a .npy file. */
export async function writeNpy(path: string, value: Tensor<'float32'> | Tensor<'float16'> | NpyArray): Promise<void> {
  const array: NpyArray = 'type' in value ? { dtype: value.type, shape: [...value.dims], data: value.data } : value;
  try {
    await writeFile(path, encodeNpy(array));
  } catch (err) {
    throw new VidpriorError(
      'E_IO',
      `cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { path },
      { cause: err },
    );
  }
}
