// Small type checkers for the config.json validator. Each records a problem (field path and
// reason) instead of throwing, so one pass reports every mistake in a spec.

/** One thing wrong with a spec: the field path (e.g. `process.args[0]`) and why. */
export interface SpecProblem {
  path: string;
  message: string;
}

/** A JSON object as parsed: string keys, unknown values. */
export type JsonObject = Record<string, unknown>;

/** Collects problems while walking a parsed spec. */
export class ProblemList {
  readonly items: SpecProblem[] = [];

  /** Records that `path` is wrong because of `message`. */
  add(path: string, message: string): void {
    this.items.push({ path, message });
  }
}

/** `parent.key`, or just `key` at the top. */
export function field(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

/** How a value looks in a message: short JSON. */
export function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** True for a JSON object (not an array, not null). */
export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks `value` is an object; reports and returns undefined otherwise. */
export function expectObject(p: ProblemList, path: string, value: unknown): JsonObject | undefined {
  if (isObject(value)) return value;
  p.add(path, `must be an object, got ${show(value)}`);
  return undefined;
}

/** Checks `value` is an array and runs `each` on its elements. */
export function expectArray(p: ProblemList, path: string, value: unknown, each?: (path: string, item: unknown, index: number) => void): unknown[] | undefined {
  if (!Array.isArray(value)) {
    p.add(path, `must be an array, got ${show(value)}`);
    return undefined;
  }
  if (each) value.forEach((item, i) => each(`${path}[${i}]`, item, i));
  return value;
}

/** Options of expectString. */
export interface StringRules {
  nonEmpty?: boolean;
  absolute?: boolean;
  oneOf?: readonly string[];
}

/** Checks `value` is a string obeying `rules`; returns it when it is a string at all. */
export function expectString(p: ProblemList, path: string, value: unknown, rules: StringRules = {}): string | undefined {
  if (typeof value !== 'string') {
    p.add(path, `must be a string, got ${show(value)}`);
    return undefined;
  }
  if (value.includes('\0')) p.add(path, 'must not contain NUL characters');
  else if (rules.nonEmpty && value === '') p.add(path, 'must be a non-empty string');
  else if (rules.absolute && !value.startsWith('/')) p.add(path, `must be an absolute path, got ${show(value)}`);
  else if (rules.oneOf && !rules.oneOf.includes(value)) p.add(path, `unknown value ${show(value)} (want one of ${rules.oneOf.join(', ')})`);
  return value;
}

/** Checks `value` is a boolean. */
export function expectBoolean(p: ProblemList, path: string, value: unknown): void {
  if (typeof value !== 'boolean') p.add(path, `must be true or false, got ${show(value)}`);
}

/** The largest values of the integer types the spec uses. */
export const UINT32_MAX = 0xffffffff;
export const INT64_MIN = -(2 ** 63);
export const INT64_MAX = 2 ** 63;
export const UINT64_MAX = 2 ** 64;

/** Checks `value` is an integer in [min, max]; returns it when it is. */
export function expectInteger(p: ProblemList, path: string, value: unknown, min: number, max: number): number | undefined {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    p.add(path, `must be an integer, got ${show(value)}`);
    return undefined;
  }
  if (value < min) p.add(path, min === 0 ? `must not be negative, got ${value}` : `must be at least ${min}, got ${value}`);
  else if (value > max) p.add(path, `must be at most ${max}, got ${value}`);
  else return value;
  return undefined;
}

/** Checks a uint32 (ids, sizes, modes). */
export function expectUint32(p: ProblemList, path: string, value: unknown): number | undefined {
  return expectInteger(p, path, value, 0, UINT32_MAX);
}

/** Checks a uint64 (byte counts, rates). JSON numbers past 2^53 lose precision but stay integers. */
export function expectUint64(p: ProblemList, path: string, value: unknown): number | undefined {
  return expectInteger(p, path, value, 0, UINT64_MAX);
}

/** Checks an array of strings; `rules` apply to each. */
export function expectStringArray(p: ProblemList, path: string, value: unknown, rules: StringRules = {}): string[] | undefined {
  const list = expectArray(p, path, value, (itemPath, item) => expectString(p, itemPath, item, rules));
  return list?.every((s) => typeof s === 'string') ? (list as string[]) : undefined;
}

/** Checks an object whose values are all strings (annotations, sysctl, unified). */
export function expectStringMap(p: ProblemList, path: string, value: unknown): void {
  const obj = expectObject(p, path, value);
  if (!obj) return;
  for (const [key, item] of Object.entries(obj)) {
    if (key === '') p.add(path, 'keys must be non-empty');
    if (typeof item !== 'string') p.add(`${path}[${show(key)}]`, `must be a string, got ${show(item)}`);
  }
}

/** Runs `check` on obj[key] when present, with the field path. */
export function optional(obj: JsonObject, parent: string, key: string, check: (path: string, value: unknown) => void): void {
  if (obj[key] !== undefined) check(field(parent, key), obj[key]);
}

/** Runs `check` on obj[key], reporting it as missing when absent. */
export function required(p: ProblemList, obj: JsonObject, parent: string, key: string, check: (path: string, value: unknown) => void): void {
  if (obj[key] === undefined) p.add(field(parent, key), 'is required');
  else check(field(parent, key), obj[key]);
}

/** Reports repeated values in `values` (e.g. namespace types) at the later index. */
export function reportDuplicates(p: ProblemList, path: string, values: (string | undefined)[], what: string): void {
  const seen = new Map<string, number>();
  values.forEach((v, i) => {
    if (v === undefined) return;
    const first = seen.get(v);
    if (first === undefined) seen.set(v, i);
    else p.add(`${path}[${i}]`, `duplicate ${what} ${show(v)} (also at index ${first})`);
  });
}
