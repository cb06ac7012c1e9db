/**
 * A restricted reader of the pickle in a PyTorch checkpoint (`data.pkl`): it accepts tensor data and nothing
 * else, and never runs code from the file. Pickle is a small stack machine whose GLOBAL and REDUCE opcodes
 * would import and call any Python function; here a global is only a name, and "calling" one builds data:
 *
 *   torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)  → a TensorRef (no bytes read yet)
 *   torch._utils._rebuild_parameter(tensor, …)                         → the tensor
 *   collections.OrderedDict()                                         → a dict
 *   any other global                                                  → an inert Opaque value
 *
 * Storages come from persistent ids ('storage', <torch.*Storage>, key, location, numel) and name a file of
 * the zip archive (torch-zip.ts reads it). Protocol-5 out-of-band buffers and extension codes are refused.
 */
import { VidpriorError } from '../../errors.js';
import type { ElemType } from '../../onnx/ir.js';

export interface StorageRef {
  kind: 'storage';
  key: string;
  type: ElemType;
}

export interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  /** In elements of the storage's type. */
  offset: number;
  dims: number[];
  strides: number[];
}

/** A global that was named but not trusted, or the result of "calling" one. */
export interface Opaque {
  kind: 'opaque';
  name: string;
}

export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | Map<PickleValue, PickleValue>
  | StorageRef
  | TensorRef
  | Opaque
  | { kind: 'global'; name: string };

const STORAGE_TYPES: Record<string, ElemType> = {
  'torch.FloatStorage': 'float32',
  'torch.HalfStorage': 'float16',
  'torch.BFloat16Storage': 'bfloat16',
  'torch.DoubleStorage': 'float64',
  'torch.LongStorage': 'int64',
  'torch.IntStorage': 'int32',
  'torch.ShortStorage': 'int16',
  'torch.CharStorage': 'int8',
  'torch.ByteStorage': 'uint8',
  'torch.BoolStorage': 'bool',
};

const MARK = Symbol('mark');
type Slot = PickleValue | typeof MARK;

function isObj(v: unknown, kind: string): boolean {
  return typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && (v as { kind?: string }).kind === kind;
}

