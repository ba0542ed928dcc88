// hutch's DNS server for sandboxes: it listens on bridge gateway addresses (UDP and TCP), answers
// the names of sandboxes on the same network itself, refuses names a sandbox's policy denies, and
// forwards the rest upstream, reporting the addresses each forwarded answer gave so that the
// network layer can allow them for that sandbox before the sandbox sees the answer.
//
// Policy denials are answered REFUSED, not NXDOMAIN: REFUSED says "not for you" without claiming
// the name does not exist, carries no SOA and so is cached as nothing, and shows as a policy
// denial (not a typo) in the sandbox's dig or logs.
// The contract in full: docs/dns.md.
import * as dgram from 'node:dgram';
import { setMaxListeners } from 'node:events';
import * as net from 'node:net';
import { HutchError } from '../../errors.js';
import {
  DNS_CLASS_IN, DNS_HEADER_SIZE, DNS_UDP_CLASSIC_SIZE, DnsRcode, DnsType, addressesInAnswer, buildFormatError,
  buildResponse, parseQuery, withId,
  type DnsAddress, type DnsAnswerRecord, type DnsQuery,
} from './message.js';
import { forwardQuery, hostResolvers, type DnsEndpoint } from './upstream.js';

/** What to do with a sandbox's question: forward it, refuse it, or answer it from the local table. */
export type DnsDecision = 'allow' | 'refuse' | 'local';

export interface DnsServerOptions {
  /** Addresses to listen on (UDP and TCP each); port 0 picks one, the same for both. */
  listen: DnsEndpoint[];
  /** Where forwarded questions go, tried in order; the host's resolv.conf nameservers when omitted. */
  upstreams?: DnsEndpoint[];
  /** Where one client's questions go instead (its sandbox's own servers); null = `upstreams`. */
  upstreamsFor?(clientIp: string): DnsEndpoint[] | null;
  /** The sandbox policy for a name (lower case, no trailing dot); a throw answers SERVFAIL. */
  decide(clientIp: string, name: string): DnsDecision | Promise<DnsDecision>;
  /** The addresses of a local name (a sandbox on the client's network), or null when there is no such name (NXDOMAIN). */
  localAnswer(clientIp: string, name: string): string[] | null | Promise<string[] | null>;
  /** Called with a forwarded answer's addresses before the client gets it; a throw or rejection answers SERVFAIL instead. */
  onAnswer(clientIp: string, name: string, addrs: DnsAddress[]): void | Promise<void>;
  /** Time for one forwarded question across all upstreams, then SERVFAIL; also each callback's limit (default 4000 ms). */
  timeoutMs?: number;
  /** Questions being answered at once; more are dropped, as a busy resolver does (default 256). */
  maxInFlight?: number;
  /** Of those, from one client: one sandbox cannot take every slot from the others (default 32). */
  maxInFlightPerClient?: number;
  /** TCP connections at once, over all listeners; more are closed at once (default 64). */
  maxTcpConnections?: number;
  /** Of those, from one client (default 8). */
  maxTcpConnectionsPerClient?: number;
  /** A TCP connection with nothing to read or write for this long is closed (default 10000 ms). */
  tcpIdleMs?: number;
  /** TTL of local answers (default 5 s: sandboxes come and go). */
  localTtl?: number;
}

export interface DnsServer {
  /** The addresses listened on, with the ports bound. */
  addresses(): DnsEndpoint[];
  /** Starts listening on one more address (a new bridge); resolves with the address and port bound. */
  addListener(addr: DnsEndpoint): Promise<DnsEndpoint>;
  /** Stops listening on an address (as given to addListener, or as bound), closing its TCP connections. */
  removeListener(addr: DnsEndpoint): Promise<void>;
  /** Stops everything: listeners, TCP connections, upstream exchanges in flight. */
  close(): Promise<void>;
}

/** Queries over one TCP connection answered at once; beyond it the connection is not read from. */
const TCP_PIPELINE = 8;
/** Unsent output a TCP client may leave before it is dropped (it is not reading). */
const TCP_MAX_UNSENT = 256 * 1024;

