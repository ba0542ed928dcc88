// HTTP for the registry client over node:http/https: one request with timeouts and redirects, body
// reading with a size cap, and a retry loop with exponential back-off for transient failures.
// Requests go through the proxy the environment names (proxy.ts): http as absolute-URI requests to
// the proxy, https through CONNECT tunnels.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { HutchError, errnoCode, isHutchError } from '../../errors.js';
import { CONNECT_TIMEOUT, ProxyFailure, TunnelAgent, proxyAuthError, proxyFor, type ProxyTarget, type TunnelRequestOptions } from './proxy.js';

/** A response whose body has not been read yet. */
export interface Exchange {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
  /** Where the answer came from (after redirects). */
  url: URL;
}

/** Agents with keep-alive, one set per client (idle sockets do not hold the process open). */
export interface Agents {
  http: http.Agent; https: https.Agent; insecureHttps: https.Agent;
  /** https through a proxy's CONNECT tunnels, with and without certificate checks. */
  tunnel: TunnelAgent; insecureTunnel: TunnelAgent;
}

/** Makes the keep-alive agents of one client. */
export function makeAgents(): Agents {
  return {
    http: new http.Agent({ keepAlive: true, maxSockets: 16 }),
    https: new https.Agent({ keepAlive: true, maxSockets: 16 }),
    insecureHttps: new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false }),
    tunnel: new TunnelAgent({ keepAlive: true, maxSockets: 16 }),
    insecureTunnel: new TunnelAgent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false }),
  };
}

/** A failure worth another attempt: a network error, a 5xx or a 429 (with the wait the server asked for). */
export class TransientFailure extends Error {
  constructor(message: string, readonly retryAfterMs?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransientFailure';
  }
}

// Errors of the connection itself that another attempt may not meet.
const TRANSIENT_ERRNO = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH',
  'EHOSTUNREACH', 'ECONNABORTED', 'EHOSTDOWN', 'ENETDOWN', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET']);

/** What to say about a failed connection, and whether it is worth retrying. */
export function describeNetworkError(e: unknown, host: string): { message: string; transient: boolean; connect?: boolean; tls?: boolean } {
  // On the way to a proxy: say so, and judge the cause as any connection error.
  if (e instanceof ProxyFailure) {
    if (e.transient !== undefined) return { message: e.message, transient: e.transient };
    const why = describeNetworkError(e.cause, e.peer);
    // --insecure is about registries: a proxy's certificate is always checked.
    return why.tls ? { message: why.message.replace(/; for a plain-http.*$/, ''), transient: false } : why;
  }
  const code = errnoCode(e) ?? '';
  // OpenSSL's messages span lines and carry source paths: keep the reason only.
  const raw = e instanceof Error ? e.message : String(e);
  const text = (/SSL routines:[^:]*:([^:\n]+)/.exec(raw)?.[1] ?? raw.split('\n')[0]!).trim();
  if (code === 'ECONNREFUSED') return { message: `connection to ${host} refused`, transient: true };
  if (code === 'ENOTFOUND') return { message: `cannot resolve the host name of ${host}`, transient: false };
  if (code === 'ETIMEDOUT') return { message: `${host} did not answer in time`, transient: true };
  if (code === CONNECT_TIMEOUT) return { message: text, transient: true, connect: true };
  if (code.startsWith('ERR_SSL') || code.startsWith('CERT_') || code.includes('CERT') || code === 'EPROTO' || /SSL|certificate/i.test(text)) {
    return { message: `TLS with ${host} failed (${text}); for a plain-http or self-signed registry use --insecure`, transient: false, tls: true };
  }
  return { message: `connection to ${host} failed: ${text}`, transient: TRANSIENT_ERRNO.has(code) || /socket hang up|aborted/i.test(text) };
}

/** How one request is sent. */
export interface SendOptions {
  method?: 'GET' | 'HEAD' | 'POST';
  headers: Record<string, string>;
  /** Request body (a token POST's form); sent again on a redirect to the same origin only. */
  body?: Buffer;
  timeoutMs: number;
  /** Limit for establishing the connection (TCP and TLS), shorter than `timeoutMs`. */
  connectTimeoutMs: number;
  agents: Agents;
  /** Skip TLS certificate checks (insecure registries). */
  insecureTls: boolean;
  maxRedirects?: number;
}

