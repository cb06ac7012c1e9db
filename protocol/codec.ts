/**
 * The wire encoding: plain MessagePack (https://msgpack.org/), so a small client in any language — the
 * Blender add-on's standard-library Python included — can speak it. msgpackr is configured to stay inside the
 * base format: no records, no structured clone, no bundled strings, no extension types on the way out.
 * Binary data (frames, noise) travels as `bin`; strings as `str`; maps have string keys.
 *
 * `encode` refuses values plain MessagePack cannot carry (Date, Map, typed arrays other than Uint8Array,
 * bigint, undefined inside arrays…) instead of letting msgpackr emit an extension a peer cannot read.
 * `decode` refuses messages over the size limit, then checks the bytes are plain MessagePack (plain-check.ts:
 * no extension types, string keys, integers that fit a number, bounded nesting and value count) before msgpackr
 * builds anything: msgpackr's own extensions (BigInt, Error, Set, RegExp, records…) are never reached.
 */
import { Packr, Unpackr } from 'msgpackr';
import { VidpriorError } from '../src/errors.js';
import { PLAIN_LIMITS, checkPlainMessagePack } from './plain-check.js';

const packr = new Packr({
  useRecords: false,
  structuredClone: false,
  moreTypes: false,
  bundleStrings: false,
  mapsAsObjects: true,
  encodeUndefinedAsNil: true,
});
const unpackr = new Unpackr({
  useRecords: false,
  structuredClone: false,
  moreTypes: false,
  bundleStrings: false,
  mapsAsObjects: true,
  // int64/uint64 as plain numbers: plain-check.ts has already refused any that a number cannot hold exactly.
  int64AsType: 'number',
});

export interface DecodeLimits {
  /** Largest message accepted, in bytes. */
  maxMessageBytes: number;
  /** Most values in one message (default PLAIN_LIMITS.maxValues; a daemon taking more frames allows more). */
  maxValues?: number;
}

/** Default limits of the daemon (overridable by `serve --max-message-mb/--max-frame-mb`). */
export const DEFAULT_LIMITS = {
  maxMessageBytes: 256 * 1024 * 1024,
  maxFrameBytes: 32 * 1024 * 1024,
  maxFrames: 100_000,
} as const;

/** Encodes one message. Keys whose value is `undefined` are left out. */
export function encode(message: object): Uint8Array {
  return packr.pack(plain(message, 'message', 0));
}

/** Decodes exactly one MessagePack value; E_TOO_LARGE over the limit, E_PROTOCOL when it is not MessagePack. */
export function decode(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_LIMITS): unknown {
  if (bytes.length > limits.maxMessageBytes) {
    throw new VidpriorError(
      'E_TOO_LARGE',
      `message of ${bytes.length} bytes is over the limit of ${limits.maxMessageBytes}`,
      { bytes: bytes.length, limit: limits.maxMessageBytes },
    );
  }
  if (bytes.length === 0) throw new VidpriorError('E_PROTOCOL', 'empty message: expected one MessagePack map');
  checkPlainMessagePack(bytes, { ...PLAIN_LIMITS, maxValues: limits.maxValues ?? PLAIN_LIMITS.maxValues });
  try {
    // A Buffer view keeps msgpackr from copying; the decoded `bin` values are views into `bytes`.
    const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    return unpackr.unpack(buf);
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0]!.slice(0, 200) : String(err);
    throw new VidpriorError('E_PROTOCOL', `message is not valid MessagePack (${why})`, undefined, { cause: err });
  }
}

/** Checks that `v` is plain MessagePack data and drops undefined map values. */
function plain(v: unknown, path: string, depth: number): unknown {
  if (depth > 32) throw new VidpriorError('E_INTERNAL', `${path}: message nested deeper than 32 levels`);
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number') return v;
  if (v instanceof Uint8Array) return v;
  if (Array.isArray(v)) {
    return v.map((x, i) => {
      if (x === undefined) throw new VidpriorError('E_INTERNAL', `${path}[${i}] is undefined: not encodable`);
      return plain(x, `${path}[${i}]`, depth + 1);
    });
  }
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) {
      throw new VidpriorError(
        'E_INTERNAL',
        `${path} is a ${(v as object).constructor?.name ?? 'non-plain object'}: not plain MessagePack`,
      );
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = plain(x, `${path}.${k}`, depth + 1);
    return out;
  }
  throw new VidpriorError('E_INTERNAL', `${path} is a ${typeof v}: not plain MessagePack`);
}
