// IPv4 addresses and CIDR blocks as numbers: parsing, checks and the arithmetic IPAM needs.
import { HutchError } from '../errors.js';

/** An IPv4 block: its first address (as a number) and prefix length. */
export interface Cidr { base: number; prefix: number }

const OCTETS_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The number of a dotted IPv4 address; null when it is not one. */
export function ipv4Number(text: string): number | null {
  const m = OCTETS_RE.exec(text);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255) || m.slice(1).some((p) => p.length > 1 && p.startsWith('0'))) return null;
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

/** The dotted text of an IPv4 address number. */
export function ipv4Text(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Parses `A.B.C.D/N` (or a bare address: /32); `what` names the input in the error. */
export function parseCidr(text: string, what = 'CIDR'): Cidr {
  const [addr, len, extra] = text.split('/');
  const n = ipv4Number(addr ?? '');
  const prefix = len === undefined ? 32 : /^\d{1,2}$/.test(len) ? Number(len) : NaN;
  if (n === null || extra !== undefined || !(prefix >= 0 && prefix <= 32)) {
    throw new HutchError('EINVAL', `invalid ${what} "${text.slice(0, 60)}": want an IPv4 block such as 10.1.0.0/16`);
  }
  const base = (n & maskOf(prefix)) >>> 0;
  return { base, prefix };
}

/** The netmask of a prefix length, as a number. */
export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** `A.B.C.D/N` text of a block. */
export function cidrText(c: Cidr): string {
  return `${ipv4Text(c.base)}/${c.prefix}`;
}

/** How many addresses the block holds. */
export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

/** True when address `n` is inside `c`. */
export function cidrContains(c: Cidr, n: number): boolean {
  return ((n & maskOf(c.prefix)) >>> 0) === c.base;
}

/** True when the two blocks share an address. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & maskOf(p)) >>> 0) === ((b.base & maskOf(p)) >>> 0);
}

/** Destinations no sandbox reaches unless a rule allows them: private, shared, loopback, link-local (metadata), multicast and reserved blocks. */
export const PROTECTED_BLOCKS = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12',
  '192.0.0.0/24', '192.168.0.0/16', '198.18.0.0/15', '224.0.0.0/3',
];