interface Listener { requested: DnsEndpoint; bound: DnsEndpoint; udp: dgram.Socket; tcp: net.Server; conns: Set<net.Socket> }

/** A client address as the policy knows it: IPv4-mapped IPv6 (from a dual-stack socket) as plain IPv4. */
function clientAddress(a: string | undefined): string {
  if (a === undefined) return '';
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}

function countDown(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 1) - 1;
  if (n <= 0) counts.delete(key); else counts.set(key, n);
}

const sameEndpoint = (a: DnsEndpoint, b: DnsEndpoint): boolean => a.address === b.address && a.port === b.port;

/** Starts the sandbox DNS server on `opts.listen`; resolves once every address is bound. */
export async function startDnsServer(opts: DnsServerOptions): Promise<DnsServer> {
  const upstreams = opts.upstreams ?? hostResolvers();
  const timeoutMs = opts.timeoutMs ?? 4000;
  const maxInFlight = opts.maxInFlight ?? 256;
  const maxPerClient = opts.maxInFlightPerClient ?? 32;
  const maxTcp = opts.maxTcpConnections ?? 64;
  const maxTcpPerClient = opts.maxTcpConnectionsPerClient ?? 8;
  const tcpIdleMs = opts.tcpIdleMs ?? 10_000;
  const localTtl = opts.localTtl ?? 5;
  const listeners: Listener[] = [];
  const tcpConns = new Set<net.Socket>();
  const stop = new AbortController();
  // Every upstream exchange in flight listens for close: up to maxInFlight of them, not a leak.
  setMaxListeners(maxInFlight + 16, stop.signal);
  let inFlight = 0;
  const inFlightByClient = new Map<string, number>();
  const tcpByClient = new Map<string, number>();
  let closed = false;

  /** The answer to one message from a client, or null for no answer at all. */
  async function answer(raw: Buffer, clientIp: string, viaTcp: boolean): Promise<Buffer | null> {
    let query: DnsQuery;
    try {
      query = parseQuery(raw);
    } catch {
      return buildFormatError(raw);
    }
    if (query.header.opcode !== 0) return buildResponse(query, DnsRcode.NOTIMP);
    const { name } = query.question;
    try {
      const decision = await bounded(opts.decide(clientIp, name));
      if (decision === 'refuse') return buildResponse(query, DnsRcode.REFUSED);
      if (decision === 'local') return await answerLocally(query, clientIp, viaTcp);
      if (decision !== 'allow') return buildResponse(query, DnsRcode.SERVFAIL);
      // Never forward to ourselves: a host resolv.conf naming a bridge address would loop.
      const targets = (opts.upstreamsFor?.(clientIp) ?? upstreams).filter((u) => !listeners.some((l) => sameEndpoint(l.bound, u)));
      const got = await forwardQuery(targets, raw, query.question, { tcp: viaTcp, timeoutMs, signal: stop.signal });
      if (got === null) return buildResponse(query, DnsRcode.SERVFAIL);
      if (got.response.header.rcode === DnsRcode.NOERROR) {
        const addrs = addressesInAnswer(got.response.answers, name);
        if (addrs.length > 0) await bounded(opts.onAnswer(clientIp, name, addrs));
      }
      return fit(query, withId(got.message, query.header.id), got.response.header.rcode, viaTcp, false);
    } catch {
      return buildResponse(query, DnsRcode.SERVFAIL);
    }
  }

  /** A callback's result, or ETIMEDOUT after timeoutMs: a stuck callback must not hold a query (and its slot) forever. */
  function bounded<T>(value: T | Promise<T>): Promise<T> {
    if (!(value instanceof Promise)) return Promise.resolve(value);
    let timer: NodeJS.Timeout | undefined;
    const expiry = new Promise<never>((_r, reject) => {
      timer = setTimeout(() => reject(new HutchError('ETIMEDOUT', 'a DNS policy callback did not return in time')), timeoutMs);
    });
    return Promise.race([value, expiry]).finally(() => clearTimeout(timer));
  }

  async function answerLocally(query: DnsQuery, clientIp: string, viaTcp: boolean): Promise<Buffer> {
    const addrs = await bounded(opts.localAnswer(clientIp, query.question.name));
    if (addrs === null) return buildResponse(query, DnsRcode.NXDOMAIN, { authoritative: true });
    const { type } = query.question;
    const records: DnsAnswerRecord[] = query.question.class !== DNS_CLASS_IN ? [] : addrs.flatMap((a): DnsAnswerRecord[] => {
      if (type === DnsType.A && net.isIPv4(a)) return [{ type, ttl: localTtl, data: a }];
      if (type === DnsType.AAAA && net.isIPv6(a)) return [{ type, ttl: localTtl, data: a }];
      return [];
    });
    // A name that exists with no address of the asked type is NOERROR with no records (NODATA).
    return fit(query, buildResponse(query, DnsRcode.NOERROR, { records, authoritative: true }), DnsRcode.NOERROR, viaTcp, true);
  }

  /**
   * `reply`, or what replaces it when it is too big for the transport: over UDP (an answer fetched
   * over TCP, a long local list) header and question with TC set, which sends the client to TCP;
   * over TCP, beyond the 64 KiB a length prefix can say, SERVFAIL.
   */
  function fit(query: DnsQuery, reply: Buffer, rcode: number, viaTcp: boolean, authoritative: boolean): Buffer {
    if (viaTcp) return reply.length <= 0xffff ? reply : buildResponse(query, DnsRcode.SERVFAIL);
    return reply.length <= Math.min(query.udpPayloadSize, 4096) ? reply : buildResponse(query, rcode, { truncated: true, authoritative });
  }

  /** Runs `answer` within the in-flight limit; false when the limit dropped it. */
  function admit(raw: Buffer, clientIp: string, viaTcp: boolean, send: (reply: Buffer) => void, done?: () => void): boolean {
    const mine = inFlightByClient.get(clientIp) ?? 0;
    if (closed || inFlight >= maxInFlight || mine >= maxPerClient) return false;
    inFlight++;
    inFlightByClient.set(clientIp, mine + 1);
    answer(raw, clientIp, viaTcp)
      .then((reply) => { if (reply !== null && !closed) send(reply); })
      .catch(() => undefined) // answer() catches its own; a send to a closed socket is no matter
      .finally(() => {
        inFlight--;
        countDown(inFlightByClient, clientIp);
        done?.();
      });
    return true;
  }

  function onDatagram(udp: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    // Larger than 512 is not a query a stub resolver sends over UDP; a response to us (QR) is never answered.
    if (msg.length < DNS_HEADER_SIZE || msg.length > DNS_UDP_CLASSIC_SIZE || (msg[2]! & 0x80) !== 0) return;
    admit(msg, clientAddress(rinfo.address), false, (reply) => {
      try { udp.send(reply, rinfo.port, rinfo.address); } catch { /* the listener was removed meanwhile */ }
    });
  }

  function onConnection(l: Listener, sock: net.Socket): void {
    const clientIp = clientAddress(sock.remoteAddress);
    const mine = tcpByClient.get(clientIp) ?? 0;
    if (closed || tcpConns.size >= maxTcp || mine >= maxTcpPerClient) {
      sock.destroy();
      return;
    }
    tcpConns.add(sock);
    tcpByClient.set(clientIp, mine + 1);
    l.conns.add(sock);
    sock.on('close', () => { tcpConns.delete(sock); l.conns.delete(sock); countDown(tcpByClient, clientIp); });
    sock.on('error', () => undefined); // a client resetting is its business
    sock.setTimeout(tcpIdleMs, () => sock.destroy());
    let buffered: Buffer = Buffer.alloc(0);
    let pending = 0;
    const send = (reply: Buffer): void => {
      if (sock.destroyed) return;
      if (sock.writableLength > TCP_MAX_UNSENT) { sock.destroy(); return; }
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(reply.length, 0);
      sock.write(Buffer.concat([prefix, reply]));
    };
    const drain = (): void => {
      while (pending < TCP_PIPELINE && buffered.length >= 2) {
        const len = buffered.readUInt16BE(0);
        if (buffered.length < 2 + len) break;
        const msg = Buffer.from(buffered.subarray(2, 2 + len));
        buffered = buffered.subarray(2 + len);
        if (msg.length < DNS_HEADER_SIZE || (msg[2]! & 0x80) !== 0) continue;
        pending++;
        if (!admit(msg, clientIp, true, send, () => { pending--; drain(); })) pending--;
      }
      // Frames are at most 2 + 65535 bytes and taken as soon as whole, so `buffered` stays bounded
      // except while the pipeline is full: then the socket is not read.
      if (pending >= TCP_PIPELINE) sock.pause(); else if (!sock.destroyed) sock.resume();
    };
    sock.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      drain();
    });
  }

  function bindUdp(addr: DnsEndpoint): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      const udp = dgram.createSocket(net.isIPv6(addr.address) ? 'udp6' : 'udp4');
      udp.once('error', reject);
      udp.bind(addr.port, addr.address, () => {
        udp.off('error', reject);
        udp.on('error', () => undefined); // per-datagram send errors (an unreachable client) are not fatal
        resolve(udp);
      });
    });
  }

  function bindTcp(address: string, port: number): Promise<net.Server> {
    return new Promise((resolve, reject) => {
      const srv = net.createServer({ pauseOnConnect: false });
      srv.once('error', reject);
      srv.listen({ host: address, port, exclusive: true }, () => {
        srv.off('error', reject);
        srv.on('error', () => undefined); // after listening, an accept error (EMFILE) must not crash hutchd
        resolve(srv);
      });
    });
  }

  async function addListener(addr: DnsEndpoint): Promise<DnsEndpoint> {
    if (closed) throw new HutchError('ESTATE', 'the DNS server is closed');
    if (net.isIP(addr.address) === 0) throw new HutchError('EINVAL', `DNS listen address ${JSON.stringify(addr.address)} is not an IP address`);
    if (addr.port !== 0 && listeners.some((l) => sameEndpoint(l.bound, addr))) {
      throw new HutchError('EEXIST', `the DNS server already listens on ${addr.address}:${addr.port}`);
    }
    // With port 0 the kernel picks UDP's port, which TCP may find taken: pick again a few times.
    for (let attempt = 0; ; attempt++) {
      const udp = await bindUdp(addr).catch((e: unknown) => {
        throw new HutchError('EINVAL', `DNS server cannot listen on ${addr.address}:${addr.port} (udp): ${(e as Error).message}`, { cause: e });
      });
      const port = udp.address().port;
      try {
        const tcp = await bindTcp(addr.address, port);
        const l: Listener = { requested: addr, bound: { address: addr.address, port }, udp, tcp, conns: new Set() };
        udp.on('message', (msg, rinfo) => onDatagram(udp, msg, rinfo));
        tcp.on('connection', (sock) => onConnection(l, sock));
        listeners.push(l);
        return l.bound;
      } catch (e) {
        udp.close();
        if (addr.port !== 0 || attempt >= 4) {
          throw new HutchError('EINVAL', `DNS server cannot listen on ${addr.address}:${port} (tcp): ${(e as Error).message}`, { cause: e });
        }
      }
    }
  }

  async function closeListener(l: Listener): Promise<void> {
    listeners.splice(listeners.indexOf(l), 1);
    for (const s of l.conns) s.destroy();
    await Promise.all([
      new Promise<void>((r) => { try { l.udp.close(() => r()); } catch { r(); } }),
      new Promise<void>((r) => l.tcp.close(() => r())),
    ]);
  }

  try {
    for (const addr of opts.listen) await addListener(addr);
  } catch (e) {
    closed = true;
    await Promise.all([...listeners].map(closeListener));
    throw e;
  }

  return {
    addresses: () => listeners.map((l) => ({ ...l.bound })),
    addListener,
    async removeListener(addr) {
      const l = listeners.find((x) => sameEndpoint(x.bound, addr)) ?? listeners.find((x) => sameEndpoint(x.requested, addr));
      if (l === undefined) throw new HutchError('ENOTFOUND', `the DNS server does not listen on ${addr.address}:${addr.port}`);
      await closeListener(l);
    },
    async close() {
      if (closed) return;
      closed = true;
      stop.abort();
      await Promise.all([...listeners].map(closeListener));
    },
  };
}
