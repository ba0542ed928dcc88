// Forwarding to upstream resolvers: one attempt per upstream in turn, each with its share of the
// query's time budget, over UDP (then TCP when the answer is truncated) or over TCP directly.
// An answer is taken only when it matches the question we sent under a fresh random id, from the
// address we sent it to; anything else from the wire is ignored, never trusted.
import * as crypto from 'node:crypto';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { HutchError } from '../../errors.js';
import {
  DNS_HEADER_SIZE, DnsRcode, parseHeader, parseResponse, withId,
  type DnsQuestion, type DnsResponse,
} from './message.js';

/** An address and port a DNS server listens on or is reached at. */
export interface DnsEndpoint { address: string; port: number }

/** An upstream's answer: the raw message (with our id, not the client's) and what it says. */
export interface UpstreamAnswer { message: Buffer; response: DnsResponse }

/** Rcodes after which the next upstream is tried: this one could not answer, another may. */
const TRY_NEXT = new Set<number>([DnsRcode.SERVFAIL, DnsRcode.REFUSED, DnsRcode.NOTIMP, DnsRcode.FORMERR]);

/** The nameservers of a resolv.conf (the host's by default), on port 53; empty when there is none or it cannot be read. */
export function hostResolvers(resolvConfPath = '/etc/resolv.conf'): DnsEndpoint[] {
  let text: string;
  try {
    text = fs.readFileSync(resolvConfPath, 'utf8');
  } catch {
    return [];
  }
  const out: DnsEndpoint[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && net.isIP(m[1]!.replace(/%.*$/, '')) !== 0) out.push({ address: m[1]!, port: 53 });
  }
  return out;
}

function sameQuestion(a: DnsQuestion | null, b: DnsQuestion): boolean {
  return a !== null && a.name === b.name && a.type === b.type && a.class === b.class;
}

/** The parsed answer if `message` answers `id` and `question`, else null (late, spoofed, or garbage). */
function matching(message: Buffer, id: number, question: DnsQuestion): UpstreamAnswer | null {
  if (message.length < DNS_HEADER_SIZE || parseHeader(message).id !== id) return null;
  try {
    const response = parseResponse(message);
    return sameQuestion(response.question, question) ? { message, response } : null;
  } catch {
    return null;
  }
}

function timedOut(up: DnsEndpoint): HutchError {
  return new HutchError('ETIMEDOUT', `DNS upstream ${up.address}:${up.port} did not answer in time`);
}

/** One UDP exchange with `up`: resolves with the first matching answer; rejects on timeout, error or abort. */
export function exchangeUdp(up: DnsEndpoint, query: Buffer, question: DnsQuestion, timeoutMs: number, signal: AbortSignal): Promise<UpstreamAnswer> {
  return new Promise((resolve, reject) => {
    const id = crypto.randomInt(0x10000);
    // A socket of its own per attempt: a random source port, and nothing to demultiplex.
    const sock = dgram.createSocket(net.isIPv6(up.address.replace(/%.*$/, '')) ? 'udp6' : 'udp4');
    let settled = false;
    const finish = (err: Error | null, answer?: UpstreamAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      try { sock.close(); } catch { /* already closed */ }
      if (err) reject(err); else resolve(answer!);
    };
    const onAbort = (): void => finish(new HutchError('ESTATE', 'DNS server closed'));
    const timer = setTimeout(() => finish(timedOut(up)), timeoutMs);
    signal.addEventListener('abort', onAbort);
    sock.on('error', (e) => finish(new HutchError('ENETWORK', `DNS upstream ${up.address}:${up.port}: ${e.message}`, { cause: e })));
    sock.on('message', (msg, rinfo) => {
      if (rinfo.port !== up.port) return;
      const answer = matching(msg, id, question);
      if (answer) finish(null, answer);
    });
    // connect(): the kernel then delivers only the upstream's datagrams, and reports ICMP refusals.
    const failed = (e: Error): void => finish(new HutchError('ENETWORK', `DNS upstream ${up.address}:${up.port}: ${e.message}`, { cause: e }));
    sock.connect(up.port, up.address, (e?: Error) => {
      if (settled) return;
      if (e) { failed(e); return; }
      try {
        sock.send(withId(query, id), (err) => { if (err) failed(err); });
      } catch (err) {
        failed(err as Error);
      }
    });
  });
}

/** One TCP exchange with `up` (a length-prefixed query and answer, RFC 7766); rejects on timeout, error or abort. */
export function exchangeTcp(up: DnsEndpoint, query: Buffer, question: DnsQuestion, timeoutMs: number, signal: AbortSignal): Promise<UpstreamAnswer> {
  return new Promise((resolve, reject) => {
    const id = crypto.randomInt(0x10000);
    const sock = net.connect({ host: up.address, port: up.port });
    let buffered: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | null, answer?: UpstreamAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      if (err) reject(err); else resolve(answer!);
    };
    const onAbort = (): void => finish(new HutchError('ESTATE', 'DNS server closed'));
    const timer = setTimeout(() => finish(timedOut(up)), timeoutMs);
    signal.addEventListener('abort', onAbort);
    sock.on('error', (e) => finish(new HutchError('ENETWORK', `DNS upstream ${up.address}:${up.port} (tcp): ${e.message}`, { cause: e })));
    sock.on('close', () => finish(new HutchError('ENETWORK', `DNS upstream ${up.address}:${up.port} (tcp) closed without an answer`)));
    sock.on('connect', () => {
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(query.length, 0);
      sock.write(Buffer.concat([prefix, withId(query, id)]));
    });
    sock.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 2) return;
      const len = buffered.readUInt16BE(0);
      if (buffered.length < 2 + len) return;
      const answer = matching(buffered.subarray(2, 2 + len), id, question);
      finish(answer ? null : new HutchError('EPROTO', `DNS upstream ${up.address}:${up.port} (tcp) sent an answer to another question`), answer ?? undefined);
    });
  });
}

/**
 * Asks the upstreams in turn until one answers, within `timeoutMs` in all: each gets an equal share
 * of the time left. An answer saying SERVFAIL, REFUSED, NOTIMP or FORMERR moves on to the next; if
 * all do, the last such answer is returned. Null when none answered at all.
 */
export async function forwardQuery(
  upstreams: DnsEndpoint[], query: Buffer, question: DnsQuestion, o: { tcp: boolean; timeoutMs: number; signal: AbortSignal },
): Promise<UpstreamAnswer | null> {
  const deadline = Date.now() + o.timeoutMs;
  let last: UpstreamAnswer | null = null;
  for (let i = 0; i < upstreams.length && !o.signal.aborted; i++) {
    const up = upstreams[i]!;
    const attemptEnd = Date.now() + (deadline - Date.now()) / (upstreams.length - i);
    const left = (): number => Math.max(1, attemptEnd - Date.now());
    try {
      let answer = o.tcp ? await exchangeTcp(up, query, question, left(), o.signal) : await exchangeUdp(up, query, question, left(), o.signal);
      // A truncated UDP answer may lack addresses: the whole answer comes over TCP from the same upstream.
      if (!o.tcp && answer.response.header.tc) answer = await exchangeTcp(up, query, question, left(), o.signal);
      if (!TRY_NEXT.has(answer.response.header.rcode)) return answer;
      last = answer;
    } catch {
      // Timed out, refused or garbled: the next upstream may do better.
    }
    if (Date.now() >= deadline) break;
  }
  return last;
}
