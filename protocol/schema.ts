/**
 * A very small runtime validator, enough for the wire protocol: each `Schema<T>` checks an unknown value
 * (decoded from MessagePack) and returns it typed, or throws a VidpriorError naming the field (a dotted path
 * such as `params.strength`) and the bad value. The TypeScript types of the messages are inferred from the
 * schemas, so the types and the checks cannot drift apart.
 *
 * Error codes: a value of the wrong type or shape is E_PROTOCOL (the peer does not speak the protocol); a
 * value of the right type but out of range, or an unknown parameter name, is E_BAD_REQUEST (the peer speaks the
 * protocol but asked for something wrong).
 */
import { VidpriorError } from '../src/errors.js';

export interface Schema<T, Optional extends boolean = false, Defaulted extends boolean = false> {
  /** Checks `value` found at `path` and returns it typed (defaults filled in). */
  parse(value: unknown, path: string): T;
  /** Whether the key may be absent in an object (set by `optional()` and `withDefault()`). */
  readonly isOptional: Optional;
  /** Whether an absent key takes a default (so the parsed value is always there). */
  readonly hasDefault?: Defaulted;
  /** A short description of what is expected, for error messages and the spec. */
  readonly expected: string;
}

// biome-ignore lint/suspicious/noExplicitAny: a schema of any value type, for generic helpers
type AnySchema = Schema<any, boolean, boolean>;
/** The parsed (received) type: keys with a default are always present. */
export type Infer<S> = S extends Schema<infer T, boolean, boolean> ? T : never;
/** The type a sender may write: keys with a default may be left out. */
export type Input<S> = S extends { shape: infer Sh extends Shape } ? InferInputShape<Sh> : Infer<S>;

type Shape = Record<string, AnySchema>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
type OptionalOut<S> = S extends Schema<unknown, true, false> ? true : false;
export type InferShape<S extends Shape> = Simplify<
  { [K in keyof S as OptionalOut<S[K]> extends true ? never : K]: Infer<S[K]> } & {
    [K in keyof S as OptionalOut<S[K]> extends true ? K : never]?: Infer<S[K]>;
  }
>;
export type InferInputShape<S extends Shape> = Simplify<
  { [K in keyof S as S[K]['isOptional'] extends true ? never : K]: Input<S[K]> } & {
    [K in keyof S as S[K]['isOptional'] extends true ? K : never]?: Input<S[K]>;
  }
>;

/** Short, bounded rendering of a bad value for an error message (never dumps a whole frame). */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (value instanceof Uint8Array) return `${value.length} bytes of binary`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object')
    return value.constructor && value.constructor !== Object ? `a ${value.constructor.name}` : 'a map';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  return `${typeof value} ${String(value)}`;
}

function typeError(path: string, expected: string, value: unknown): VidpriorError {
  return new VidpriorError('E_PROTOCOL', `${path} must be ${expected}, got ${describeValue(value)}`, { field: path });
}

function rangeError(path: string, expected: string, value: unknown): VidpriorError {
  return new VidpriorError('E_BAD_REQUEST', `${path} must be ${expected}, got ${describeValue(value)}`, {
    field: path,
    value: typeof value === 'object' ? describeValue(value) : value,
  });
}

function schema<T>(expected: string, parse: (value: unknown, path: string) => T): Schema<T> {
  return { parse, expected, isOptional: false };
}

export function str(opts: { min?: number; max?: number } = {}): Schema<string> {
  const min = opts.min ?? 0;
  const max = opts.max ?? 4096;
  const expected = `a string of ${min}–${max} characters`;
  return schema(expected, (v, path) => {
    if (typeof v !== 'string') throw typeError(path, 'a string', v);
    if (v.length < min || v.length > max) throw rangeError(path, expected, v);
    return v;
  });
}

export function literal<const L extends string>(value: L): Schema<L> {
  return schema(JSON.stringify(value), (v, path) => {
    if (v !== value) throw typeError(path, JSON.stringify(value), v);
    return value;
  });
}

export function oneOf<const L extends string>(values: readonly L[]): Schema<L> {
  const expected = `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`;
  return schema(expected, (v, path) => {
    if (typeof v !== 'string') throw typeError(path, 'a string', v);
    if (!values.includes(v as L)) throw rangeError(path, expected, v);
    return v as L;
  });
}

