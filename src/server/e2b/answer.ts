// How the E2B side of hutchd answers errors: E2B's JSON {code, message} (code = the HTTP status) on
// the control plane and envd's plain paths, Connect's error shapes on envd's RPCs (docs/e2b.md).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isHutchError, type ErrorCode } from '../../errors.js';
import { errorBody } from '../http.js';

/** The HTTP status and E2B body for any error. */
export function e2bErrorOf(e: unknown): { status: number; body: { code: number; message: string } } {
  const { status, body } = errorBody(e);
  return { status, body: { code: status, message: body.error.message } };
}

/** Sends the E2B-shaped error for `e` (the connection is cut when the answer has begun). */
export function sendE2bError(res: ServerResponse, e: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { status, body } = e2bErrorOf(e);
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const CONNECT_CODE_OF: Partial<Record<ErrorCode, string>> = {
  ENOTFOUND: 'not_found', EEXIST: 'already_exists', EINVAL: 'invalid_argument', ESTATE: 'failed_precondition', EPERM: 'permission_denied',
  EAUTH: 'unauthenticated', EUNSUPPORTED: 'unimplemented', ETIMEDOUT: 'deadline_exceeded', EBUSY: 'resource_exhausted', ENOSPC: 'resource_exhausted',
  ENOEXEC: 'not_found', ENETWORK: 'unavailable',
};

const HTTP_OF_CONNECT: Record<string, number> = {
  invalid_argument: 400, failed_precondition: 400, out_of_range: 400, unauthenticated: 401, permission_denied: 403, not_found: 404,
  already_exists: 409, aborted: 409, resource_exhausted: 429, canceled: 499, unimplemented: 501, unavailable: 503, deadline_exceeded: 504,
};

/** The Connect error code of a hutch error (`internal` for the rest). */
export function connectCodeOf(e: unknown): string {
  return (isHutchError(e) ? CONNECT_CODE_OF[e.code] : undefined) ?? 'internal';
}

/** True for a Connect streaming request (its errors go in the end-of-stream message). */
export function isConnectStream(req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').startsWith('application/connect+');
}

/**
 * Sends `e` as a Connect error: in an end-of-stream message (HTTP 200) for a streaming call, as
 * `{code, message}` with the code's HTTP status for a unary one. Cuts a stream already begun.
 */
export function sendConnectError(req: IncomingMessage, res: ServerResponse, e: unknown): void {
  const code = connectCodeOf(e);
  const message = e2bErrorOf(e).body.message;
  const stream = isConnectStream(req);
  if (res.headersSent && !stream) {
    res.destroy();
    return;
  }
  if (stream) {
    const json = Buffer.from(JSON.stringify({ error: { code, message } }));
    const frame = Buffer.alloc(5 + json.length);
    frame[0] = 0x02; // end of stream
    frame.writeUInt32BE(json.length, 1);
    json.copy(frame, 5);
    // The end-of-stream message is JSON whatever the codec; the answer's type is the request's.
    if (!res.headersSent) res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/connect+json' });
    res.end(frame);
    return;
  }
  const text = JSON.stringify({ code, message });
  res.writeHead(HTTP_OF_CONNECT[code] ?? 500, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
