// Published ports as `-p` and the API give them.
import { HutchError } from '../errors.js';
import { ipv4Number } from './addr.js';
import type { PortMapping } from './types.js';

function port(text: string, what: string, spec: string): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new HutchError('EINVAL', `invalid ${what} "${text.slice(0, 20)}" in -p ${spec.slice(0, 60)}: want 1-65535`);
  return n;
}

/** Parses `[HOSTIP:]HOSTPORT:PORT[/tcp|udp]` (or `PORT`: the same port on the host). */
export function parsePortMapping(spec: string): PortMapping {
  const [main, proto, extra] = spec.split('/');
  if (extra !== undefined || (proto !== undefined && proto !== 'tcp' && proto !== 'udp')) {
    throw new HutchError('EINVAL', `invalid -p ${spec.slice(0, 60)}: want [HOSTIP:]HOSTPORT:PORT[/tcp|udp]`);
  }
  const parts = (main ?? '').split(':');
  if (parts.length > 3 || parts.some((p) => p === '')) throw new HutchError('EINVAL', `invalid -p ${spec.slice(0, 60)}: want [HOSTIP:]HOSTPORT:PORT[/tcp|udp]`);
  const hostIp = parts.length === 3 ? parts[0]! : '0.0.0.0';
  if (ipv4Number(hostIp) === null) throw new HutchError('EINVAL', `invalid host address "${hostIp.slice(0, 40)}" in -p ${spec.slice(0, 60)}: want an IPv4 address`);
  const hostPort = port(parts[parts.length === 3 ? 1 : 0]!, 'host port', spec);
  const inner = port(parts[parts.length - 1]!, 'port', spec);
  return { hostIp, hostPort, port: inner, protocol: proto === 'udp' ? 'udp' : 'tcp' };
}

/** Validates a published port from JSON (the API's). */
export function checkPortMapping(p: unknown): PortMapping {
  if (typeof p === 'string') return parsePortMapping(p);
  const o = (typeof p === 'object' && p !== null ? p : {}) as Record<string, unknown>;
  const hostIp = o.hostIp ?? '0.0.0.0';
  const proto = o.protocol ?? 'tcp';
  return parsePortMapping(`${String(hostIp)}:${String(o.hostPort)}:${String(o.port)}/${String(proto)}`);
}
