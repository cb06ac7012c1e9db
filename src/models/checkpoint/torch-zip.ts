/**
 * PyTorch checkpoints (`torch.save` since 1.6: .ckpt, .pt, .bin) as a tensor source. The file is a zip
 * archive (read with yauzl) of `<name>/data.pkl`, the pickled object, and `<name>/data/<key>`, one file per
 * storage, stored uncompressed. The pickle is read by the restricted reader in pickle.ts (tensor data only,
 * no code run); a Lightning checkpoint's `state_dict` is used when present. Tensors are read on demand with
 * positioned reads of their storage.
 */
import { type FileHandle, open } from 'node:fs/promises';
import yauzl from 'yauzl';
import { VidpriorError } from '../../errors.js';
import { ELEM_SIZE, type TypedData, elementCount, typedFromBytes } from '../../onnx/ir.js';
import { type PickleValue, type TensorRef, readPickle } from './pickle.js';
import { type TensorSource, readFully } from './tensor-source.js';

/** The largest data.pkl read (SD checkpoints' are well under 10 MB). */
const MAX_PICKLE = 256 * 2 ** 20;

interface StoredEntry {
  start: number;
  size: number;
}

function isTensor(v: PickleValue): v is TensorRef {
  return (
    typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && (v as { kind?: string }).kind === 'tensor'
  );
}

/** name → tensor, through nested dicts ('state_dict' of Lightning checkpoints is the model). */
function collectTensors(root: PickleValue): Map<string, TensorRef> {
  const out = new Map<string, TensorRef>();
  let dict = root instanceof Map ? root : null;
  const sd = dict?.get('state_dict');
  if (sd instanceof Map) dict = sd;
  if (!dict) return out;
  for (const [k, v] of dict) if (typeof k === 'string' && isTensor(v)) out.set(k, v);
  return out;
}

function contiguous(t: TensorRef): boolean {
  let expect = 1;
  for (let i = t.dims.length - 1; i >= 0; i--) {
    if (t.dims[i] !== 1 && t.strides[i] !== expect) return false;
    expect *= t.dims[i]!;
  }
  return true;
}

export async function openTorchCheckpoint(path: string): Promise<TensorSource> {
  const bad = (why: string) => new VidpriorError('E_MODEL_INPUT', `${path}: ${why}`, { file: path });
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.openPromise(path, { lazyEntries: true, autoClose: false });
  } catch (err) {
    throw bad(`not a readable PyTorch zip checkpoint (${(err as Error).message})`);
  }
  const fh: FileHandle = await open(path, 'r');
  try {
    // 1. Where each member's bytes start (members must be stored, as torch.save writes them).
    const stored = new Map<string, StoredEntry>();
    let pickleName: string | null = null;
    for await (const entry of zip.eachEntry()) {
      if (entry.compressionMethod !== 0) {
        if (entry.fileName.endsWith('data.pkl')) throw bad('its data.pkl is compressed');
        continue;
      }
      const { fileDataStart } = await zip.readLocalFileHeaderPromise(entry, { minimal: true });
      stored.set(entry.fileName, { start: fileDataStart, size: entry.uncompressedSize });
      if (/^[^/]+\/data\.pkl$/.test(entry.fileName)) pickleName = entry.fileName;
    }
    if (!pickleName) throw bad('a zip without <name>/data.pkl is not a PyTorch checkpoint');
    const prefix = pickleName.slice(0, -'data.pkl'.length);

    // 2. The pickle, as data only.
    const pkl = stored.get(pickleName)!;
    if (pkl.size > MAX_PICKLE) throw bad(`its data.pkl is ${pkl.size} bytes, more than a checkpoint of tensors needs`);
    const bytes = new Uint8Array(pkl.size);
    await readFully(fh, bytes, pkl.start, path);
    const tensors = collectTensors(readPickle(bytes, `${path} (data.pkl)`));
    if (tensors.size === 0) throw bad('the checkpoint holds no tensors (no state dict found)');

    return {
      label: path,
      names: () => [...tensors.keys()],
      info: (name) => {
        const t = tensors.get(name);
        return t && { type: t.storage.type, dims: t.dims };
      },
      metadata: () => ({}),
      async read(name): Promise<TypedData> {
        const t = tensors.get(name);
        if (!t) throw bad(`no tensor "${name}"`);
        if (!contiguous(t)) throw bad(`tensor "${name}" is not contiguous (strides [${t.strides}])`);
        const member = stored.get(`${prefix}data/${t.storage.key}`);
        if (!member) throw bad(`tensor "${name}" names storage ${t.storage.key}, which is not in the archive`);
        const size = ELEM_SIZE[t.storage.type];
        const length = elementCount(t.dims) * size;
        const begin = t.offset * size;
        if (begin < 0 || begin + length > member.size)
          throw bad(`tensor "${name}" runs past its storage (${begin + length} > ${member.size} bytes)`);
        const out = new Uint8Array(length);
        await readFully(fh, out, member.start + begin, path);
        return typedFromBytes(t.storage.type, out);
      },
      async close() {
        zip.close();
        await fh.close();
      },
    };
  } catch (err) {
    zip.close();
    await fh.close();
    throw err;
  }
}
