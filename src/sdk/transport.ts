// The SDK's connection to hutchd: HTTP/1.1 with keep-alive over a unix socket or TCP, a bearer
// token, JSON errors turned into typed ones, and a timeout and abort signal on every call.
import http from 'node:http';
import type { Readable } from 'node:stream';
import { AbortError, apiError, HutchApiError, TimeoutError } from './errors.js';

/** Where hutchd is. Defaults: $HUTCH_URL or $HUTCH_SOCKET or /run/hutch/hutchd.sock; $HUTCH_TOKEN. */
export interface ConnectionOptions {
  /** Unix socket of hutchd. */
  socketPath?: string;
  /** http://host:port of hutchd (instead of socketPath). */
  baseUrl?: string;
  /** Bearer token. */
  token?: string;
  /** Default timeout of each call in ms (default 60000; 0 = none). */
  timeoutMs?: number;
}

/** Options every call takes. */
export interface CallOptions {
  /** Fails the call with TimeoutError after this long. */
  timeoutMs?: number;
  /** Fails the call with AbortError when aborted. */
  signal?: AbortSignal;
}

/** One request. */
export interface RequestSpec extends CallOptions {
  method: string;
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  json?: unknown;
  body?: Buffer | string | Readable | AsyncIterable<Uint8Array>;
  contentType?: string;
  /** More headers (the token's authorization header is always hutchd's). */
  headers?: Record<string, string>;
}

const DEFAULT_SOCKET = '/run/hutch/hutchd.sock';

/** hutchd's default socket: in `$HUTCH_ROOT` when that is set (as hutchd puts it), else DEFAULT_SOCKET. */
function defaultSocket(): string {
  const root = process.env['HUTCH_ROOT'];
  return root ? `${root.replace(/\/+$/, '')}/hutchd.sock` : DEFAULT_SOCKET;
}

/** A connection to hutchd (shared by the sandboxes made through it). */
export class Transport {
  readonly socketPath: string | undefined;
  readonly baseUrl: URL | undefined;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly agent: http.Agent;

  constructor(opts: ConnectionOptions = {}) {
    const base = opts.baseUrl ?? (opts.socketPath ? undefined : process.env['HUTCH_URL']);
    this.baseUrl = base ? new URL(base) : undefined;
    this.socketPath = this.baseUrl ? undefined : (opts.socketPath ?? process.env['HUTCH_SOCKET'] ?? defaultSocket());
    this.token = opts.token ?? process.env['HUTCH_TOKEN'];
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.agent = new http.Agent({ keepAlive: true });
  }

  /** Closes idle connections (open ones close when their calls end). */
  close(): void {
    this.agent.destroy();
  }

