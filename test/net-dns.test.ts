// The sandbox DNS server over real loopback sockets, against upstreams this file runs itself
// (built with the same codec). Every address used is 127.0.0.1; the codec alone is net-dns-codec.test.ts.
import test from 'node:test';
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { isHutchError } from '../src/errors.js';
import {
  DnsRcode, DnsType, buildQuery, buildResponse, hostResolvers, parseQuery, parseResponse,
  type DnsDecision,
} from '../src/net/dns/index.js';
import { LOOPBACK, aRecord, askTcp, askUdp, fakeUpstream, startTestServer, tableReply } from './net-dns-kit.js';
test('forwards, reports addresses and TTLs, and reports a changed address on the next query', async () => {
  const table = new Map([['api.example.com', [aRecord('192.0.2.10', 120)]]]);
  const up = await fakeUpstream(tableReply(table));
  const { srv, port, reported } = await startTestServer({ upstreams: [up.endpoint] });
  try {
    const r1 = parseResponse((await askUdp(port, buildQuery({ id: 77, name: 'api.example.com', type: DnsType.A })))!);
    assert.equal(r1.header.id, 77);
    assert.equal(r1.answers[0]!.data, '192.0.2.10');
    table.set('api.example.com', [aRecord('192.0.2.11', 15)]);
    const r2 = parseResponse((await askUdp(port, buildQuery({ id: 78, name: 'api.example.com', type: DnsType.A })))!);
    assert.equal(r2.answers[0]!.data, '192.0.2.11');
    assert.deepEqual(reported, [
      { clientIp: LOOPBACK, name: 'api.example.com', addrs: [{ address: '192.0.2.10', ttl: 120, family: 4 }] },
      { clientIp: LOOPBACK, name: 'api.example.com', addrs: [{ address: '192.0.2.11', ttl: 15, family: 4 }] },
    ]);
    const nx = parseResponse((await askUdp(port, buildQuery({ id: 79, name: 'nope.example.com', type: DnsType.A })))!);
    assert.equal(nx.header.rcode, DnsRcode.NXDOMAIN);
    assert.equal(reported.length, 2);
  } finally {
    await srv.close();
    await up.close();
  }
});

test('local names are answered from the table; refused names get REFUSED; neither reaches upstream', async () => {
  const up = await fakeUpstream(tableReply(new Map()));
  const decide = (_ip: string, name: string): DnsDecision => (name.endsWith('.hutch') ? 'local' : name === 'evil.com' ? 'refuse' : 'allow');
  const crowd = Array.from({ length: 100 }, (_, i) => `10.88.1.${i + 1}`);
  const localAnswer = (_ip: string, name: string) => (name === 'web.hutch' ? ['10.88.0.5', 'fd00::5'] : name === 'crowd.hutch' ? crowd : null);
  const { srv, port, reported } = await startTestServer({ upstreams: [up.endpoint], decide, localAnswer });
  try {
    const r = parseResponse((await askUdp(port, buildQuery({ id: 1, name: 'Web.Hutch', type: DnsType.A })))!);
    assert.equal(r.header.rcode, DnsRcode.NOERROR);
    assert.equal(r.header.aa, true);
    assert.deepEqual(r.answers.map((x) => [x.name, x.data, x.ttl]), [['web.hutch', '10.88.0.5', 5]]);
    const six = parseResponse((await askUdp(port, buildQuery({ id: 2, name: 'web.hutch', type: DnsType.AAAA })))!);
    assert.deepEqual(six.answers.map((x) => x.data), ['fd00::5']);
    const mx = parseResponse((await askUdp(port, buildQuery({ id: 3, name: 'web.hutch', type: 15 })))!);
    assert.deepEqual([mx.header.rcode, mx.answers.length], [DnsRcode.NOERROR, 0]);
    const gone = parseResponse((await askUdp(port, buildQuery({ id: 4, name: 'db.hutch', type: DnsType.A })))!);
    assert.equal(gone.header.rcode, DnsRcode.NXDOMAIN);
    // 100 addresses do not fit 512 bytes: TC over UDP, all of them over TCP.
    const cut = parseResponse((await askUdp(port, buildQuery({ id: 6, name: 'crowd.hutch', type: DnsType.A })))!);
    assert.deepEqual([cut.header.tc, cut.answers.length], [true, 0]);
    const [whole] = await askTcp(port, [buildQuery({ id: 7, name: 'crowd.hutch', type: DnsType.A })]);
    assert.deepEqual(parseResponse(whole!).answers.map((x) => x.data), crowd);
    const evil = parseResponse((await askUdp(port, buildQuery({ id: 5, name: 'EVIL.com', type: DnsType.A })))!);
    assert.equal(evil.header.rcode, DnsRcode.REFUSED);
    assert.equal(evil.header.id, 5);
    assert.deepEqual([up.stats.udp, up.stats.tcp, reported.length], [0, 0, 0]);
  } finally {
    await srv.close();
    await up.close();
  }
});