function timeoutError(host: string, ms: number): Error {
  return Object.assign(new Error(`${host} did not answer within ${ms} ms`), { code: 'ETIMEDOUT' });
}

/** Sends one request; resolves at the response headers. Follows redirects, dropping Authorization (and refusing to resend a body) when the origin changes. */
export async function send(url: URL, opts: SendOptions): Promise<Exchange> {
  let current = url;
  let headers = { ...opts.headers };
  for (let hop = 0; ; hop++) {
    const ex = await sendOnce(current, headers, opts);
    const location = ex.headers.location;
    if (![301, 302, 303, 307, 308].includes(ex.status) || !location) return ex;
    ex.body.resume();
    if (hop >= (opts.maxRedirects ?? 5)) throw new HutchError('EPROTO', `too many redirects from ${url.host}${url.pathname}`, { id: url.href });
    const next = new URL(location, current);
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new HutchError('EPROTO', `redirect to an unsupported URL ${next.href}`, { id: url.href });
    // Credentials are for the registry only: a blob store elsewhere must not see them, nor may they
    // go out in clear after an https -> http redirect on the same host (the origin includes the scheme).
    if (next.origin !== current.origin) {
      // A body is a token POST's form, which holds a refresh token: never sent on to another origin.
      if (opts.body) throw new HutchError('EPROTO', `${current.host} redirected a token request to ${next.protocol}//${next.host}; its credentials are not sent on`, { id: url.href });
      headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'));
    }
    current = next;
  }
}

function sendOnce(url: URL, headers: Record<string, string>, opts: SendOptions): Promise<Exchange> {
  const secure = url.protocol === 'https:';
  const proxy = proxyFor(url);
  if (proxy && !secure) return sendThroughProxy(url, headers, opts, proxy);
  const lib = secure ? https : http;
  const agent = secure
    ? (proxy ? (opts.insecureTls ? opts.agents.insecureTunnel : opts.agents.tunnel) : (opts.insecureTls ? opts.agents.insecureHttps : opts.agents.https))
    : opts.agents.http;
  const tunnel: TunnelRequestOptions | object = proxy ? { hutchProxy: proxy, hutchConnectTimeoutMs: opts.connectTimeoutMs } : {};
  return exchange(lib.request(url, { method: opts.method ?? 'GET', headers, agent, timeout: opts.timeoutMs, ...tunnel }), url, opts, url.host, secure);
}

/** Plain http through a proxy: the absolute URL as the request target, sent to the proxy. */
function sendThroughProxy(url: URL, headers: Record<string, string>, opts: SendOptions, proxy: ProxyTarget): Promise<Exchange> {
  const sent = { ...headers, Host: url.host, ...(proxy.authorization ? { 'Proxy-Authorization': proxy.authorization } : {}) };
  const req = (proxy.tls ? https : http).request({
    host: proxy.hostname, port: proxy.port, path: url.href, method: opts.method ?? 'GET', headers: sent,
    agent: proxy.tls ? opts.agents.https : opts.agents.http, timeout: opts.timeoutMs,
    // Node would take the TLS name from the Host header, which names the registry here.
    ...(proxy.tls ? { servername: net.isIP(proxy.hostname) ? '' : proxy.hostname } : {}),
  });
  return exchange(req, url, opts, proxy.name, proxy.tls).then(
    (ex) => {
      if (ex.status !== 407) return ex;
      ex.body.resume();
      throw proxyAuthError(proxy, url.host, `${ex.status} ${ex.body.statusMessage ?? ''}`.trim());
    },
    (e: unknown) => {
      // Not connected: the proxy is what could not be reached.
      if (isHutchError(e) || !(e as { beforeConnect?: boolean }).beforeConnect) throw e;
      throw new ProxyFailure(proxy.name, e instanceof Error ? e.message : String(e), undefined, { cause: e });
    });
}