  /** Headers of every request. */
  headers(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  /** The ws:// or ws+unix:// URL of a WebSocket route. */
  wsUrl(path: string, query?: RequestSpec['query']): string {
    const p = path + queryString(query);
    if (this.baseUrl) return `${this.baseUrl.protocol === 'https:' ? 'wss' : 'ws'}://${this.baseUrl.host}${p}`;
    return `ws+unix://${this.socketPath}:${p}`;
  }

  /** The URL of a route: http(s)://HOST:PORT/route for TCP, http+unix://SOCKET:/route (the ws+unix form) for a unix socket. */
  httpUrl(path: string): string {
    if (this.baseUrl) return `${this.baseUrl.origin}${path}`;
    return `http+unix://${this.socketPath}:${path}`;
  }

  /** The abort signal of a call: its own signal, and its timeout (call's, else the connection's). */
  signalOf(o: CallOptions): { signal: AbortSignal | undefined; timeoutMs: number } {
    const timeoutMs = o.timeoutMs ?? this.timeoutMs;
    const parts = [o.signal, timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined].filter((s): s is AbortSignal => s !== undefined);
    return { signal: parts.length === 0 ? undefined : parts.length === 1 ? parts[0] : AbortSignal.any(parts), timeoutMs };
  }

  /** Turns an abort reason into the SDK's error. */
  abortError(signal: AbortSignal, timeoutMs: number, what: string): HutchApiError {
    const r: unknown = signal.reason;
    if (r instanceof Error && r.name === 'TimeoutError') return new TimeoutError(`${what} did not finish within ${timeoutMs} ms`);
    return new AbortError(`${what} was aborted`);
  }

  /** Sends a request; resolves to the response once its headers are in (an error status throws). */
  async request(spec: RequestSpec): Promise<http.IncomingMessage> {
    const res = await this.send(spec);
    if ((res.statusCode ?? 500) >= 400) throw await errorOf(res);
    return res;
  }

  /** Sends a request; resolves to the response once its headers are in, whatever its status. */
  async send(spec: RequestSpec): Promise<http.IncomingMessage> {
    const { signal, timeoutMs } = this.signalOf(spec);
    const what = `${spec.method} ${spec.path}`;
    if (signal?.aborted) throw this.abortError(signal, timeoutMs, what);
    const headers: Record<string, string> = { ...(spec.headers ?? {}), ...this.headers() };
    let payload: Buffer | string | Readable | AsyncIterable<Uint8Array> | undefined = spec.body;
    if (spec.json !== undefined) {
      payload = JSON.stringify(spec.json);
      headers['content-type'] = 'application/json';
    } else if (spec.contentType) headers['content-type'] = spec.contentType;
    if (typeof payload === 'string' || Buffer.isBuffer(payload)) headers['content-length'] = String(Buffer.byteLength(payload));
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request({
        agent: this.agent, method: spec.method, path: spec.path + queryString(spec.query), headers,
        ...(this.baseUrl ? { host: this.baseUrl.hostname, port: this.baseUrl.port || 80 } : { socketPath: this.socketPath! }),
      }, resolve);
      const onAbort = () => { req.destroy(this.abortError(signal!, timeoutMs, what)); };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('close', () => signal?.removeEventListener('abort', onAbort));
      req.on('error', (e) => reject(e instanceof HutchApiError ? e : new HutchApiError('ENETWORK', 0, `cannot reach hutchd at ${this.where()}: ${e.message}`, { cause: e })));
      if (payload === undefined || typeof payload === 'string' || Buffer.isBuffer(payload)) req.end(payload);
      else void pump(payload, req).catch((e: Error) => req.destroy(e));
    });
    // The body of the answer is still subject to the signal.
    if (signal) {
      const onAbort = () => res.destroy(this.abortError(signal, timeoutMs, what));
      signal.addEventListener('abort', onAbort, { once: true });
      res.once('close', () => signal.removeEventListener('abort', onAbort));
    }
    return res;
  }

  /** A JSON call. */
  async json<T>(spec: RequestSpec): Promise<T> {
    const res = await this.request(spec);
    const text = (await readAll(res)).toString('utf8');
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  private where(): string {
    return this.baseUrl ? this.baseUrl.origin : `unix:${this.socketPath}`;
  }
}

/** Writes an async source into a request with backpressure. */
async function pump(source: AsyncIterable<Uint8Array>, req: http.ClientRequest): Promise<void> {
  for await (const chunk of source) {
    if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
  }
  req.end();
}

/** Reads a whole response body. */
export async function readAll(res: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of res) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** The typed error of a hutchd error answer (JSON {error: {code, message}}). */
export async function errorOf(res: http.IncomingMessage): Promise<HutchApiError> {
  const status = res.statusCode ?? 500;
  const text = (await readAll(res).catch(() => Buffer.alloc(0))).toString('utf8');
  try {
    const e = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
    if (e && typeof e.code === 'string' && typeof e.message === 'string') return apiError(e.code, status, e.message);
  } catch { /* not JSON: reported below with the raw text */ }
  return new HutchApiError('EPROTO', status, `hutchd answered ${status}: ${text.slice(0, 200)}`);
}

function queryString(q: RequestSpec['query']): string {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}
