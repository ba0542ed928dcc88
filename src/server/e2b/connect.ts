// The Connect protocol (connectrpc.com/docs/protocol) as E2B's envd speaks it, JSON only: unary
// calls take and answer plain JSON; server-streaming calls take one enveloped request and answer a
// stream of envelopes (flag byte, 4-byte big-endian length, JSON), the last one (flag 0x02) holding
// the end of the stream: `{}` or `{"error":{code,message}}`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HutchError, isHutchError, type ErrorCode } from '../../errors.js';
import { readBody } from '../http.js';

/** Connect's error codes, with the HTTP status of a unary error. */
export const CONNECT_STATUS = {
  canceled: 499, unknown: 500, invalid_argument: 400, deadline_exceeded: 504, not_found: 404, already_exists: 409,
  permission_denied: 403, resource_exhausted: 429, failed_precondition: 400, aborted: 409, out_of_range: 400,
  unimplemented: 501, internal: 500, unavailable: 503, data_loss: 500, unauthenticated: 401,
} as const;
export type ConnectCode = keyof typeof CONNECT_STATUS;

const CODE_OF: Record<ErrorCode, ConnectCode> = {
  ENOTFOUND: 'not_found', EEXIST: 'already_exists', EINVAL: 'invalid_argument', ESTATE: 'failed_precondition', ELOCKED: 'aborted',
  ETIMEDOUT: 'deadline_exceeded', EPROTO: 'internal', EEXEC: 'internal', ENOEXEC: 'not_found', EPERM: 'permission_denied',
  EUNSUPPORTED: 'unimplemented', EAUTH: 'unauthenticated', ENETWORK: 'unavailable', EINTEGRITY: 'data_loss', ENOSPC: 'resource_exhausted',
  EBUSY: 'resource_exhausted', EINTERNAL: 'internal',
};

/** A Connect error of a HutchError (by its code), or `internal` for anything else. */
export function connectErrorOf(e: unknown): { code: ConnectCode; message: string } {
  if (e instanceof ConnectFault) return { code: e.connectCode, message: e.message };
  if (isHutchError(e)) return { code: CODE_OF[e.code] ?? 'internal', message: e.message };
  return { code: 'internal', message: e instanceof Error ? e.message.split('\n')[0]! : String(e) };
}

/** A HutchError that names its Connect code outright (one the HutchError codes do not tell apart). */
export class ConnectFault extends HutchError {
  constructor(readonly connectCode: ConnectCode, message: string, about: { id?: string; path?: string } = {}) {
    super(connectCode === 'not_found' ? 'ENOTFOUND' : connectCode === 'already_exists' ? 'EEXIST' : 'EINVAL', message, about);
  }
}

/** An `invalid_argument` fault. */
export function invalid(message: string): ConnectFault {
  return new ConnectFault('invalid_argument', message);
}

