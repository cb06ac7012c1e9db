/**
 * Reads the top-level facts of an .onnx file (IR version, opset imports, producer) without loading the graph
 * or its weights. An SD 1.x UNet is 1.7–3.4 GB: decoding it in full only to learn its opset would double the
 * loader's memory, so this walks ModelProto's top-level fields with a file handle and skips the big `graph`
 * field by its length prefix. (src/onnx/codec.ts decodes whole models; this is the cheap peek beside it.)
 */
import { open } from 'node:fs/promises';
import { VidpriorError } from '../errors.js';

export interface OnnxHeader {
  irVersion: number;
  /** Opset imports by domain ('' = the default ONNX domain). */
  opsets: Record<string, number>;
  producerName: string;
  producerVersion: string;
}

// ModelProto field numbers (onnx.proto).
const F_IR_VERSION = 1;
const F_PRODUCER_NAME = 2;
const F_PRODUCER_VERSION = 3;
const F_OPSET_IMPORT = 8;

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

/** A varint reader over a byte array; returns [value, next offset]. Values up to 2^53 are exact. */
function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new VidpriorError('E_ONNX', 'truncated varint');
    const b = buf[pos++]!;
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) return [value, pos];
    scale *= 128;
  }
  throw new VidpriorError('E_ONNX', 'varint longer than 10 bytes');
}

function parseOpset(buf: Uint8Array): [string, number] {
  let pos = 0;
  let domain = '';
  let version = 0;
  while (pos < buf.length) {
    let key: number;
    [key, pos] = readVarint(buf, pos);
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === WIRE_LEN) {
      let len: number;
      [len, pos] = readVarint(buf, pos);
      if (field === 1) domain = new TextDecoder().decode(buf.subarray(pos, pos + len));
      pos += len;
    } else if (wire === WIRE_VARINT) {
      let v: number;
      [v, pos] = readVarint(buf, pos);
      if (field === 2) version = v;
    } else if (wire === WIRE_I64) pos += 8;
    else if (wire === WIRE_I32) pos += 4;
    else throw new VidpriorError('E_ONNX', `unexpected wire type ${wire}`);
  }
  return [domain === 'ai.onnx' ? '' : domain, version];
}

/** Reads the header of the .onnx file at `path`. Throws E_ONNX when the file is not a ModelProto. */
export async function readOnnxHeader(path: string): Promise<OnnxHeader> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const header: OnnxHeader = { irVersion: 0, opsets: {}, producerName: '', producerVersion: '' };
    const small = Buffer.alloc(16);
    let pos = 0;
    // Reads up to 16 bytes at `at` (enough for a key and a length varint).
    const peek = async (at: number): Promise<Uint8Array> => {
      const { bytesRead } = await fh.read(small, 0, 16, at);
      return small.subarray(0, bytesRead);
    };
    while (pos < size) {
      const head = await peek(pos);
      const [key, afterKey] = readVarint(head, 0);
      const field = Math.floor(key / 8);
      const wire = key & 7;
      if (field === 0) throw new VidpriorError('E_ONNX', 'field number 0');
      if (wire === WIRE_VARINT) {
        const [value, end] = readVarint(head, afterKey);
        if (field === F_IR_VERSION) header.irVersion = value;
        pos += end;
      } else if (wire === WIRE_LEN) {
        const [len, end] = readVarint(head, afterKey);
        const start = pos + end;
        if (start + len > size) throw new VidpriorError('E_ONNX', `field ${field} runs past the end of the file`);
        if (field === F_OPSET_IMPORT || field === F_PRODUCER_NAME || field === F_PRODUCER_VERSION) {
          const body = Buffer.alloc(len);
          await fh.read(body, 0, len, start);
          if (field === F_OPSET_IMPORT) {
            const [domain, version] = parseOpset(body);
            header.opsets[domain] = version;
          } else if (field === F_PRODUCER_NAME) header.producerName = body.toString('utf8');
          else header.producerVersion = body.toString('utf8');
        }
        pos = start + len;
      } else if (wire === WIRE_I64) pos += afterKey + 8;
      else if (wire === WIRE_I32) pos += afterKey + 4;
      else throw new VidpriorError('E_ONNX', `unexpected wire type ${wire} for field ${field}`);
    }
    return header;
  } catch (err) {
    // The parse errors above do not know the file: name it here.
    if (err instanceof VidpriorError && err.code !== 'E_ONNX') throw err;
    throw new VidpriorError(
      'E_ONNX',
      `${path} is not a readable ONNX model: ${(err as Error).message}`,
      { path },
      { cause: err },
    );
  } finally {
    await fh.close();
  }
}
