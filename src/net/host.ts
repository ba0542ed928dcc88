// What the network layer reads and sets on the host: its directly connected networks, its DNS
// servers, whether a port is free, and the sysctls a bridge needs.
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import { HutchError } from '../errors.js';
import { readFileIfExists } from '../linux/optional-file.js';
import { cidrText, ipv4Number, maskOf } from './addr.js';
import type { PortMapping } from './types.js';

/** The host's directly connected IPv4 networks (not hutch's bridges), from /proc/net/route. */
export function hostNetworks(): string[] {
  const text = readFileIfExists('/proc/net/route') ?? '';
  const out = new Set<string>();
  for (const line of text.split('\n').slice(1)) {
    const [iface, dest, gateway, , , , , mask] = line.trim().split(/\s+/);
    if (!iface || !dest || !mask || iface.startsWith('hutch') || gateway !== '00000000') continue;
    // The kernel prints them as little-endian hex words.
    const le = (h: string) => Buffer.from(h, 'hex').readUInt32LE(0);
    const m = le(mask);
    const prefix = 32 - Math.log2((~m >>> 0) + 1);
    if (!Number.isInteger(prefix) || prefix === 0) continue;
    out.add(cidrText({ base: (le(dest) & maskOf(prefix)) >>> 0, prefix }));
  }
  return [...out];
}

/**
 * The DNS servers sandboxes get: $HUTCH_DNS when set, else the host's IPv4 servers that are not on
 * its loopback (systemd-resolved's own upstreams when the host only has its stub).
 */
export function sandboxDnsServers(): string[] {
  const configured = process.env.HUTCH_DNS;
  if (configured) {
    const list = configured.split(',').map((s) => s.trim()).filter(Boolean);
    for (const s of list) if (ipv4Number(s) === null) throw new HutchError('EINVAL', `invalid DNS server "${s.slice(0, 40)}" in $HUTCH_DNS: want IPv4 addresses, comma-separated`);
    return list;
  }
  for (const file of ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf']) {
    const servers = (readFileIfExists(file) ?? '').split('\n').map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1]).filter((s): s is string => s !== undefined)
      .filter((s) => ipv4Number(s) !== null && !s.startsWith('127.'));
    if (servers.length) return servers.slice(0, 3);
  }
  return [];
}

/** Throws EEXIST when something on the host already listens on a port a sandbox would publish. */
export async function checkHostPortFree(p: PortMapping, id: string): Promise<void> {
  const taken = () => new HutchError('EEXIST', `cannot publish ${p.hostIp}:${p.hostPort}/${p.protocol}: the host port is in use`, { id });
  if (p.protocol === 'udp') {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', (e: NodeJS.ErrnoException) => { sock.close(); reject(e.code === 'EADDRINUSE' ? taken() : new HutchError('EINVAL', `cannot publish on ${p.hostIp}:${p.hostPort}/udp: ${e.message}`, { id })); });
      sock.bind({ address: p.hostIp, port: p.hostPort, exclusive: true }, () => sock.close(() => resolve()));
    });
    return;
  }
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE' ? taken() : new HutchError('EINVAL', `cannot publish on ${p.hostIp}:${p.hostPort}/tcp: ${e.message}`, { id })));
    server.listen({ host: p.hostIp, port: p.hostPort, exclusive: true }, () => server.close(() => resolve()));
  });
}

/** Writes a sysctl under /proc/sys (e.g. `net/ipv4/ip_forward`) unless it has the value already. */
export function setSysctl(name: string, value: string): void {
  const file = `/proc/sys/${name}`;
  if (readFileIfExists(file)?.trim() === value) return;
  fs.writeFileSync(file, value);
}

/** True when the host has a network device of that name. */
export function linkExists(name: string): boolean {
  return fs.existsSync(`/sys/class/net/${name}`);
}
