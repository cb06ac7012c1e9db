/**
 * Writes a built graph to `model.onnx`, generating the weights of a shapes-only build one tensor at a time.
 *
 * With external data, each parameter is drawn, appended to `model.onnx.data` and dropped before the next one,
 * so an SD 1.5-sized UNet (3.4 GB in float32) is written without holding its weights in memory. Placement
 * follows onnx's tools and src/onnx/external-data.ts: tensors under 1 KiB stay inline, tensors of 1 MiB and
 * more start on a 4 KiB boundary, the rest on 64 bytes.
 */
import { VidpriorError } from '../../errors.js';
import { open, rm, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { encodeModel } from '../../onnx/codec.js';
import { type TensorValue, type TypedData, bytesOf } from '../../onnx/ir.js';
import type { FloatType } from './net.js';
import type { BuiltGraph } from './text-encoder.js';
import { type ParamSpec, paramData } from './weights.js';

const INLINE_BELOW = 1024;
const PAGE_ALIGN_FROM = 1 << 20;

export interface WriteGraphOptions {
  seed: number;
  dtype: FloatType;
  /** Store parameters of 1 KiB and more in `<file>.data` beside the model. */
  externalData: boolean;
  /**
   * The values of each parameter in the model's float type (default: the seeded random ones). Real weights
   * bound from a checkpoint come through here, one tensor at a time.
   */
  values?: (spec: ParamSpec) => Promise<TypedData> | TypedData;
}

/** Writes `built` to `path` (the caller makes the write atomic); returns the bytes written. */
export async function writeBuiltGraph(built: BuiltGraph, path: string, o: WriteGraphOptions): Promise<number> {
  const g = built.model.graph;
  const valuesOf = async (t: TensorValue): Promise<TypedData> => {
    const spec = built.params.get(t.name);
    if (!spec) throw new VidpriorError('E_INTERNAL', `initializer ${t.name} has no data and is not a parameter`);
    return o.values ? await o.values(spec) : paramData(spec, o.seed, o.dtype);
  };
  let dataBytes = 0;
  if (o.externalData) {
    const dataName = `${basename(path)}.data`;
    const fh = await open(`${path}.data`, 'w');
    try {
      let offset = 0;
      for (let i = 0; i < g.initializers.length; i++) {
        const t = g.initializers[i]!;
        const data = t.data ?? (await valuesOf(t));
        if (data.byteLength < INLINE_BELOW) {
          if (!t.data) g.initializers[i] = { ...t, data };
          continue;
        }
        const align = data.byteLength >= PAGE_ALIGN_FROM ? 4096 : 64;
        offset = Math.ceil(offset / align) * align;
        const bytes = bytesOf(data);
        for (let done = 0; done < bytes.byteLength; ) {
          const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done, offset + done);
          done += bytesWritten;
        }
        g.initializers[i] = {
          name: t.name,
          type: t.type,
          dims: t.dims,
          external: { location: dataName, offset, length: bytes.byteLength },
        };
        offset += bytes.byteLength;
      }
      dataBytes = offset;
    } finally {
      await fh.close();
    }
    if (dataBytes === 0) await rm(`${path}.data`, { force: true });
  } else {
    for (let i = 0; i < g.initializers.length; i++) {
      const t = g.initializers[i]!;
      if (!t.data) g.initializers[i] = { ...t, data: await valuesOf(t) };
    }
  }
  const encoded = encodeModel(built.model);
  await writeFile(path, encoded);
  return encoded.byteLength + dataBytes;
}
