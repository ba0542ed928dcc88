// HTTP proxies for registry requests, read from the environment the way Go's net/http does (podman,
// skopeo and containerd use it): HTTPS_PROXY for https, HTTP_PROXY for http, NO_PROXY exceptions,
// loopback never proxied. https goes through a CONNECT tunnel with TLS to the registry inside it.
import { createHash } from 'node:crypto';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls, { type TLSSocket } from 'node:tls';
import { domainToASCII } from 'node:url';
import { HutchError } from '../../errors.js';

/** The code of a connection that could not be made in time (a host that drops packets). */
export const CONNECT_TIMEOUT = 'HUTCH_CONNECT_TIMEOUT';

/** The proxy one request goes through. */
export interface ProxyTarget {
  /** host and port to connect to (port defaulted). */
  hostname: string;
  port: number;
  /** An https:// proxy: TLS to the proxy itself (always with certificate checks). */
  tls: boolean;
  /** Names the proxy in messages, never with credentials: `proxy http://10.0.0.1:3128 (from HTTPS_PROXY)`. */
  name: string;
  /** The variable it came from. */
  variable: string;
  /** `Basic …` when the URL carries user:password. */
  authorization?: string;
  /** Identifies the proxy (with a hash of its credentials) for connection pooling. */
  key: string;
}

/** Proxy settings as read from the environment, before any URL is parsed. */
interface ProxyEnv {
  http?: { variable: string; value: string };
  https?: { variable: string; value: string };
  noProxy: NoProxyRule[];
}

/** One NO_PROXY entry: every host, an IP network, an IP (and port), or a domain (and port). */
type NoProxyRule =
  | { kind: 'all' }
  | { kind: 'cidr'; blocks: net.BlockList; family: 'ipv4' | 'ipv6' }
  | { kind: 'ip'; blocks: net.BlockList; port: string; family: 'ipv4' | 'ipv6' }
  | { kind: 'domain'; suffix: string; exact: boolean; port: string };

/** The first of the names that is set and not empty (Go's order: upper case first). */
function fromEnv(env: NodeJS.ProcessEnv, ...names: string[]): { variable: string; value: string } | undefined {
  for (const variable of names) {
    const value = env[variable]?.trim();
    if (value) return { variable, value };
  }
  return undefined;
}

function ipFamily(ip: string): 'ipv4' | 'ipv6' {
  return net.isIPv6(ip) ? 'ipv6' : 'ipv4';
}

const MAPPED = new net.BlockList();
MAPPED.addSubnet('::ffff:0:0', 96, 'ipv6');

/** The family an entry's address matches: an IPv4-mapped IPv6 address matches IPv4 hosts too (as in Go). */
function entryFamily(ip: string): 'ipv4' | 'ipv6' {
  return net.isIPv6(ip) && !MAPPED.check(ip, 'ipv6') ? 'ipv6' : 'ipv4';
}

/** Parses a NO_PROXY list as Go does; entries it cannot read are ignored. */
export function parseNoProxy(list: string): NoProxyRule[] {
  const rules: NoProxyRule[] = [];
  for (const raw of list.split(',')) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return [{ kind: 'all' }];
    const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
    if (cidr && net.isIP(cidr[1]!)) {
      const blocks = new net.BlockList();
      try {
        blocks.addSubnet(cidr[1]!, Number(cidr[2]), ipFamily(cidr[1]!));
      } catch {
        continue; // a prefix longer than the address: not a network
      }
      rules.push({ kind: 'cidr', blocks, family: entryFamily(cidr[1]!) });
      continue;
    }
    // host:port, [v6]:port, or a bare host / IP (a bare IPv6 address has colons but no port).
    const withPort = /^\[([^\]]*)\]:(\d*)$/.exec(entry) ?? (net.isIPv6(entry) ? null : /^([^:]*):(\d*)$/.exec(entry));
    let host = withPort ? withPort[1]! : entry.replace(/^\[(.*)\]$/, '$1');
    const port = withPort ? withPort[2]! : '';
    if (!host) continue;
    if (net.isIP(host)) {
      const blocks = new net.BlockList();
      blocks.addAddress(host, ipFamily(host));
      rules.push({ kind: 'ip', blocks, port, family: entryFamily(host) });
      continue;
    }
    if (host.startsWith('*.')) host = host.slice(1);
    // `example.com` also matches the name itself; `.example.com` only names under it.
    const exact = !host.startsWith('.');
    // URLs carry international names in punycode: so must the entry (Go converts it too).
    if (/[^\x00-\x7f]/.test(host)) {
      const ascii = domainToASCII(exact ? host : host.slice(1));
      if (!ascii) continue;
      host = exact ? ascii : `.${ascii}`;
    }
    rules.push({ kind: 'domain', suffix: exact ? `.${host}` : host, exact, port });
  }
  return rules;
}