test('an upstream that never answers gives SERVFAIL within the timeout; a second upstream takes over', async () => {
  const silent = await fakeUpstream(() => null);
  const good = await fakeUpstream(tableReply(new Map([['x.org', [aRecord('192.0.2.1')]]])));
  const only = await startTestServer({ upstreams: [silent.endpoint], timeoutMs: 400 });
  const both = await startTestServer({ upstreams: [silent.endpoint, good.endpoint], timeoutMs: 800 });
  try {
    let t0 = Date.now();
    const r = parseResponse((await askUdp(only.port, buildQuery({ id: 5, name: 'x.org', type: DnsType.A })))!);
    assert.equal(r.header.rcode, DnsRcode.SERVFAIL);
    assert.ok(Date.now() - t0 < 1000, `SERVFAIL after ${Date.now() - t0} ms`);
    t0 = Date.now();
    const f = parseResponse((await askUdp(both.port, buildQuery({ id: 6, name: 'x.org', type: DnsType.A })))!);
    assert.equal(f.answers[0]!.data, '192.0.2.1');
    assert.ok(Date.now() - t0 < 1200);
    assert.equal(both.reported.length, 1);
  } finally {
    await only.srv.close();
    await both.srv.close();
    await silent.close();
    await good.close();
  }
});

test('TCP queries are forwarded over TCP; a truncated UDP answer is fetched again over TCP', async () => {
  const full = [aRecord('192.0.2.21'), aRecord('192.0.2.22')];
  const up = await fakeUpstream((q, viaTcp) => (viaTcp
    ? buildResponse(q, DnsRcode.NOERROR, { records: full })
    : buildResponse(q, DnsRcode.NOERROR, { truncated: true })));
  const { srv, port, reported } = await startTestServer({ upstreams: [up.endpoint] });
  try {
    const [r] = await askTcp(port, [buildQuery({ id: 11, name: 'big.example', type: DnsType.A })]);
    assert.deepEqual(parseResponse(r!).answers.map((x) => x.data), ['192.0.2.21', '192.0.2.22']);
    assert.deepEqual([up.stats.udp, up.stats.tcp], [0, 1]);
    const u = parseResponse((await askUdp(port, buildQuery({ id: 12, name: 'big.example', type: DnsType.A })))!);
    assert.equal(u.header.tc, false);
    assert.equal(u.answers.length, 2);
    assert.deepEqual([up.stats.udp, up.stats.tcp], [1, 2]);
    assert.equal(reported.length, 2);
    // Pipelined queries on one connection are all answered.
    const many = await askTcp(port, Array.from({ length: 20 }, (_, i) => buildQuery({ id: 100 + i, name: 'big.example', type: DnsType.A })));
    assert.deepEqual(many.map((m) => parseResponse(m).header.id).sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => 100 + i));
  } finally {
    await srv.close();
    await up.close();
  }
});

