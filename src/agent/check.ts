// Hand-written schema checks for protocol messages. Both sides treat what they receive as untrusted,
// so every field is checked for type, range and size, and unknown fields are refused.

/** Thrown by a check; the receiver turns it into EINVAL (agent) or EPROTO (host). */
export class SchemaError extends Error {
  constructor(where: string, what: string) {
    super(`${where}: ${what}`);
    this.name = 'SchemaError';
  }
}

/** A check returns the value typed when it is valid and throws SchemaError otherwise. */
export type Check<T> = (v: unknown, where: string) => T;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}

/** A string of at most `max` UTF-16 units; `nonEmpty` and `noNul` refuse '' and NUL bytes. */
export function str(opts: { max?: number; nonEmpty?: boolean; noNul?: boolean } = {}): Check<string> {
  const max = opts.max ?? 4096;
  return (v, where) => {
    if (typeof v !== 'string') throw new SchemaError(where, `expected a string, got ${describe(v)}`);
    if (v.length > max) throw new SchemaError(where, `string longer than ${max}`);
    if (opts.nonEmpty && v.length === 0) throw new SchemaError(where, 'must not be empty');
    if (opts.noNul && v.includes('\0')) throw new SchemaError(where, 'must not contain NUL');
    return v;
  };
}

/** An integer in [min, max]. */
export function int(min: number, max: number): Check<number> {
  return (v, where) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new SchemaError(where, `expected an integer, got ${describe(v)}`);
    if (v < min || v > max) throw new SchemaError(where, `must be between ${min} and ${max}`);
    return v;
  };
}

/** A finite number in [min, max]. */
export function num(min: number, max: number): Check<number> {
  return (v, where) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new SchemaError(where, `expected a number, got ${describe(v)}`);
    if (v < min || v > max) throw new SchemaError(where, `must be between ${min} and ${max}`);
    return v;
  };
}

/** A boolean. */
export const bool: Check<boolean> = (v, where) => {
  if (typeof v !== 'boolean') throw new SchemaError(where, `expected a boolean, got ${describe(v)}`);
  return v;
};

/** Exactly `value`. */
export function literal<T extends string | number | boolean>(value: T): Check<T> {
  return (v, where) => {
    if (v !== value) throw new SchemaError(where, `expected ${JSON.stringify(value)}, got ${describe(v)}`);
    return value;
  };
}

/** One of the listed strings. */
export function oneOf<T extends string>(values: readonly T[]): Check<T> {
  return (v, where) => {
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
      throw new SchemaError(where, `expected one of ${values.join(', ')}, got ${describe(v)}`);
    }
    return v as T;
  };
}

/** The value or undefined (an absent field). */
export function optional<T>(check: Check<T>): Check<T | undefined> {
  return (v, where) => (v === undefined ? undefined : check(v, where));
}

/** The value or null. */
export function nullable<T>(check: Check<T>): Check<T | null> {
  return (v, where) => (v === null ? null : check(v, where));
}

/** An array of at most `max` items, each checked. */
export function arr<T>(item: Check<T>, opts: { max: number; nonEmpty?: boolean }): Check<T[]> {
  return (v, where) => {
    if (!Array.isArray(v)) throw new SchemaError(where, `expected an array, got ${describe(v)}`);
    if (v.length > opts.max) throw new SchemaError(where, `more than ${opts.max} items`);
    if (opts.nonEmpty && v.length === 0) throw new SchemaError(where, 'must not be empty');
    return v.map((x, i) => item(x, `${where}[${i}]`));
  };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A string-keyed map of at most `maxKeys` entries, each value checked; keys checked by `key`. */
export function record<T>(key: Check<string>, value: Check<T>, maxKeys: number): Check<Record<string, T>> {
  return (v, where) => {
    if (!isPlainObject(v)) throw new SchemaError(where, `expected an object, got ${describe(v)}`);
    const keys = Object.keys(v);
    if (keys.length > maxKeys) throw new SchemaError(where, `more than ${maxKeys} keys`);
    // A null-prototype result: keys like "__proto__" from the wire stay plain data.
    const out: Record<string, T> = Object.create(null);
    for (const k of keys) out[key(k, `${where} key`)] = value(v[k], `${where}.${k}`);
    return out;
  };
}

/** Fields of an object type, each with its check; optional fields use optional(). */
export type Shape<T> = { [K in keyof T]-?: Check<T[K]> };

/** An object with exactly the fields of `shape` (unknown fields are refused). */
export function obj<T>(shape: Shape<T>): Check<T> {
  const known = Object.keys(shape) as (keyof T & string)[];
  return (v, where) => {
    if (!isPlainObject(v)) throw new SchemaError(where, `expected an object, got ${describe(v)}`);
    for (const k of Object.keys(v)) {
      if (!Object.prototype.hasOwnProperty.call(shape, k)) throw new SchemaError(where, `unknown field "${k.slice(0, 40)}"`);
    }
    const out = {} as T;
    for (const k of known) {
      const value = shape[k](v[k], `${where}.${k}`);
      if (value !== undefined) out[k] = value;
    }
    return out;
  };
}

/** The first alternative whose discriminating check passes; `pick` chooses it from the raw value. */
export function union<T>(pick: (v: Record<string, unknown>) => Check<T> | undefined, expected: string): Check<T> {
  return (v, where) => {
    const check = isPlainObject(v) ? pick(v) : undefined;
    if (!check) throw new SchemaError(where, `expected ${expected}, got ${describe(v)}`);
    return check(v, where);
  };
}
