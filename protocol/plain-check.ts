/**
 * Checks that bytes are exactly one value of plain MessagePack as the protocol allows it, without building
 * anything: no extension types (msgpackr would turn some into BigInts, Errors, Sets, RegExps or records, whose
 * cost and meaning the protocol does not control), string map keys only, integers a JavaScript number holds
 * exactly (|n| ≤ 2^53 − 1; int64/uint64 encodings of such numbers are fine), bounded nesting and a bounded
 * number of values, lengths that fit in the message. One pass over the bytes, O(length), before any decoding.
 */
import { VidpriorError } from '../src/errors.js';

export interface PlainLimits {
  /** Deepest nesting of arrays and maps. */
  maxDepth: number;
  /** Most values (scalars, arrays, maps, keys) in one message: each becomes a JavaScript value when decoded. */
  maxValues: number;
}

export const PLAIN_LIMITS: PlainLimits = { maxDepth: 32, maxValues: 1_000_000 };

const TWO_32 = 2 ** 32;

function refuse(what: string, at: number): never {
  throw new VidpriorError('E_PROTOCOL', `message is not plain MessagePack: ${what} at byte ${at}`, { offset: at });
}

/** Throws E_PROTOCOL naming the first thing in `b` the protocol does not allow. */
export function checkPlainMessagePack(b: Uint8Array, limits: PlainLimits = PLAIN_LIMITS): void {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  // Items still expected by each open container; for maps each pair counts two, keys at even positions.
  const remaining: number[] = [1];
  const isMap: boolean[] = [false];
  const total: number[] = [1];
  // How deep the items of each open container are (the top-level value is at depth 0).
  const depth: number[] = [0];
  let values = 0;
  let p = 0;
  const need = (n: number, at: number) => {
    if (n > b.length - p) refuse(`a length of ${n} bytes runs past the end of the message`, at);
  };
  const u16 = () => {
    need(2, p);
    const v = view.getUint16(p);
    p += 2;
    return v;
  };
  const u32 = () => {
    need(4, p);
    const v = view.getUint32(p);
    p += 4;
    return v;
  };
  const skip = (n: number, at: number) => {
    need(n, at);
    p += n;
  };
  const open = (n: number, map: boolean, at: number, level: number) => {
    // Every item takes at least one byte: a count the rest of the message cannot hold is a lie.
    if ((map ? 2 * n : n) > b.length - p) refuse(`a ${map ? 'map' : 'array'} of ${n} items runs past the end`, at);
    if (level >= limits.maxDepth) refuse(`nesting deeper than ${limits.maxDepth} levels`, at);
    if (n > 0) {
      remaining.push(map ? 2 * n : n);
      isMap.push(map);
      total.push(map ? 2 * n : n);
      depth.push(level + 1);
    }
  };

  while (remaining.length > 0) {
    if (p >= b.length) refuse('the message ends inside a value', p);
    const at = p;
    const top = remaining.length - 1;
    const isKey = isMap[top]! && (total[top]! - remaining[top]!) % 2 === 0;
    const level = depth[top]!;
    remaining[top]!--;
    if (remaining[top] === 0) {
      remaining.pop();
      isMap.pop();
      total.pop();
      depth.pop();
    }
    if (++values > limits.maxValues) refuse(`more than ${limits.maxValues} values`, at);
    const t = b[p++]!;
    const isString = (t >= 0xa0 && t <= 0xbf) || t === 0xd9 || t === 0xda || t === 0xdb;
    if (isKey && !isString) refuse('a map key that is not a string', at);
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) continue;
    if (t <= 0x8f) open(t & 0x0f, true, at, level);
    else if (t <= 0x9f) open(t & 0x0f, false, at, level);
    else if (t <= 0xbf) skip(t & 0x1f, at);
    else
      switch (t) {
        case 0xc4:
        case 0xd9:
          need(1, p);
          skip(b[p++]!, at);
          break;
        case 0xc5:
        case 0xda:
          skip(u16(), at);
          break;
        case 0xc6:
        case 0xdb:
          skip(u32(), at);
          break;
        case 0xca:
          skip(4, at);
          break;
        case 0xcb:
          skip(8, at);
          break;
        case 0xcc:
        case 0xd0:
          skip(1, at);
          break;
        case 0xcd:
        case 0xd1:
          skip(2, at);
          break;
        case 0xce:
        case 0xd2:
          skip(4, at);
          break;
        case 0xcf: {
          need(8, p);
          const v = view.getUint32(p) * TWO_32 + view.getUint32(p + 4);
          if (!Number.isSafeInteger(v)) refuse('an integer beyond 2^53 − 1', at);
          p += 8;
          break;
        }
        case 0xd3: {
          need(8, p);
          const v = view.getInt32(p) * TWO_32 + view.getUint32(p + 4);
          if (!Number.isSafeInteger(v)) refuse('an integer beyond ±(2^53 − 1)', at);
          p += 8;
          break;
        }
        case 0xdc:
          open(u16(), false, at, level);
          break;
        case 0xdd:
          open(u32(), false, at, level);
          break;
        case 0xde:
          open(u16(), true, at, level);
          break;
        case 0xdf:
          open(u32(), true, at, level);
          break;
        case 0xc1:
          refuse('the byte 0xc1 (never used in MessagePack)', at);
          break;
        default:
          // 0xc7–0xc9 ext 8/16/32, 0xd4–0xd8 fixext: the type byte follows the length.
          refuse(`an extension type (0x${t.toString(16)}): the protocol has none`, at);
      }
  }
  if (p !== b.length) refuse(`${b.length - p} bytes after the value`, p);
}