test('hostile packets get no answer or FORMERR, and the server keeps answering', async () => {
  const up = await fakeUpstream(tableReply(new Map([['ok.test', [aRecord('192.0.2.9')]]])));
  const { srv, port } = await startTestServer({ upstreams: [up.endpoint] });
  const head = (qd: number) => Buffer.from([0xab, 0xcd, 1, 0, 0, qd, 0, 0, 0, 0, 0, 0]);
  const label = Buffer.concat([Buffer.from([60]), Buffer.alloc(60, 0x61)]);
  // What each gets: FORMERR (a readable query header, an unreadable rest) or nothing at all.
  const hostile: [string, Buffer, 'formerr' | 'none'][] = [
    ['empty', Buffer.alloc(0), 'none'],
    ['short', Buffer.from([1, 2, 3]), 'none'],
    ['garbage', Buffer.from('\x01\x02\x03 not dns at all, really not', 'latin1'), 'formerr'],
    ['random, QR set', Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 7919) & 0xff)), 'none'],
    ['compression loop', Buffer.concat([head(1), Buffer.from([0xc0, 12, 0, 1, 0, 1])]), 'formerr'],
    ['300-byte name', Buffer.concat([head(1), label, label, label, label, label, Buffer.from([0, 0, 1, 0, 1])]), 'formerr'],
    ['qdcount 0', head(0), 'formerr'],
    ['qdcount 5', Buffer.concat([head(5), buildQuery({ id: 1, name: 'ok.test', type: 1 }).subarray(12)]), 'formerr'],
    ['a response', Buffer.concat([Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]), buildQuery({ id: 1, name: 'ok.test', type: 1 }).subarray(12)]), 'none'],
    ['over 512 bytes', Buffer.concat([buildQuery({ id: 2, name: 'ok.test', type: 1 }), Buffer.alloc(600)]), 'none'],
  ];
  try {
    for (const [what, msg, expected] of hostile) {
      const reply = await askUdp(port, msg, expected === 'none' ? 150 : 2000);
      if (expected === 'none') assert.equal(reply, null, what);
      else {
        const r = parseResponse(reply!);
        assert.deepEqual([r.header.rcode, r.header.id], [DnsRcode.FORMERR, msg.readUInt16BE(0)], what);
      }
    }
    assert.equal(up.stats.udp, 0);
    const [tcpReply] = await askTcp(port, [hostile[4]![1], buildQuery({ id: 3, name: 'ok.test', type: 1 })], 2);
    assert.equal(parseResponse(tcpReply!).header.rcode, DnsRcode.FORMERR);
    const ok = parseResponse((await askUdp(port, buildQuery({ id: 4, name: 'ok.test', type: DnsType.A })))!);
    assert.equal(ok.answers[0]!.data, '192.0.2.9');
  } finally {
    await srv.close();
    await up.close();
  }
});

test('many queries at once are all answered; beyond maxInFlight (in all, per client) they are dropped, not queued', async () => {
  const up = await fakeUpstream(tableReply(new Map([['bulk.test', [aRecord('192.0.2.50')]]])));
  const { srv, port } = await startTestServer({ upstreams: [up.endpoint], maxInFlightPerClient: 256 });
  const slow = await fakeUpstream(() => null);
  const tight = await startTestServer({ upstreams: [slow.endpoint], maxInFlight: 2, timeoutMs: 300 });
  const perClient = await startTestServer({ upstreams: [slow.endpoint], maxInFlight: 100, maxInFlightPerClient: 3, timeoutMs: 300 });
  try {
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => askUdp(port, buildQuery({ id: i, name: 'bulk.test', type: DnsType.A }))));
    assert.ok(replies.every((r, i) => r !== null && parseResponse(r).header.id === i && parseResponse(r).answers.length === 1));
    const burst = await Promise.all(Array.from({ length: 6 }, (_, i) => askUdp(tight.port, buildQuery({ id: i, name: 'q.test', type: 1 }), 1000)));
    assert.equal(burst.filter((r) => r !== null).length, 2);
    const mine = await Promise.all(Array.from({ length: 6 }, (_, i) => askUdp(perClient.port, buildQuery({ id: i, name: 'q.test', type: 1 }), 1000)));
    assert.equal(mine.filter((r) => r !== null).length, 3);
  } finally {
    await srv.close();
    await tight.srv.close();
    await perClient.srv.close();
    await up.close();
    await slow.close();
  }
});

test('listeners come and go while the server runs; TCP connections are limited', async () => {
  const up = await fakeUpstream(tableReply(new Map([['l.test', [aRecord('192.0.2.60')]]])));
  const { srv, port } = await startTestServer({ upstreams: [up.endpoint], maxTcpConnections: 1 });
  try {
    const second = await srv.addListener({ address: LOOPBACK, port: 0 });
    assert.equal(srv.addresses().length, 2);
    await assert.rejects(srv.addListener(second), (e) => isHutchError(e, 'EEXIST'));
    assert.ok(await askUdp(second.port, buildQuery({ id: 1, name: 'l.test', type: 1 })));
    await srv.removeListener(second);
    assert.equal(await askUdp(second.port, buildQuery({ id: 2, name: 'l.test', type: 1 }), 200), null);
    await assert.rejects(srv.removeListener(second), (e) => isHutchError(e, 'ENOTFOUND'));
    const held = net.connect(port, LOOPBACK);
    await new Promise((r) => held.on('connect', r));
    await new Promise((r) => setTimeout(r, 50));
    const closedAtOnce = net.connect(port, LOOPBACK).on('error', () => undefined);
    await new Promise((r) => closedAtOnce.on('close', r));
    held.destroy();
  } finally {
    await srv.close();
    await up.close();
  }
});