/** Runs the pickle in `bytes` as data; `source` names the file in errors. */
export function readPickle(bytes: Uint8Array, source: string): PickleValue {
  const bad = (why: string) => new VidpriorError('E_MODEL_INPUT', `${source}: ${why}`, { file: source });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = new TextDecoder();
  const stack: Slot[] = [];
  const memo = new Map<number, PickleValue>();
  let pos = 0;
  const need = (n: number) => {
    if (pos + n > bytes.length) throw bad('the pickle ends early');
  };
  const u8 = (): number => {
    need(1);
    return bytes[pos++]!;
  };
  const u16 = (): number => {
    need(2);
    pos += 2;
    return view.getUint16(pos - 2, true);
  };
  const u32 = (): number => {
    need(4);
    pos += 4;
    return view.getUint32(pos - 4, true);
  };
  const u64 = () => {
    need(8);
    pos += 8;
    const v = view.getBigUint64(pos - 8, true);
    if (v > BigInt(bytes.length)) throw bad('a length runs past the pickle');
    return Number(v);
  };
  const take = (n: number): Uint8Array => {
    need(n);
    pos += n;
    return bytes.subarray(pos - n, pos);
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw bad('a text opcode has no newline');
    const s = text.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): PickleValue => {
    const v = stack.pop();
    if (v === undefined || v === MARK) throw bad('the pickle pops an empty stack');
    return v;
  };
  const popMark = (): PickleValue[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) throw bad('the pickle has no mark to pop to');
    const items = stack.splice(i + 1) as PickleValue[];
    stack.pop();
    return items;
  };
  const top = (): PickleValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) throw bad('the pickle reads an empty stack');
    return v;
  };
  const setItems = (target: PickleValue, items: PickleValue[]) => {
    if (!(target instanceof Map)) return; // items of an opaque object: ignored
    for (let i = 0; i + 1 < items.length; i += 2) target.set(items[i]!, items[i + 1]!);
  };
  const call = (fn: PickleValue, args: PickleValue): PickleValue => {
    const name = isObj(fn, 'global') ? (fn as { name: string }).name : '?';
    const a = Array.isArray(args) ? args : [];
    if (name === 'torch._utils._rebuild_tensor_v2' || name === 'torch._utils._rebuild_tensor') {
      const [storage, offset, size, stride] = a;
      if (!isObj(storage, 'storage')) throw bad('a tensor without a storage');
      const ints = (v: PickleValue) => (Array.isArray(v) ? v.map((x) => Number(x)) : []);
      return {
        kind: 'tensor',
        storage: storage as StorageRef,
        offset: Number(offset),
        dims: ints(size!),
        strides: ints(stride!),
      };
    }
    if (name === 'torch._utils._rebuild_parameter' || name === 'torch._utils._rebuild_parameter_with_state')
      return a[0] ?? null;
    if (name === 'collections.OrderedDict' || name === 'builtins.dict') return new Map();
    return { kind: 'opaque', name };
  };
  for (let steps = 0; ; steps++) {
    if (steps > 50_000_000) throw bad('the pickle runs too long');
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x8f: // EMPTY_SET
        stack.push([]);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88:
        stack.push(true);
        break;
      case 0x89:
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(u32() | 0);
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
      case 0x8b: {
        // LONG4
        const n = op === 0x8a ? u8() : u32();
        const b = take(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
        if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x49: // INT (text)
      case 0x4c: {
        // LONG (text)
        const s = line().replace(/L$/, '');
        stack.push(s === '01' ? true : s === '00' ? false : Number(s));
        break;
      }
      case 0x46: // FLOAT (text)
        stack.push(Number(line()));
        break;
      case 0x58: // BINUNICODE
        stack.push(text.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text.decode(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(text.decode(take(u64())));
        break;
      case 0x56: // UNICODE (text)
      case 0x53: // STRING (text, quoted)
        stack.push(line().replace(/^'(.*)'$/, '$1'));
        break;
      case 0x54: // BINSTRING
      case 0x42: // BINBYTES
        stack.push(op === 0x54 ? text.decode(take(u32())) : take(u32()).slice());
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(text.decode(take(u8())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(take(u64()).slice());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x70: // PUT (text)
        memo.set(Number(line()), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: {
        // GET (text)
        const k = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(k)) throw bad(`the pickle reads memo ${k}, which was never stored`);
        stack.push(memo.get(k)!);
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n": a name only, never imported.
        const mod = line();
        stack.push({ kind: 'global', name: `${mod}.${line()}` });
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = String(pop());
        stack.push({ kind: 'global', name: `${String(pop())}.${name}` });
        break;
      }
      case 0x74: // TUPLE
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x85:
        stack.push([pop()]);
        break;
      case 0x86: {
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x64: {
        // DICT
        const m = new Map<PickleValue, PickleValue>();
        setItems(m, popMark());
        stack.push(m);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const l = top();
        if (Array.isArray(l)) l.push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const l = top();
        if (Array.isArray(l)) l.push(...items);
        break;
      }
      case 0x90: // ADDITEMS (sets: kept as lists)
      case 0x91: {
        // FROZENSET
        const items = popMark();
        if (op === 0x91) stack.push(items);
        else {
          const s = top();
          if (Array.isArray(s)) s.push(...items);
        }
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: // SETITEMS
        setItems(stack[stack.lastIndexOf(MARK) - 1] as PickleValue, popMark());
        break;
      case 0x51: {
        // BINPERSID: ('storage', storage type, key, location, numel)
        const pid = pop();
        if (!Array.isArray(pid) || pid[0] !== 'storage') throw bad('a persistent id that is not a tensor storage');
        const typeName = isObj(pid[1], 'global') ? (pid[1] as { name: string }).name : '';
        const type = STORAGE_TYPES[typeName];
        if (!type) throw bad(`a storage of type ${typeName || '?'}, which vidprior does not read`);
        stack.push({ kind: 'storage', key: String(pid[2]), type });
        break;
      }
      case 0x52: {
        // REDUCE: callable(*args), as data
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        pop();
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x62: // BUILD: the state of an object (opaque ones ignore it)
        pop();
        break;
      case 0x30: // POP
        if (stack.pop() === undefined) throw bad('the pickle pops an empty stack');
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x6f: {
        // OBJ: class and args after a mark
        const [cls, ...args] = popMark();
        stack.push(call(cls ?? null, args));
        break;
      }
      case 0x69: {
        // INST "module\nname\n" with args after a mark
        const name = `${line()}.${line()}`;
        stack.push(call({ kind: 'global', name }, popMark()));
        break;
      }
      default:
        throw bad(`the pickle uses opcode 0x${op.toString(16)}, which a checkpoint of tensors does not need`);
    }
  }
}
