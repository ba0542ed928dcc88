// A small DNS wire-format codec (RFC 1035), enough for hutch's sandbox DNS server: parse a query,
// parse the answer section of a response (A, AAAA, CNAME; other types skipped), build responses.
// Its input comes from sandboxes and upstreams alike, so every read is bounds-checked and every
// malformed message is a HutchError 'EPROTO', never another exception.
import * as net from 'node:net';
import { HutchError } from '../../errors.js';

/** The record types the server looks at (others pass through untouched). */
export const DnsType = { A: 1, CNAME: 5, AAAA: 28, OPT: 41 } as const;
/** The response codes the server gives or reads (RFC 1035 4.1.1). */
export const DnsRcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
/** The Internet class, the only one whose records the server builds. */
export const DNS_CLASS_IN = 1;
/** Every message starts with a header this long. */
export const DNS_HEADER_SIZE = 12;
/** The UDP payload a client without EDNS accepts (RFC 1035 4.2.1). */
export const DNS_UDP_CLASSIC_SIZE = 512;

/** Most label pointers one name may follow: more is a loop or an attack. */
const MAX_POINTER_JUMPS = 32;
/** A name's wire length limit (RFC 1035 2.3.4), label lengths and the root byte included. */
const MAX_NAME_WIRE = 255;
/** Most CNAME hops followed inside one answer. */
const MAX_CNAME_CHAIN = 16;