test('hostResolvers reads nameserver lines of a resolv.conf', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-dns-'));
  try {
    const file = path.join(dir, 'resolv.conf');
    fs.writeFileSync(file, '# c\nsearch x\nnameserver 192.0.2.53\nnameserver   2001:db8::53\nnameserver bogus\noptions ndots:1\n');
    assert.deepEqual(hostResolvers(file), [{ address: '192.0.2.53', port: 53 }, { address: '2001:db8::53', port: 53 }]);
    assert.deepEqual(hostResolvers(path.join(dir, 'missing')), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the answer waits for onAnswer; a failing or stuck callback gives SERVFAIL, not a hang', async () => {
  const up = await fakeUpstream(tableReply(new Map([['slow.test', [aRecord('192.0.2.70')]], ['fail.test', [aRecord('192.0.2.71')]]])));
  const events: string[] = [];
  const { srv, port } = await startTestServer({
    upstreams: [up.endpoint],
    timeoutMs: 400,
    decide: (_ip, name) => (name === 'stuck.test' ? new Promise<DnsDecision>(() => undefined) : 'allow'),
    onAnswer: async (_ip, name) => {
      if (name === 'fail.test') throw new Error('nft failed');
      await new Promise((r) => setTimeout(r, 100));
      events.push('allowed');
    },
  });
  try {
    const r = await askUdp(port, buildQuery({ id: 1, name: 'slow.test', type: 1 }));
    events.push('answered');
    assert.deepEqual(events, ['allowed', 'answered']);
    assert.equal(parseResponse(r!).answers[0]!.data, '192.0.2.70');
    assert.equal(parseResponse((await askUdp(port, buildQuery({ id: 2, name: 'fail.test', type: 1 })))!).header.rcode, DnsRcode.SERVFAIL);
    const t0 = Date.now();
    assert.equal(parseResponse((await askUdp(port, buildQuery({ id: 3, name: 'stuck.test', type: 1 })))!).header.rcode, DnsRcode.SERVFAIL);
    assert.ok(Date.now() - t0 < 1000);
  } finally {
    await srv.close();
    await up.close();
  }
});

test('an idle TCP connection is closed after tcpIdleMs', async () => {
  const up = await fakeUpstream(() => null);
  const { srv, port } = await startTestServer({ upstreams: [up.endpoint], tcpIdleMs: 150 });
  try {
    const s = net.connect(port, LOOPBACK).on('error', () => undefined);
    const t0 = Date.now();
    await new Promise((r) => s.on('close', r));
    const took = Date.now() - t0;
    assert.ok(took >= 100 && took < 1500, `closed after ${took} ms`);
  } finally {
    await srv.close();
    await up.close();
  }
});

test('a refused port fails over at once; answers with the wrong id or question are ignored', async () => {
  const gone = dgram.createSocket('udp4');
  await new Promise<void>((r) => gone.bind(0, LOOPBACK, r));
  const closedPort = gone.address().port;
  await new Promise<void>((r) => gone.close(() => r()));
  const spoofing = await fakeUpstream((q) => {
    const wrongId = buildResponse({ ...q, header: { ...q.header, id: q.header.id ^ 1 } }, DnsRcode.NOERROR, { records: [aRecord('203.0.113.66')] });
    const otherQuestion = buildResponse(parseQuery(buildQuery({ id: q.header.id, name: 'other.test', type: 1 })), DnsRcode.NOERROR, { records: [aRecord('203.0.113.67')] });
    return [wrongId, otherQuestion, buildResponse(q, DnsRcode.NOERROR, { records: [aRecord('192.0.2.80')] })];
  });
  const { srv, port, reported } = await startTestServer({ upstreams: [{ address: LOOPBACK, port: closedPort }, spoofing.endpoint], timeoutMs: 4000 });
  try {
    const t0 = Date.now();
    const r = parseResponse((await askUdp(port, buildQuery({ id: 9, name: 'real.test', type: 1 })))!);
    assert.ok(Date.now() - t0 < 1500, `answered after ${Date.now() - t0} ms`);
    assert.deepEqual(r.answers.map((x) => x.data), ['192.0.2.80']);
    assert.deepEqual(reported.map((x) => x.addrs.map((y) => y.address)), [['192.0.2.80']]);
  } finally {
    await srv.close();
    await spoofing.close();
  }
});

test('EDNS queries pass through to the upstream; close() with questions in flight ends them without an answer', async () => {
  let sawOpt = false;
  const up = await fakeUpstream((q) => {
    sawOpt = q.header.arcount === 1 && q.udpPayloadSize === 1232;
    return q.question.name === 'hang.test' ? null : buildResponse(q, DnsRcode.NOERROR, { records: [aRecord('192.0.2.90')] });
  });
  const { srv, port } = await startTestServer({ upstreams: [up.endpoint], timeoutMs: 3000 });
  try {
    // An OPT record (RFC 6891): root name, type 41, class = UDP size 1232, no options.
    const opt = Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    const q = Buffer.concat([buildQuery({ id: 21, name: 'edns.test', type: 1 }), opt]);
    q.writeUInt16BE(1, 10);
    const r = parseResponse((await askUdp(port, q))!);
    assert.equal(r.answers[0]!.data, '192.0.2.90');
    assert.ok(sawOpt);
    const pending = askUdp(port, buildQuery({ id: 22, name: 'hang.test', type: 1 }), 1500);
    await new Promise((res) => setTimeout(res, 100));
    const t0 = Date.now();
    await srv.close();
    assert.ok(Date.now() - t0 < 500, `close took ${Date.now() - t0} ms`);
    assert.equal(await pending, null);
  } finally {
    await srv.close();
    await up.close();
  }
});

test('TCP: a client holds at most maxTcpConnectionsPerClient; empty frames are skipped; a half frame waits, then idles out', async () => {
  const up = await fakeUpstream(tableReply(new Map([['t.test', [aRecord('192.0.2.95')]]])));
  const { srv, port } = await startTestServer({ upstreams: [up.endpoint], maxTcpConnectionsPerClient: 2, tcpIdleMs: 300 });
  const opened: net.Socket[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const s = net.connect(port, LOOPBACK).on('error', () => undefined);
      opened.push(s);
      await new Promise((r) => s.on('connect', r));
    }
    await new Promise((r) => setTimeout(r, 50));
    const third = net.connect(port, LOOPBACK).on('error', () => undefined);
    opened.push(third);
    await new Promise((r) => third.on('close', r));
    for (const s of opened) s.destroy();
    await new Promise((r) => setTimeout(r, 50));
    const q = buildQuery({ id: 31, name: 't.test', type: 1 });
    const framed = Buffer.concat([Buffer.from([0, 0]), Buffer.from([0, q.length]), q]);
    const s = net.connect(port, LOOPBACK).on('error', () => undefined);
    opened.push(s);
    const got = await new Promise<Buffer>((resolve) => {
      s.on('connect', () => { s.write(framed); s.write(Buffer.from([0xff, 0xff, 1, 2, 3])); });
      s.on('data', (c: Buffer) => resolve(c));
    });
    assert.equal(parseResponse(got.subarray(2)).answers[0]!.data, '192.0.2.95');
    await new Promise((r) => s.on('close', r));
  } finally {
    for (const s of opened) s.destroy();
    await srv.close();
    await up.close();
  }
});