/** Sends `req` with the timeouts of `opts`; resolves at the response headers. `peer` names who is connected to. */
function exchange(req: http.ClientRequest, url: URL, opts: SendOptions, peer: string, secure: boolean): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    let connected = false;
    req.on('response', (res) => {
      // The socket's idle timeout keeps running while the body streams: a stalled body fails too.
      res.setTimeout(opts.timeoutMs, () => res.destroy(timeoutError(url.host, opts.timeoutMs)));
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url });
    });
    req.on('timeout', () => req.destroy(timeoutError(url.host, opts.timeoutMs)));
    // A dropped SYN would otherwise wait the whole request timeout, on every attempt.
    req.on('socket', (socket) => {
      if (!socket.connecting) { connected = true; return; }
      const timer = setTimeout(() => req.destroy(Object.assign(new Error(`could not connect to ${peer} within ${opts.connectTimeoutMs} ms`), { code: CONNECT_TIMEOUT })), opts.connectTimeoutMs);
      socket.once(secure ? 'secureConnect' : 'connect', () => { connected = true; clearTimeout(timer); });
      socket.once('close', () => clearTimeout(timer));
    });
    req.on('error', (e) => reject(connected || typeof e !== 'object' ? e : Object.assign(e, { beforeConnect: true })));
    req.end(opts.body);
  });
}

/** Reads a whole body, refusing more than `max` bytes (checked against Content-Length first). */
export async function readBody(ex: Exchange, max: number, what: string): Promise<Buffer> {
  const declared = Number(ex.headers['content-length'] ?? NaN);
  if (declared > max) {
    ex.body.destroy();
    throw new HutchError('EPROTO', `${what} is ${declared} bytes, more than the ${max} allowed`, { id: what });
  }
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of ex.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) {
      ex.body.destroy();
      throw new HutchError('EPROTO', `${what} is more than the ${max} bytes allowed`, { id: what });
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

/** The wait a Retry-After header asks for (seconds or an HTTP date), in ms, at most `capMs`. */
export function retryAfterMs(value: string | string[] | undefined, capMs: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  const ms = /^\d+$/.test(v.trim()) ? Number(v) * 1000 : Date.parse(v) - Date.now();
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), capMs) : undefined;
}

/** How the retry loop waits. */
export interface RetryPolicy {
  /** Attempts in all (at least 1). */
  attempts: number;
  /** First back-off; doubles each attempt, with jitter, up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Back-off before attempt `n+1`: exponential with ±25% jitter, or what the server asked for. */
export function backoffMs(policy: RetryPolicy, attempt: number, asked?: number): number {
  if (asked !== undefined) return Math.min(asked, policy.maxDelayMs);
  const exp = Math.min(policy.baseDelayMs * 2 ** (attempt - 1), policy.maxDelayMs);
  return Math.round(exp * (0.75 + Math.random() * 0.5));
}

/**
 * Runs `attempt` until it succeeds, retrying transient failures (TransientFailure, connection errors)
 * with back-off; after the last attempt they become ENETWORK naming `what`. Other errors pass at once.
 */
export async function withRetries<T>(what: string, host: string, policy: RetryPolicy, attempt: (n: number) => Promise<T>): Promise<T> {
  let connectTimeouts = 0;
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (e) {
      if (isHutchError(e)) throw e;
      const transient: { message: string; transient: boolean; connect?: boolean } =
        e instanceof TransientFailure ? { message: e.message, transient: true } : describeNetworkError(e, host);
      // A host that cannot be connected to twice in a row is down: fail in seconds, not minutes.
      if (transient.connect) connectTimeouts++;
      if (!transient.transient || n >= policy.attempts || connectTimeouts >= 2) {
        const tries = n > 1 ? ` (gave up after ${n} attempts)` : '';
        throw new HutchError('ENETWORK', `${what}: ${transient.message}${tries}`, { id: what, cause: e });
      }
      const wait = backoffMs(policy, n, e instanceof TransientFailure ? e.retryAfterMs : undefined);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