/** A message header (RFC 1035 4.1.1), flags as booleans. */
export interface DnsHeader {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  rcode: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

/** `name` is lower case, without the trailing dot ('.' for the root); odd bytes are escaped as \DDD. */
export interface DnsQuestion { name: string; type: number; class: number }

/** A client's query as the server needs it. */
export interface DnsQuery {
  header: DnsHeader;
  question: DnsQuestion;
  /** The question section exactly as the client sent it, echoed in responses (case kept). */
  questionBytes: Buffer;
  /** The UDP size the client accepts: its EDNS OPT payload size, or 512 without EDNS. */
  udpPayloadSize: number;
}

/** One answer record: `data` is the address (A, AAAA), the target name (CNAME), or null (other types). */
export interface DnsRecord { name: string; type: number; class: number; ttl: number; data: string | null }

/** A response's header, its question (null when it has none) and its answer section. */
export interface DnsResponse { header: DnsHeader; question: DnsQuestion | null; answers: DnsRecord[] }

/** An address an answer gave for a name, with the time it may be used for. */
export interface DnsAddress { address: string; ttl: number; family: 4 | 6 }

/** A record for buildResponse; `name` defaults to the question's name. */
export interface DnsAnswerRecord { name?: string; type: number; ttl: number; data: string }

function malformed(what: string): HutchError {
  return new HutchError('EPROTO', `malformed DNS message: ${what}`);
}

function need(buf: Buffer, offset: number, n: number, what: string): void {
  if (offset < 0 || offset + n > buf.length) throw malformed(`${what} runs past the end`);
}

/** Parses the 12-byte header of any DNS message. */
export function parseHeader(buf: Buffer): DnsHeader {
  need(buf, 0, DNS_HEADER_SIZE, 'header');
  const flags = buf.readUInt16BE(2);
  return {
    id: buf.readUInt16BE(0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    rcode: flags & 0xf,
    qdcount: buf.readUInt16BE(4),
    ancount: buf.readUInt16BE(6),
    nscount: buf.readUInt16BE(8),
    arcount: buf.readUInt16BE(10),
  };
}

/** Text for one label byte: letters lower-cased; a dot, backslash or non-printable byte escaped, so no label can pose as two. */
function labelChar(b: number): string {
  if (b >= 0x41 && b <= 0x5a) return String.fromCharCode(b + 0x20);
  if (b === 0x2e || b === 0x5c) return `\\${String.fromCharCode(b)}`;
  if (b > 0x20 && b < 0x7f) return String.fromCharCode(b);
  return `\\${b.toString().padStart(3, '0')}`;
}

/** Reads a (possibly compressed) name at `offset`; `end` is the offset after it in the message. */
export function readName(buf: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let pos = offset;
  let end = -1;
  let jumps = 0;
  let wire = 1;
  for (;;) {
    need(buf, pos, 1, 'name');
    const len = buf[pos]!;
    if (len === 0) {
      if (end < 0) end = pos + 1;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      need(buf, pos, 2, 'name pointer');
      const target = buf.readUInt16BE(pos) & 0x3fff;
      // Pointers only go backwards (to an earlier name): with the jump cap, no loop can spin.
      if (target >= pos) throw malformed('name pointer does not point backwards');
      if (++jumps > MAX_POINTER_JUMPS) throw malformed('too many name pointers');
      if (end < 0) end = pos + 2;
      pos = target;
      continue;
    }
    if (kind !== 0) throw malformed('reserved label type');
    need(buf, pos + 1, len, 'label');
    wire += len + 1;
    if (wire > MAX_NAME_WIRE) throw malformed('name longer than 255 bytes');
    let text = '';
    for (let i = pos + 1; i <= pos + len; i++) text += labelChar(buf[i]!);
    labels.push(text);
    pos += len + 1;
  }
  return { name: labels.length === 0 ? '.' : labels.join('.'), end };
}

/** Encodes a dotted name (no escapes; a trailing dot allowed) as uncompressed labels. */
export function encodeName(name: string): Buffer {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  if (trimmed === '') return Buffer.from([0]);
  const parts: Buffer[] = [];
  for (const label of trimmed.split('.')) {
    const bytes = Buffer.from(label, 'latin1');
    if (bytes.length === 0 || bytes.length > 63) throw new HutchError('EINVAL', `DNS name ${JSON.stringify(name)}: a label is empty or longer than 63 bytes`);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  if (out.length > MAX_NAME_WIRE) throw new HutchError('EINVAL', `DNS name ${JSON.stringify(name)} is longer than 255 bytes`);
  return out;
}

function readQuestion(buf: Buffer, offset: number): { question: DnsQuestion; end: number } {
  const { name, end } = readName(buf, offset);
  need(buf, end, 4, 'question');
  return { question: { name, type: buf.readUInt16BE(end), class: buf.readUInt16BE(end + 2) }, end: end + 4 };
}

/** Skips one resource record at `offset`, returning its fields and where its data lies. */
function readRecordHead(buf: Buffer, offset: number): { name: string; type: number; klass: number; ttl: number; dataAt: number; dataLen: number } {
  const { name, end } = readName(buf, offset);
  need(buf, end, 10, 'record');
  const dataLen = buf.readUInt16BE(end + 8);
  need(buf, end + 10, dataLen, 'record data');
  return { name, type: buf.readUInt16BE(end), klass: buf.readUInt16BE(end + 2), ttl: buf.readUInt32BE(end + 4), dataAt: end + 10, dataLen };
}

/** Parses a client's query: exactly one question; a QR bit set or any other count of questions is malformed. */
export function parseQuery(buf: Buffer): DnsQuery {
  const header = parseHeader(buf);
  if (header.qr) throw malformed('a response where a query was expected');
  if (header.qdcount !== 1) throw malformed(`${header.qdcount} questions (one expected)`);
  const { question, end } = readQuestion(buf, DNS_HEADER_SIZE);
  // The only part of the rest we need is an EDNS OPT record (RFC 6891) for the client's UDP size.
  let udpPayloadSize = DNS_UDP_CLASSIC_SIZE;
  let pos = end;
  const rest = header.ancount + header.nscount + header.arcount;
  for (let i = 0; i < rest; i++) {
    const rr = readRecordHead(buf, pos);
    if (rr.type === DnsType.OPT) udpPayloadSize = Math.max(DNS_UDP_CLASSIC_SIZE, rr.klass);
    pos = rr.dataAt + rr.dataLen;
  }
  return { header, question, questionBytes: buf.subarray(DNS_HEADER_SIZE, end), udpPayloadSize };
}

/** Parses a response: its question (if any) and its answer section; authority and additional are not read. */
export function parseResponse(buf: Buffer): DnsResponse {
  const header = parseHeader(buf);
  if (!header.qr) throw malformed('a query where a response was expected');
  if (header.qdcount > 1) throw malformed(`${header.qdcount} questions in a response`);
  let pos = DNS_HEADER_SIZE;
  let question: DnsQuestion | null = null;
  if (header.qdcount === 1) ({ question, end: pos } = readQuestion(buf, pos));
  const answers: DnsRecord[] = [];
  for (let i = 0; i < header.ancount; i++) {
    const rr = readRecordHead(buf, pos);
    let data: string | null = null;
    if (rr.type === DnsType.A && rr.dataLen === 4) data = [...buf.subarray(rr.dataAt, rr.dataAt + 4)].join('.');
    else if (rr.type === DnsType.AAAA && rr.dataLen === 16) data = formatIPv6(buf.subarray(rr.dataAt, rr.dataAt + 16));
    else if (rr.type === DnsType.CNAME) {
      const target = readName(buf, rr.dataAt);
      if (target.end !== rr.dataAt + rr.dataLen) throw malformed('CNAME data length');
      data = target.name;
    }
    answers.push({ name: rr.name, type: rr.type, class: rr.klass, ttl: rr.ttl, data });
    pos = rr.dataAt + rr.dataLen;
  }
  return { header, question, answers };
}

/**
 * The A/AAAA addresses an answer gives for `name`, following CNAMEs within the answer (from `name`
 * only: records for other owners are ignored). Each TTL is the smallest along its chain, since a
 * client that honours the chain asks again when its first expired link does.
 */
export function addressesInAnswer(answers: DnsRecord[], name: string): DnsAddress[] {
  const want = name.toLowerCase();
  const chain = new Map<string, number>([[want, Number.MAX_SAFE_INTEGER]]);
  let current = want;
  for (let hop = 0; hop < MAX_CNAME_CHAIN; hop++) {
    const cname = answers.find((r) => r.type === DnsType.CNAME && r.class === DNS_CLASS_IN && r.name === current && r.data !== null);
    if (cname === undefined || chain.has(cname.data!)) break;
    chain.set(cname.data!, Math.min(chain.get(current)!, cname.ttl));
    current = cname.data!;
  }
  const out: DnsAddress[] = [];
  for (const r of answers) {
    const limit = chain.get(r.name);
    if (limit === undefined || r.class !== DNS_CLASS_IN || r.data === null) continue;
    if (r.type === DnsType.A) out.push({ address: r.data, ttl: Math.min(limit, r.ttl), family: 4 });
    else if (r.type === DnsType.AAAA) out.push({ address: r.data, ttl: Math.min(limit, r.ttl), family: 6 });
  }
  return out;
}

/** Builds a query with one question (for forwarding tests and upstream probes). */
export function buildQuery(q: { id: number; name: string; type: number; rd?: boolean }): Buffer {
  const head = Buffer.alloc(DNS_HEADER_SIZE);
  head.writeUInt16BE(q.id & 0xffff, 0);
  head.writeUInt16BE(q.rd === false ? 0 : 0x0100, 2);
  head.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(q.type, 0);
  tail.writeUInt16BE(DNS_CLASS_IN, 2);
  return Buffer.concat([head, encodeName(q.name), tail]);
}

function responseFlags(h: DnsHeader, rcode: number, o: { authoritative?: boolean; truncated?: boolean }): number {
  return 0x8000 | (h.opcode << 11) | (o.authoritative ? 0x0400 : 0) | (o.truncated ? 0x0200 : 0)
    | (h.rd ? 0x0100 : 0) | 0x0080 | (rcode & 0xf);
}

/** Builds the response to `query`: same id and question, the given rcode and answer records (A, AAAA, CNAME). */
export function buildResponse(query: DnsQuery, rcode: number, o: { records?: DnsAnswerRecord[]; authoritative?: boolean; truncated?: boolean } = {}): Buffer {
  const records = o.records ?? [];
  const head = Buffer.alloc(DNS_HEADER_SIZE);
  head.writeUInt16BE(query.header.id, 0);
  head.writeUInt16BE(responseFlags(query.header, rcode, o), 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(records.length, 6);
  const parts: Buffer[] = [head, query.questionBytes];
  for (const r of records) {
    // The question's name sits at offset 12: a pointer to it keeps answers small.
    const owner = r.name === undefined ? Buffer.from([0xc0, DNS_HEADER_SIZE]) : encodeName(r.name);
    const data = encodeRecordData(r);
    const fixed = Buffer.alloc(10);
    fixed.writeUInt16BE(r.type, 0);
    fixed.writeUInt16BE(DNS_CLASS_IN, 2);
    fixed.writeUInt32BE(Math.max(0, Math.min(0x7fffffff, Math.floor(r.ttl))), 4);
    fixed.writeUInt16BE(data.length, 8);
    parts.push(owner, fixed, data);
  }
  return Buffer.concat(parts);
}

function encodeRecordData(r: DnsAnswerRecord): Buffer {
  if (r.type === DnsType.A) {
    if (!net.isIPv4(r.data)) throw new HutchError('EINVAL', `not an IPv4 address: ${JSON.stringify(r.data)}`);
    return Buffer.from(r.data.split('.').map(Number));
  }
  if (r.type === DnsType.AAAA) return parseIPv6(r.data);
  if (r.type === DnsType.CNAME) return encodeName(r.data);
  throw new HutchError('EINVAL', `record type ${r.type} cannot be built`);
}

/**
 * The FORMERR answer to a message whose header can be read but whose body cannot: same id and
 * opcode, no sections. Null when there is nothing to answer (too short, or itself a response).
 */
export function buildFormatError(buf: Buffer): Buffer | null {
  if (buf.length < DNS_HEADER_SIZE) return null;
  const h = parseHeader(buf);
  if (h.qr) return null;
  const out = Buffer.alloc(DNS_HEADER_SIZE);
  out.writeUInt16BE(h.id, 0);
  out.writeUInt16BE(responseFlags(h, DnsRcode.FORMERR, {}), 2);
  return out;
}

/** A copy of a DNS message with its id replaced. */
export function withId(buf: Buffer, id: number): Buffer {
  const out = Buffer.from(buf);
  out.writeUInt16BE(id & 0xffff, 0);
  return out;
}

/** The 16 bytes of an IPv6 address in text (the :: form and a trailing dotted IPv4 part allowed). */
export function parseIPv6(text: string): Buffer {
  if (!net.isIPv6(text)) throw new HutchError('EINVAL', `not an IPv6 address: ${JSON.stringify(text)}`);
  // A dotted IPv4 tail becomes two hex groups, so only the :: form is left to expand.
  const s = text.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a: string, b: string, c: string, d: string) =>
    `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`);
  const [left, right] = s.includes('::') ? s.split('::') as [string, string] : [s, undefined];
  const groups = (p: string | undefined): number[] => (p === undefined || p === '' ? [] : p.split(':').map((g) => parseInt(g, 16)));
  const head = groups(left);
  const back = groups(right);
  const fill = right === undefined ? 0 : 8 - head.length - back.length;
  const all = [...head, ...new Array<number>(fill).fill(0), ...back];
  const out = Buffer.alloc(16);
  all.slice(0, 8).forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** The RFC 5952 text of 16 address bytes: lower-case hex, the longest run of two or more zero groups as ::. */
export function formatIPv6(bytes: Buffer): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(bytes.readUInt16BE(i));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}
