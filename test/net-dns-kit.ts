// Helpers for the DNS server tests: a fake upstream on loopback, UDP and TCP clients, a server
// with recording callbacks. Every socket here is on 127.0.0.1.
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import {
  DnsRcode, DnsType, buildResponse, parseQuery, startDnsServer,
  type DnsAddress, type DnsAnswerRecord, type DnsDecision, type DnsQuery, type DnsServerOptions,
} from '../src/net/dns/index.js';

/** The only address these tests use, as listener, upstream and client. */
export const LOOPBACK = '127.0.0.1';

export interface FakeUpstream {
  endpoint: { address: string; port: number };
  /** Queries received, by transport. */
  stats: { udp: number; tcp: number };
  close(): Promise<void>;
}

/** A fake upstream on loopback (UDP and TCP, one port): `reply` makes each answer, null for none. */
export async function fakeUpstream(reply: (q: DnsQuery, viaTcp: boolean) => Buffer | Buffer[] | null, attempt = 0): Promise<FakeUpstream> {
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, LOOPBACK, r));
  const port = udp.address().port;
  const conns = new Set<net.Socket>();
  const stats = { udp: 0, tcp: 0 };
  udp.on('message', (msg, rinfo) => {
    stats.udp++;
    const out = reply(parseQuery(msg), false);
    for (const m of out === null ? [] : Array.isArray(out) ? out : [out]) udp.send(m, rinfo.port, rinfo.address);
  });
  const tcp = net.createServer((s) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
    s.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        stats.tcp++;
        const out = reply(parseQuery(msg), true);
        for (const m of out === null ? [] : Array.isArray(out) ? out : [out]) { const p = Buffer.alloc(2); p.writeUInt16BE(m.length); s.write(Buffer.concat([p, m])); }
      }
    });
  });
  const listening = await new Promise<boolean>((r) => {
    tcp.once('error', () => r(false));
    tcp.listen(port, LOOPBACK, () => r(true));
  });
  if (!listening) {
    // The port the kernel gave UDP is taken on TCP (other work on this machine): pick another.
    await new Promise<void>((r) => udp.close(() => r()));
    if (attempt >= 5) throw new Error(`no port free for both UDP and TCP on ${LOOPBACK}`);
    return fakeUpstream(reply, attempt + 1);
  }
  return {
    endpoint: { address: LOOPBACK, port },
    stats,
    async close() {
      for (const s of conns) s.destroy();
      await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
    },
  };
}

/** An upstream answering from a table of name → records (NXDOMAIN for others). */
export function tableReply(table: Map<string, DnsAnswerRecord[]>) {
  return (q: DnsQuery): Buffer => {
    const records = table.get(q.question.name);
    return records === undefined ? buildResponse(q, DnsRcode.NXDOMAIN) : buildResponse(q, DnsRcode.NOERROR, { records });
  };
}

/** Sends one datagram to 127.0.0.1:port; resolves with the first reply, or null after `waitMs`. */
export async function askUdp(port: number, msg: Buffer, waitMs = 3000): Promise<Buffer | null> {
  const s = dgram.createSocket('udp4');
  try {
    return await new Promise<Buffer | null>((resolve) => {
      const t = setTimeout(() => resolve(null), waitMs);
      s.on('message', (m) => { clearTimeout(t); resolve(m); });
      s.send(msg, port, LOOPBACK);
    });
  } finally {
    s.close();
  }
}

/** Sends length-prefixed queries over one TCP connection; resolves with the `expect` replies in arrival order, or fewer if the server closes. */
export async function askTcp(port: number, msgs: Buffer[], expect = msgs.length): Promise<Buffer[]> {
  const s = net.connect(port, LOOPBACK);
  try {
    return await new Promise<Buffer[]>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const out: Buffer[] = [];
      s.on('error', reject);
      s.on('close', () => resolve(out)); // closed by the server: what came so far
      s.on('connect', () => {
        for (const m of msgs) { const p = Buffer.alloc(2); p.writeUInt16BE(m.length); s.write(Buffer.concat([p, m])); }
      });
      s.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          out.push(Buffer.from(buf.subarray(2, 2 + buf.readUInt16BE(0))));
          buf = buf.subarray(2 + out[out.length - 1]!.length);
        }
        if (out.length >= expect) resolve(out);
      });
    });
  } finally {
    s.destroy();
  }
}

/** One onAnswer call as the test server recorded it. */
export type Reported = { clientIp: string; name: string; addrs: DnsAddress[] };

/** A server on 127.0.0.1:0 with recording callbacks; `o` overrides any option. */
export async function startTestServer(o: Partial<DnsServerOptions> & { upstreams: DnsServerOptions['upstreams'] }) {
  const reported: Reported[] = [];
  const srv = await startDnsServer({
    listen: [{ address: LOOPBACK, port: 0 }],
    decide: (): DnsDecision => 'allow',
    localAnswer: () => null,
    onAnswer: (clientIp, name, addrs) => { reported.push({ clientIp, name, addrs }); },
    timeoutMs: 1500,
    ...o,
  });
  return { srv, port: srv.addresses()[0]!.port, reported };
}

/** An A record answering the question's name. */
export const aRecord = (data: string, ttl = 60): DnsAnswerRecord => ({ type: DnsType.A, ttl, data });
