/**
 * Example exchanges as JSON: the form the Python wire tests read. A `bin` value becomes `{"$bin": base64}`;
 * each step also carries `msgpack_hex`, the exact bytes codec.ts sends for it (a decoder must read them back
 * to the same value; an encoder may choose other, equally valid, encodings of the same map).
 */
import { encode } from './codec.js';
import { EXAMPLES, type Example } from './examples.js';

export const BIN_MARKER = '$bin';

/** Replaces binary values by {"$bin": base64} (and leaves out undefined keys) for JSON. */
export function toJsonValue(v: unknown): unknown {
  if (v instanceof Uint8Array)
    return { [BIN_MARKER]: Buffer.from(v.buffer, v.byteOffset, v.length).toString('base64') };
  if (Array.isArray(v)) return v.map(toJsonValue);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v)
        .filter(([, x]) => x !== undefined)
        .map(([k, x]) => [k, toJsonValue(x)]),
    );
  }
  return v;
}

/** The inverse of toJsonValue. */
export function fromJsonValue(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(fromJsonValue);
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v);
    if (entries.length === 1 && entries[0]![0] === BIN_MARKER)
      return Uint8Array.from(Buffer.from(entries[0]![1] as string, 'base64'));
    return Object.fromEntries(entries.map(([k, x]) => [k, fromJsonValue(x)]));
  }
  return v;
}

export function exampleToJson(example: Example): string {
  const doc = {
    name: example.name,
    description: example.description,
    protocol: 1,
    binary: 'values written {"$bin": "<base64>"} are MessagePack bin; msgpack_hex is the encoding vidprior sends',
    steps: example.steps.map((s) => ({
      from: s.from,
      ...(s.note ? { note: s.note } : {}),
      message: toJsonValue(s.message),
      msgpack_hex: Buffer.from(encode(s.message)).toString('hex'),
    })),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** file name → content of every example file. */
export function exampleFiles(): Map<string, string> {
  return new Map(EXAMPLES.map((e) => [`${e.name}.json`, exampleToJson(e)]));
}