test('a listener removed while its questions are in flight: no crash, the other listener answers', async () => {
  const up = await fakeUpstream((q) => buildResponse(q, DnsRcode.NOERROR, { records: [aRecord('192.0.2.99')] }));
  const slowAllow = (): Promise<DnsDecision> => new Promise((r) => setTimeout(() => r('allow'), 150));
  const { srv, port } = await startTestServer({ upstreams: [up.endpoint], decide: slowAllow });
  try {
    const second = await srv.addListener({ address: LOOPBACK, port: 0 });
    const inFlight = askUdp(second.port, buildQuery({ id: 41, name: 'r.test', type: 1 }), 600);
    const tcpInFlight = askTcp(second.port, [buildQuery({ id: 42, name: 'r.test', type: 1 })]).catch(() => []);
    await new Promise((r) => setTimeout(r, 50));
    await srv.removeListener(second);
    assert.equal(await inFlight, null);
    assert.deepEqual(await Promise.race([tcpInFlight, new Promise((r) => setTimeout(() => r('hung'), 600))]), []);
    assert.ok(await askUdp(port, buildQuery({ id: 43, name: 'r.test', type: 1 })));
  } finally {
    await srv.close();
    await up.close();
  }
});

test('every socket and server of these tests is closed', async () => {
  await new Promise((r) => setTimeout(r, 50));
  const open = process.getActiveResourcesInfo().filter((k) => /UDP|TCP/.test(k));
  assert.deepEqual(open, []);
});
