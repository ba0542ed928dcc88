// The DNS codec alone: round trips, CNAME chains, and hostile input that may only throw EPROTO.
import test from 'node:test';
import assert from 'node:assert/strict';
import { isHutchError } from '../src/errors.js';
import {
  DnsRcode, DnsType, addressesInAnswer, buildFormatError, buildQuery, buildResponse, parseQuery, parseResponse,
} from '../src/net/dns/index.js';
import { formatIPv6, parseIPv6 } from '../src/net/dns/message.js';

test('codec: queries and answers round-trip; CNAME chains are followed with the smallest TTL', () => {
  const q = parseQuery(buildQuery({ id: 0x1234, name: 'WWW.Example.org.', type: DnsType.A }));
  assert.equal(q.header.id, 0x1234);
  assert.deepEqual(q.question, { name: 'www.example.org', type: DnsType.A, class: 1 });
  assert.equal(q.udpPayloadSize, 512);
  const msg = buildResponse(q, DnsRcode.NOERROR, {
    records: [
      { type: DnsType.CNAME, ttl: 300, data: 'edge.cdn.net' },
      { name: 'edge.cdn.net', type: DnsType.A, ttl: 30, data: '192.0.2.7' },
      { name: 'edge.cdn.net', type: DnsType.AAAA, ttl: 900, data: '2001:db8::7' },
      { name: 'other.net', type: DnsType.A, ttl: 60, data: '198.51.100.1' }, // not on the chain
    ],
  });
  const r = parseResponse(msg);
  assert.equal(r.header.id, 0x1234);
  assert.equal(r.header.qr, true);
  assert.equal(r.answers.length, 4);
  assert.deepEqual(addressesInAnswer(r.answers, 'www.example.org'), [
    { address: '192.0.2.7', ttl: 30, family: 4 },
    { address: '2001:db8::7', ttl: 300, family: 6 },
  ]);
  assert.equal(parseResponse(buildResponse(q, DnsRcode.REFUSED)).header.rcode, DnsRcode.REFUSED);
  const fe = buildFormatError(buildQuery({ id: 9, name: 'x', type: 1 }))!;
  assert.equal(parseResponse(fe).header.rcode, DnsRcode.FORMERR);
  for (const t of ['::', '::1', '2001:db8::1:0:0:1', 'fe80::1:2', '1:2:3:4:5:6:7:8', '::ffff:192.0.2.1']) {
    assert.equal(formatIPv6(parseIPv6(t)), t === '::ffff:192.0.2.1' ? '::ffff:c000:201' : t);
  }
});

test('codec: hostile names are typed errors (loops, forward pointers, 300 bytes, truncation, dots in labels)', () => {
  const head = (qd: number) => Buffer.from([0, 1, 0, 0, 0, qd, 0, 0, 0, 0, 0, 0]);
  const loop = Buffer.concat([head(1), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
  const forward = Buffer.concat([head(1), Buffer.from([0xc0, 14, 1, 0x61, 0, 0, 1, 0, 1])]);
  const long = Buffer.concat([head(1), ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([59]), Buffer.alloc(59, 0x61)])), Buffer.from([0, 0, 1, 0, 1])]);
  const cut = Buffer.concat([head(1), Buffer.from([10, 0x61, 0x62])]);
  for (const [what, m] of [['loop', loop], ['forward', forward], ['long', long], ['cut', cut], ['qd0', head(0)], ['qd5', head(5)], ['short', Buffer.alloc(3)]] as const) {
    assert.throws(() => parseQuery(m), (e) => isHutchError(e, 'EPROTO'), what);
  }
  const dotted = parseQuery(Buffer.concat([head(1), Buffer.from([3, 0x61, 0x2e, 0x62, 3, 0x63, 0x6f, 0x6d, 0, 0, 1, 0, 1])]));
  assert.equal(dotted.question.name, 'a\\.b.com');
});

test('codec: mutated and random messages only ever throw EPROTO', () => {
  let seed = 0x2545f491;
  const rand = (n: number): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n; };
  const q = parseQuery(buildQuery({ id: 1, name: 'a.b.example.com', type: DnsType.A }));
  const seeds = [
    buildQuery({ id: 1, name: 'a.b.example.com', type: DnsType.AAAA }),
    buildResponse(q, DnsRcode.NOERROR, { records: [{ type: DnsType.CNAME, ttl: 5, data: 'c.example.com' }, { name: 'c.example.com', type: DnsType.A, ttl: 5, data: '192.0.2.1' }] }),
  ];
  let typed = 0;
  for (let i = 0; i < 20000; i++) {
    const base = seeds[i % 2]!;
    const m = i % 10 === 0 ? Buffer.from(Array.from({ length: rand(80) }, () => rand(256))) : Buffer.from(base.subarray(0, rand(base.length + 1)));
    for (let k = rand(4); k >= 0 && m.length > 0; k--) m[rand(m.length)] = rand(256);
    for (const parse of [parseQuery, parseResponse, buildFormatError]) {
      try {
        parse(m);
      } catch (e) {
        assert.ok(isHutchError(e, 'EPROTO'), `${String(e)} on ${m.toString('hex')}`);
        typed++;
      }
    }
  }
  assert.ok(typed > 1000);
});
