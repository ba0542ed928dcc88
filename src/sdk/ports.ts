// Ports of a sandbox through hutchd's forward (/v1/sandboxes/{id}/ports/{port}/…): the URL prefix
// of a port, and fetch-like requests to a server listening on the sandbox's loopback.
import type http from 'node:http';
import type { Readable } from 'node:stream';
import { HutchApiError } from './errors.js';
import { errorOf, readAll, type CallOptions, type Transport } from './transport.js';

/** A request through the forward. */
export interface PortFetchInit extends CallOptions {
  /** Default GET. */
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string | Readable | AsyncIterable<Uint8Array>;
}

/** The answer of the server in the sandbox; its body can be read once. */
export class PortResponse {
  /** The status of the server in the sandbox. */
  readonly status: number;
  readonly statusText: string;
  readonly headers: Headers;
  private used = false;

  constructor(private readonly res: http.IncomingMessage) {
    this.status = res.statusCode ?? 0;
    this.statusText = res.statusMessage ?? '';
    this.headers = new Headers();
    for (const [k, v] of Object.entries(res.headers)) for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) this.headers.append(k, one);
  }

  /** True for a 2xx status. */
  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** The body as a stream (instead of text(), json() or arrayBuffer()). */
  get body(): Readable {
    this.take();
    return this.res;
  }

  /** The whole body as bytes. */
  async arrayBuffer(): Promise<ArrayBuffer> {
    const b = await readAll(this.body);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }

  /** The whole body as UTF-8 text. */
  async text(): Promise<string> {
    return (await readAll(this.body)).toString('utf8');
  }

  /** The whole body parsed as JSON. */
  async json<T = unknown>(): Promise<T> {
    return JSON.parse(await this.text()) as T;
  }

  private take(): void {
    if (this.used) throw new HutchApiError('EINVAL', 0, 'the body of this response was already read');
    this.used = true;
  }
}

/** The route of `port` of sandbox `id` (no trailing slash). */
export function portRoute(id: string, port: number): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new HutchApiError('EINVAL', 0, `port must be an integer from 1 to 65535: ${port}`);
  return `/v1/sandboxes/${encodeURIComponent(id)}/ports/${port}`;
}

/**
 * A request to `path` (with its query) on `port` of sandbox `id`, through hutchd. Any status of the
 * sandbox's server is returned; hutchd's own refusals (no such sandbox 404, not running 409, nothing
 * listens 502, no token 401) throw typed errors: proxied answers carry `via: … hutchd`, those do not.
 */
export async function fetchPort(t: Transport, id: string, port: number, path: string, init: PortFetchInit = {}): Promise<PortResponse> {
  const res = await t.send({
    method: init.method ?? 'GET', path: portRoute(id, port) + (path.startsWith('/') ? path : `/${path}`),
    ...(init.headers ? { headers: init.headers } : {}), ...(init.body !== undefined ? { body: init.body } : {}),
    ...(init.timeoutMs !== undefined ? { timeoutMs: init.timeoutMs } : {}), ...(init.signal ? { signal: init.signal } : {}),
  });
  const proxied = /\bhutchd\b/.test(String(res.headers['via'] ?? ''));
  if (!proxied && (res.statusCode ?? 500) >= 400) throw await errorOf(res);
  return new PortResponse(res);
}