/** Parses a JSON request message: an object, else invalid_argument. */
function parseMessage(bytes: Buffer): Record<string, unknown> {
  let m: unknown;
  try {
    m = bytes.length === 0 ? {} : JSON.parse(bytes.toString('utf8'));
  } catch {
    throw invalid('the request message is not valid JSON');
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw invalid('the request message must be a JSON object');
  return m as Record<string, unknown>;
}

/** Reads a unary request: plain JSON (`application/json`); a binary (proto) request is refused. */
export async function readUnary(req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  const type = String(req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim();
  if (type !== 'application/json') throw new ConnectFault('unimplemented', `content type ${type.slice(0, 60)} is not supported: use application/json`);
  if (req.headers['content-encoding'] && req.headers['content-encoding'] !== 'identity') throw new ConnectFault('unimplemented', 'compressed requests are not supported');
  return parseMessage(await readBody(req, maxBytes));
}

/** Reads the one enveloped request message of a server-streaming call (`application/connect+json`). */
export async function readStreamRequest(req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
  if (type !== 'application/connect+json') throw new ConnectFault('unimplemented', `content type ${type.slice(0, 60) || '(none)'} is not supported: use application/connect+json`);
  const body = await readBody(req, maxBytes + 5);
  if (body.length < 5) throw invalid('the request has no message envelope');
  const flags = body[0]!, length = body.readUInt32BE(1);
  if (flags & 0x01) throw new ConnectFault('unimplemented', 'compressed messages are not supported');
  if (body.length !== 5 + length) throw invalid('the request must be exactly one message envelope');
  return parseMessage(body.subarray(5));
}

/** Answers a unary call. */
export function sendUnary(res: ServerResponse, message: object): void {
  const text = JSON.stringify(message);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Answers a unary call with a Connect error (its HTTP status by code). */
export function sendUnaryError(res: ServerResponse, e: unknown): void {
  const err = connectErrorOf(e);
  if (res.headersSent) return void res.destroy();
  const text = JSON.stringify(err);
  res.writeHead(CONNECT_STATUS[err.code], { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** One envelope. */
export function envelope(flags: number, message: object): Buffer {
  const json = Buffer.from(JSON.stringify(message));
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(json.length, 1);
  return Buffer.concat([head, json]);
}

/** Splits enveloped bytes into their messages (for clients of the protocol: the tests). */
export function parseEnvelopes(bytes: Buffer): { flags: number; message: Record<string, unknown> }[] {
  const out: { flags: number; message: Record<string, unknown> }[] = [];
  for (let i = 0; i + 5 <= bytes.length;) {
    const len = bytes.readUInt32BE(i + 1);
    out.push({ flags: bytes[i]!, message: JSON.parse(bytes.subarray(i + 5, i + 5 + len).toString('utf8')) as Record<string, unknown> });
    i += 5 + len;
  }
  return out;
}

/** Keepalive interval when the client asks for none (seconds). */
const DEFAULT_KEEPALIVE_S = 50;

/**
 * The response stream of a server-streaming call. Keepalive messages go out every
 * `Keepalive-Ping-Interval` seconds (the SDK asks for 50) so that idle streams stay open.
 */
export class ConnectStream {
  private ended = false;
  private timer: NodeJS.Timeout | undefined;
  /** Aborted when the client went away before the end. */
  readonly gone = new AbortController();

  constructor(req: IncomingMessage, private readonly res: ServerResponse, keepalive: object) {
    res.on('close', () => { this.stop(); if (!this.ended) this.gone.abort(); });
    const asked = Number(req.headers['keepalive-ping-interval']);
    const seconds = Number.isFinite(asked) && asked >= 1 && asked <= 3600 ? asked : DEFAULT_KEEPALIVE_S;
    this.timer = setInterval(() => this.send(keepalive), seconds * 1000);
    this.timer.unref();
  }

  /** Sends the response headers (the stream has begun: errors now go in its end message). */
  begin(): void {
    if (this.res.headersSent) return;
    this.res.writeHead(200, { 'content-type': 'application/connect+json' });
    this.res.flushHeaders();
  }

  /** Sends a message; false when the client is slow (wait for `drained`). */
  send(message: object): boolean {
    if (this.ended || this.res.destroyed) return true;
    this.begin();
    return this.res.write(envelope(0, message));
  }

  /** Resolves when the client has read what was written (or left). */
  drained(): Promise<void> {
    if (!this.res.writableNeedDrain || this.res.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { this.res.off('drain', done); this.res.off('close', done); resolve(); };
      this.res.once('drain', done);
      this.res.once('close', done);
    });
  }

  /** True while the client reads slower than messages come. */
  get congested(): boolean {
    return this.res.writableNeedDrain;
  }

  /** Ends the stream, with an error when given. */
  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.stop();
    if (this.res.destroyed) return;
    this.begin();
    this.res.end(envelope(0x02, error === undefined ? {} : { error: connectErrorOf(error) }));
  }

  private stop(): void {
    clearInterval(this.timer);
  }
}
