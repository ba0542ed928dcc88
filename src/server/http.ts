// HTTP plumbing of hutchd: JSON errors with a status per error code, bounded bodies, query values.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HutchError, isHutchError, type ErrorCode } from '../errors.js';

/** An error the API answers with a status of its own (413, 405...) rather than the code's default. */
export class ApiError extends HutchError {
  constructor(readonly status: number, code: ErrorCode, message: string) {
    super(code, message);
  }
}

const STATUS_OF: Record<ErrorCode, number> = {
  ENOTFOUND: 404, EEXIST: 409, EINVAL: 400, ESTATE: 409, ELOCKED: 409, ETIMEDOUT: 504, EPROTO: 502,
  EEXEC: 500, ENOEXEC: 422, EPERM: 403, EUNSUPPORTED: 501, EAUTH: 401, ENETWORK: 502, EINTEGRITY: 502,
  ENOSPC: 507, EBUSY: 503, EINTERNAL: 500,
};

/** The HTTP status and JSON body for any error (a non-HutchError is an internal one). */
export function errorBody(e: unknown): { status: number; body: { error: { code: string; message: string } } } {
  if (isHutchError(e)) {
    const status = (e as Partial<ApiError>).status ?? STATUS_OF[e.code] ?? 500;
    return { status, body: { error: { code: e.code, message: e.message } } };
  }
  return { status: 500, body: { error: { code: 'EINTERNAL', message: e instanceof Error ? e.message : String(e) } } };
}

/** Sends a JSON answer. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Sends the JSON error for `e`, unless the answer has already begun (then the connection is cut). */
export function sendError(res: ServerResponse, e: unknown): void {
  if (res.headersSent) {
    res.destroy(e instanceof Error ? e : undefined);
    return;
  }
  const { status, body } = errorBody(e);
  sendJson(res, status, body);
}

/** The 413 for a body whose content-length already says it is over `maxBytes` (refused before it is read); null otherwise. */
function declaredOver(req: IncomingMessage, maxBytes: number, what: string): ApiError | null {
  const declared = Number(req.headers['content-length'] ?? NaN);
  return Number.isFinite(declared) && declared > maxBytes ? new ApiError(413, 'EINVAL', `${what} of ${declared} bytes is larger than the limit of ${maxBytes} bytes`) : null;
}

/** Reads a whole body of at most `maxBytes`; a larger one is refused with 413 before it is all read. */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const over = declaredOver(req, maxBytes, 'request body');
  if (over) return Promise.reject(over);
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > maxBytes) {
        req.off('data', onData);
        req.resume(); // drained and dropped, so that the 413 can still be answered
        reject(new ApiError(413, 'EINVAL', `request body is larger than the limit of ${maxBytes} bytes`));
        return;
      }
      parts.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(parts, total)));
    req.on('error', reject);
  });
}

/** Reads a JSON object body (an empty body is `{}`). */
export async function readJson(req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  const raw = await readBody(req, maxBytes);
  if (raw.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw new HutchError('EINVAL', `request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HutchError('EINVAL', 'request body must be a JSON object');
  return v as Record<string, unknown>;
}

/**
 * The body of a streamed upload, failing with 413 past `maxBytes`. The request is not destroyed
 * when the reader stops early (the error answer still has to go out on its socket).
 */
export async function* capped(req: IncomingMessage, maxBytes: number): AsyncGenerator<Buffer> {
  const over = declaredOver(req, maxBytes, 'upload');
  if (over) throw over;
  let total = 0;
  for await (const chunk of req.iterator({ destroyOnReturn: false })) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) throw new ApiError(413, 'EINVAL', `upload is larger than the limit of ${maxBytes} bytes`);
    yield chunk as Buffer;
  }
}

// Typed readers of request fields: each names the field it refuses.

/** An optional string field. */
export function optString(o: Record<string, unknown>, key: string, max = 4096): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length > max) throw new HutchError('EINVAL', `${key} must be a string of at most ${max} characters`);
  return v;
}

/** An optional finite number field within [min, max]. */
export function optNumber(o: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new HutchError('EINVAL', `${key} must be a number from ${min} to ${max}`);
  return v;
}

/** An optional boolean field. */
export function optBool(o: Record<string, unknown>, key: string): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new HutchError('EINVAL', `${key} must be true or false`);
  return v;
}

/** An optional string → string map (env, labels). */
export function optStringMap(o: Record<string, unknown>, key: string): Record<string, string> | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
    throw new HutchError('EINVAL', `${key} must be an object of string values`);
  }
  return { ...(v as Record<string, string>) };
}

/** A command: a string (run by /bin/sh -c) or a non-empty list of strings. */
export function commandOf(o: Record<string, unknown>, key = 'cmd'): string[] {
  const v = o[key];
  if (typeof v === 'string' && v.length > 0) return ['/bin/sh', '-c', v];
  if (Array.isArray(v) && v.length > 0 && v.every((a) => typeof a === 'string')) return v as string[];
  throw new HutchError('EINVAL', `${key} must be a non-empty string (run by /bin/sh -c) or a non-empty list of strings`);
}

/** A required query parameter. */
export function queryParam(url: URL, key: string): string {
  const v = url.searchParams.get(key);
  if (v === null || v === '') throw new HutchError('EINVAL', `query parameter ${key} is required`);
  return v;
}

/** An absolute path inside the sandbox, from the query (`path=`). */
export function sandboxPath(url: URL, key = 'path'): string {
  const p = queryParam(url, key);
  if (!p.startsWith('/') || p.includes('\0')) throw new HutchError('EINVAL', `${key} must be an absolute path inside the sandbox: ${p.slice(0, 200)}`);
  return p;
}

/** env as KEY=VALUE strings. */
export function envList(env: Record<string, string> | undefined): string[] {
  return Object.entries(env ?? {}).map(([k, v]) => {
    if (k === '' || k.includes('=') || k.includes('\0')) throw new HutchError('EINVAL', `invalid environment variable name "${k.slice(0, 80)}"`);
    return `${k}=${v}`;
  });
}