export function num(opts: { min?: number; max?: number; minExclusive?: boolean } = {}): Schema<number> {
  const lo = opts.min === undefined ? '' : `${opts.minExclusive ? '>' : '≥'} ${opts.min}`;
  const hi = opts.max === undefined ? '' : `≤ ${opts.max}`;
  const expected = ['a number', [lo, hi].filter(Boolean).join(' and ')].filter(Boolean).join(' ');
  return schema(expected, (v, path) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw typeError(path, 'a finite number', v);
    if (opts.min !== undefined && (opts.minExclusive ? v <= opts.min : v < opts.min))
      throw rangeError(path, expected, v);
    if (opts.max !== undefined && v > opts.max) throw rangeError(path, expected, v);
    return v;
  });
}

export function int(opts: { min?: number; max?: number } = {}): Schema<number> {
  const min = opts.min ?? 0;
  const max = opts.max ?? 2 ** 32 - 1;
  const expected = `an integer from ${min} to ${max}`;
  return schema(expected, (v, path) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw typeError(path, 'an integer', v);
    if (v < min || v > max) throw rangeError(path, expected, v);
    return v;
  });
}

export function bool(): Schema<boolean> {
  return schema('true or false', (v, path) => {
    if (typeof v !== 'boolean') throw typeError(path, 'true or false', v);
    return v;
  });
}

/** MessagePack `bin` (decoded as a Buffer, which is a Uint8Array). Sizes are checked by the receiver's limits. */
export function bin(): Schema<Uint8Array> {
  return schema('binary (MessagePack bin)', (v, path) => {
    if (!(v instanceof Uint8Array)) throw typeError(path, 'binary (MessagePack bin)', v);
    return v;
  });
}

export function array<T>(item: Schema<T, boolean, boolean>, opts: { min?: number; max?: number } = {}): Schema<T[]> {
  const min = opts.min ?? 0;
  const max = opts.max ?? 100_000;
  const expected = `an array of ${min}–${max} items`;
  return schema(expected, (v, path) => {
    if (!Array.isArray(v)) throw typeError(path, 'an array', v);
    if (v.length < min || v.length > max) throw rangeError(path, expected, v);
    return v.map((x, i) => item.parse(x, `${path}[${i}]`));
  });
}

/** A string-keyed map whose values all follow `value` (used for free-form details). */
export function record<T>(value: Schema<T, boolean, boolean>): Schema<Record<string, T>> {
  return schema('a map', (v, path) => {
    if (!isPlainMap(v)) throw typeError(path, 'a map', v);
    const out: Record<string, T> = {};
    for (const [k, x] of Object.entries(v)) out[k] = value.parse(x, `${path}.${k}`);
    return out;
  });
}

/** Anything MessagePack can carry (no further check). */
export function any(): Schema<unknown> {
  return schema('any value', (v) => v);
}

export function optional<T>(inner: Schema<T, boolean, boolean>): Schema<T | undefined, true> {
  return {
    expected: inner.expected,
    isOptional: true,
    parse: (v, path) => (v === undefined || v === null ? undefined : inner.parse(v, path)),
  };
}

/** Like `optional`, but an absent key takes `fallback` (so the parsed type is not optional). */
export function withDefault<T>(inner: Schema<T, boolean, boolean>, fallback: T): Schema<T, true, true> {
  return {
    expected: `${inner.expected} (default ${JSON.stringify(fallback)})`,
    isOptional: true,
    hasDefault: true,
    parse: (v, path) => (v === undefined || v === null ? fallback : inner.parse(v, path)),
  };
}

export function isPlainMap(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * A map with the given keys. `strict`: keys not in the shape are rejected (E_BAD_REQUEST naming the key) —
 * used for job parameters, where a misspelt name must not be ignored silently. Otherwise unknown keys are
 * dropped, so newer peers can add fields.
 */
export function object<S extends Shape>(
  shape: S,
  opts: { strict?: boolean } = {},
): Schema<InferShape<S>> & { shape: S } {
  const s = schema('a map', (v, path) => {
    if (!isPlainMap(v)) throw typeError(path, 'a map', v);
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(shape)) {
      const value = field.parse(v[key], path ? `${path}.${key}` : key);
      if (value !== undefined) out[key] = value;
      else if (!field.isOptional) throw typeError(path ? `${path}.${key}` : key, field.expected, undefined);
    }
    if (opts.strict) {
      for (const key of Object.keys(v)) {
        if (!(key in shape)) {
          throw new VidpriorError(
            'E_BAD_REQUEST',
            `${path ? `${path}.` : ''}${key} is not a known field (known: ${Object.keys(shape).join(', ')})`,
            { field: path ? `${path}.${key}` : key },
          );
        }
      }
    }
    return out as InferShape<S>;
  });
  return Object.assign(s, { shape });
}