/** Whether NO_PROXY (or loopback) sends `host` (lower case, no brackets) on `port` directly. */
export function bypassesProxy(host: string, port: string, rules: NoProxyRule[]): boolean {
  if (host === 'localhost') return true;
  const ip = net.isIP(host) ? host : undefined;
  if (ip && isLoopbackIp(ip)) return true;
  // An IPv6 entry (other than an IPv4-mapped one) never matches an IPv4 host, as in Go; node's
  // BlockList would match `::/0` with any IPv4 address.
  const fits = (rule: { blocks: net.BlockList; family: 'ipv4' | 'ipv6' }): boolean =>
    !!ip && !(rule.family === 'ipv6' && net.isIPv4(ip)) && rule.blocks.check(ip, ipFamily(ip));
  for (const rule of rules) {
    if (rule.kind === 'all') return true;
    if (rule.kind === 'cidr' && fits(rule)) return true;
    if (rule.kind === 'ip' && fits(rule) && (!rule.port || rule.port === port)) return true;
    if (rule.kind === 'domain' && (host.endsWith(rule.suffix) || (rule.exact && host === rule.suffix.slice(1)))) {
      if (!rule.port || rule.port === port) return true;
    }
  }
  return false;
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

function isLoopbackIp(ip: string): boolean {
  return LOOPBACK.check(ip, ipFamily(ip));
}

let cached: { key: string; env: ProxyEnv } | undefined;

/** The proxy settings of `env` (cached while the variables stay the same). */
function proxyEnv(env: NodeJS.ProcessEnv): ProxyEnv {
  const https = fromEnv(env, 'HTTPS_PROXY', 'https_proxy');
  const http = fromEnv(env, 'HTTP_PROXY', 'http_proxy');
  const noProxy = fromEnv(env, 'NO_PROXY', 'no_proxy')?.value ?? '';
  const key = JSON.stringify([https, http, noProxy]);
  if (cached?.key !== key) cached = { key, env: { ...(https ? { https } : {}), ...(http ? { http } : {}), noProxy: parseNoProxy(noProxy) } };
  return cached.env;
}

/**
 * `value` with any user:password@ taken out, for messages: everything up to the last '@' (a value that
 * does not parse may have a '/' or '@' in its password, so the URL's own parts cannot be trusted).
 */
function redact(value: string): string {
  const at = value.lastIndexOf('@');
  if (at < 0) return value;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(value)?.[0] ?? '';
  return `${scheme}***${value.slice(at)}`;
}

/** Parses a proxy URL: a full URL or `host[:port]` (http assumed); EINVAL naming the variable when it is not one. */
export function parseProxyUrl(variable: string, value: string): ProxyTarget {
  const invalid = (why: string): HutchError =>
    new HutchError('EINVAL', `${variable} is not a usable proxy URL (${why}): "${redact(value)}"; expected http[s]://[USER:PASSWORD@]HOST[:PORT]`, { id: variable });
  let url: URL;
  try {
    url = new URL(value.includes('://') ? value : `http://${value}`);
  } catch {
    throw invalid('it does not parse as a URL');
  }
  if (url.protocol === 'socks5:' || url.protocol === 'socks5h:') {
    throw new HutchError('EUNSUPPORTED', `${variable} names a SOCKS proxy (${url.protocol}//${url.host}); only http:// and https:// proxies are supported`, { id: variable });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(`the scheme ${url.protocol.slice(0, -1)} is not a proxy scheme`);
  if (!url.hostname) throw invalid('it has no host');
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const secure = url.protocol === 'https:';
  const port = Number(url.port || (secure ? 443 : 80));
  const target: ProxyTarget = { hostname, port, tls: secure, name: `proxy ${url.protocol}//${url.host} (from ${variable})`, variable,
    key: `${url.host}#${createHash('sha256').update(url.href).digest('hex').slice(0, 16)}` };
  if (url.username || url.password) {
    let user: string;
    let password: string;
    try {
      user = decodeURIComponent(url.username);
      password = decodeURIComponent(url.password);
    } catch {
      throw invalid('its user name or password has a bad %-escape');
    }
    target.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  }
  return target;
}

/** The proxy for `url` under `env`, or undefined when it goes directly (no variable, NO_PROXY, loopback). */
export function proxyFor(url: URL, env: NodeJS.ProcessEnv = process.env): ProxyTarget | undefined {
  const settings = proxyEnv(env);
  const chosen = url.protocol === 'https:' ? settings.https : url.protocol === 'http:' ? settings.http : undefined;
  if (!chosen) return undefined;
  const host = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  if (bypassesProxy(host, port, settings.noProxy)) return undefined;
  return parseProxyUrl(chosen.variable, chosen.value);
}

/**
 * A failure on the way to the proxy or in asking it for a tunnel, before the registry was reached.
 * `transient` undefined: judge the cause as any connection error, naming `peer`.
 */
export class ProxyFailure extends Error {
  constructor(readonly peer: string, message: string, readonly transient?: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProxyFailure';
  }
}

/** The error for a proxy's 407: credentials missing or refused. */
export function proxyAuthError(proxy: ProxyTarget, target: string, status: string): HutchError {
  const message = proxy.authorization
    ? `${proxy.name} refused the credentials given in ${proxy.variable} for ${target} (${status})`
    : `${proxy.name} requires credentials for ${target} (${status}); give them in ${proxy.variable} as http://USER:PASSWORD@HOST:PORT`;
  return new HutchError('EAUTH', message, { id: proxy.variable });
}

/** What a proxy's refusal of CONNECT means: 407/403 EAUTH, 5xx worth retrying, anything else ENETWORK. */
function refusal(proxy: ProxyTarget, target: string, status: number, statusLine: string): Error {
  if (status === 407) return proxyAuthError(proxy, target, statusLine);
  if (status === 403) return new HutchError('EAUTH', `${proxy.name} refused to tunnel to ${target} (${statusLine})`, { id: proxy.variable });
  if (status >= 500) return new ProxyFailure(proxy.name, `${proxy.name} could not tunnel to ${target} (${statusLine})`, true);
  return new HutchError('ENETWORK', `${proxy.name} refused to tunnel to ${target} (${statusLine})`, { id: proxy.variable });
}

/** Opens a CONNECT tunnel through `proxy` to `target` (host:port); resolves with the raw socket. */
export function openTunnel(proxy: ProxyTarget, target: string, connectTimeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = proxy.tls
      ? tls.connect({ host: proxy.hostname, port: proxy.port, ...(net.isIP(proxy.hostname) ? {} : { servername: proxy.hostname }) })
      : net.connect({ host: proxy.hostname, port: proxy.port });
    let answered = false;
    let head = Buffer.alloc(0);
    const fail = (e: Error): void => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    };
    const timer = setTimeout(() => fail(new ProxyFailure(proxy.name, `no tunnel from ${proxy.name} within ${connectTimeoutMs} ms`, undefined,
      { cause: Object.assign(new Error(`${proxy.name} did not open a tunnel to ${target} within ${connectTimeoutMs} ms`), { code: CONNECT_TIMEOUT }) })), connectTimeoutMs);
    const onError = (e: Error): void => fail(new ProxyFailure(proxy.name, e.message, undefined, { cause: e }));
    const onClose = (): void => fail(new ProxyFailure(proxy.name, `${proxy.name} closed the connection before answering CONNECT ${target}`, true));
    socket.on('error', onError);
    socket.once('close', onClose);
    socket.once(proxy.tls ? 'secureConnect' : 'connect', () => {
      const auth = proxy.authorization ? `Proxy-Authorization: ${proxy.authorization}\r\n` : '';
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`);
    });
    // Read with 'readable' (not 'data') so nothing after the answer is consumed: TLS takes the socket over.
    const onReadable = (): void => {
      for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null;) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > 16 * 1024) fail(new HutchError('ENETWORK', `${proxy.name} sent an over-long answer to CONNECT ${target}`, { id: proxy.variable }));
          continue;
        }
        socket.off('readable', onReadable);
        // Shown in messages: one line, and no terminal escapes from whatever the proxy sent.
        const statusLine = head.subarray(0, head.indexOf('\r\n')).toString('latin1').replace(/[\x00-\x1f\x7f-\x9f]/g, '?');
        const m = /^HTTP\/1\.[01] (\d{3})\b ?(.*)$/.exec(statusLine);
        const status = m ? Number(m[1]) : 0;
        if (!m) return fail(new HutchError('ENETWORK', `${proxy.name} did not answer CONNECT ${target} with HTTP: "${statusLine.slice(0, 80)}"`, { id: proxy.variable }));
        if (status < 200 || status > 299) return fail(refusal(proxy, target, status, `${m[1]} ${m[2]}`.trim()));
        // A proxy that speaks before the client's TLS hello is not a tunnel.
        if (head.length > end + 4) return fail(new HutchError('ENETWORK', `${proxy.name} sent data before the TLS handshake with ${target}`, { id: proxy.variable }));
        answered = true;
        clearTimeout(timer);
        socket.off('error', onError);
        socket.off('close', onClose);
        resolve(socket);
        return;
      }
    };
    socket.on('readable', onReadable);
  });
}

/** How a request through a TunnelAgent names its proxy and its connect limit (passed through the request options). */
export interface TunnelRequestOptions { hutchProxy: ProxyTarget; hutchConnectTimeoutMs: number }

/**
 * An https agent whose connections are CONNECT tunnels through the request's proxy, with TLS to the
 * registry inside (certificate checks as the agent's options say). Pooled per registry and proxy.
 */
export class TunnelAgent extends https.Agent {
  override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const { hutchProxy: proxy, hutchConnectTimeoutMs: limit } = options as https.RequestOptions & TunnelRequestOptions;
    const host = String(options.host ?? options.hostname ?? '').replace(/^\[(.*)\]$/, '$1');
    const target = `${net.isIPv6(host) ? `[${host}]` : host}:${options.port ?? 443}`;
    openTunnel(proxy, target, limit).then((raw) => {
      const socket = super.createConnection({ ...options, socket: raw } as https.RequestOptions) as TLSSocket;
      // The TLS handshake has the same short limit as the connection.
      const timer = setTimeout(() => socket.destroy(Object.assign(new Error(`TLS with ${target} through ${proxy.name} did not finish within ${limit} ms`), { code: CONNECT_TIMEOUT })), limit);
      socket.once('secureConnect', () => clearTimeout(timer));
      socket.once('close', () => clearTimeout(timer));
      // An idle pooled socket must not keep the process alive: unref the tunnel under it too.
      const unref = socket.unref.bind(socket);
      const ref = socket.ref.bind(socket);
      socket.unref = () => { raw.unref(); return unref(); };
      socket.ref = () => { raw.ref(); return ref(); };
      callback?.(null, socket);
    }, (e: unknown) => callback?.(e instanceof Error ? e : new Error(String(e)), undefined as unknown as Duplex));
    return undefined;
  }

  override getName(options?: https.RequestOptions): string {
    const proxy = (options as (https.RequestOptions & Partial<TunnelRequestOptions>) | undefined)?.hutchProxy;
    return `${super.getName(options)}:via:${proxy?.key ?? ''}`;
  }
}
