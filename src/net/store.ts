// Where the network layer keeps what it knows: network definitions (kept across reboots), and the
// leases, port claims and per-sandbox files of this boot (under /run: gone with the links they name).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { HutchError } from '../errors.js';
import { FileLock } from '../linux/filelock.js';
import { readFileIfExists } from '../linux/optional-file.js';
import { cidrSize, ipv4Number, ipv4Text, parseCidr } from './addr.js';
import type { NetworkAttachment, NetworkDef, PortMapping } from './types.js';

/** The name of the default network (`--network bridge`). */
export const DEFAULT_NETWORK = 'bridge';
const NETWORK_NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,30}$/;
const RESERVED_NAMES = ['none', 'host', DEFAULT_NETWORK, 'default'];

/** Who holds an address: the sandbox's id and name, and the state root it lives in. */
export interface Lease { id: string; name: string; root: string; address: string }

/** Checks a network name given to `network create` (short: it names a bridge device too). */
export function checkNetworkName(name: string): void {
  if (!NETWORK_NAME_RE.test(name)) throw new HutchError('EINVAL', `invalid network name "${name.slice(0, 60)}": use 1-31 lower-case letters, digits, '_', '.' or '-', starting with a letter or digit`);
  if (RESERVED_NAMES.includes(name)) throw new HutchError('EINVAL', `network name "${name}" is reserved (none, host and bridge are modes)`);
}

/** The network layer's files: definitions under `root`, this boot's state under `run`. */
export class NetworkStore {
  constructor(readonly root: string, readonly run: string, private readonly defaultSubnet: string) {
    fs.mkdirSync(path.join(root, 'networks'), { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.join(run, 'leases'), { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.join(run, 'sandboxes'), { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.join(run, 'ports'), { recursive: true, mode: 0o700 });
  }

  /** The host-wide lock taken while bridges, the nftables table or a network's members change. */
  lock(): Promise<FileLock> {
    return FileLock.acquire(path.join(this.run, 'lock'), 'exclusive', { timeoutMs: 30_000 });
  }

  /** The default network: built in, its sandboxes isolated from each other. */
  defaultNetwork(): NetworkDef {
    const subnet = parseCidr(this.defaultSubnet, 'default bridge subnet ($HUTCH_BRIDGE_SUBNET)');
    return { name: DEFAULT_NETWORK, bridge: 'hutch0', subnet: this.defaultSubnet, gateway: ipv4Text(subnet.base + 1), isolated: true, createdAt: '' };
  }

  /** A network by name; ENOTFOUND names the ones there are. */
  get(name: string): NetworkDef {
    if (name === DEFAULT_NETWORK) return this.defaultNetwork();
    const text = NETWORK_NAME_RE.test(name) ? readFileIfExists(path.join(this.root, 'networks', `${name}.json`)) : null;
    if (text === null) throw new HutchError('ENOTFOUND', `no network named "${name.slice(0, 60)}" (hutch network ls lists them; bridge is the default one)`);
    return JSON.parse(text) as NetworkDef;
  }

  /** Every named network. */
  named(): NetworkDef[] {
    return fs.readdirSync(path.join(this.root, 'networks')).filter((f) => f.endsWith('.json') && !f.startsWith('.'))
      .map((f) => JSON.parse(fs.readFileSync(path.join(this.root, 'networks', f), 'utf8')) as NetworkDef);
  }

  /** Saves a new named network; EEXIST when the name is taken. */
  add(def: NetworkDef): void {
    const file = path.join(this.root, 'networks', `${def.name}.json`);
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(def, null, 2) + '\n', { mode: 0o600 });
    try {
      fs.linkSync(tmp, file); // atomic and exclusive: a second create of the name fails
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new HutchError('EEXIST', `a network named "${def.name}" exists already`);
      throw e;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  /** Forgets a named network's definition. */
  delete(name: string): void {
    fs.rmSync(path.join(this.root, 'networks', `${name}.json`), { force: true });
    fs.rmSync(path.join(this.run, 'leases', name), { recursive: true, force: true });
  }

  /** The bridge device name of a named network (15 bytes at most, as the kernel allows). */
  static bridgeName(name: string): string {
    return `hutch-${crypto.createHash('sha256').update(name).digest('hex').slice(0, 9)}`;
  }

  private leaseDir(network: string): string {
    const d = path.join(this.run, 'leases', network);
    fs.mkdirSync(d, { recursive: true, mode: 0o700 });
    return d;
  }

  /** The network's leases, by address. */
  leases(network: string): Lease[] {
    const d = this.leaseDir(network);
    const out: Lease[] = [];
    for (const f of fs.readdirSync(d)) {
      if (ipv4Number(f) === null) continue;
      const text = readFileIfExists(path.join(d, f));
      // A lease file is written whole before it is linked in: empty or garbage means a torn one.
      try { if (text) out.push({ ...(JSON.parse(text) as Omit<Lease, 'address'>), address: f }); } catch { out.push({ id: '', name: '', root: '', address: f }); }
    }
    return out;
  }

  /**
   * Claims a free address of the network for a sandbox: the lowest one nobody holds, claimed by an
   * exclusive link (two sandboxes never get one address, even when created at once).
   */
  claimAddress(def: NetworkDef, holder: Omit<Lease, 'address'>): string {
    const subnet = parseCidr(def.subnet);
    const d = this.leaseDir(def.name);
    const taken = new Set(fs.readdirSync(d));
    const tmp = path.join(d, `.${holder.id}.${process.pid}`);
    fs.writeFileSync(tmp, JSON.stringify(holder), { mode: 0o600 });
    try {
      const last = subnet.base + cidrSize(subnet) - 2; // the broadcast address is not given out
      for (let n = subnet.base + 2; n <= last; n++) {
        const address = ipv4Text(n);
        if (taken.has(address)) continue;
        try {
          fs.linkSync(tmp, path.join(d, address));
          return address;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
      }
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    throw new HutchError('ENOSPC', `network ${def.name} has no free address left in ${def.subnet}`, { id: holder.id });
  }

  /** Releases every address the sandbox holds on the network. */
  releaseAddresses(network: string, id: string): void {
    for (const l of this.leases(network)) if (l.id === id) fs.rmSync(path.join(this.leaseDir(network), l.address), { force: true });
  }

  /** The dir of a sandbox's own files (its attachment record, resolv.conf, hosts). */
  sandboxDir(id: string): string {
    return path.join(this.run, 'sandboxes', id);
  }

  /** The recorded attachment of a sandbox; null when it has none. */
  attachment(id: string): NetworkAttachment | null {
    const text = readFileIfExists(path.join(this.sandboxDir(id), 'attachment.json'));
    return text ? (JSON.parse(text) as NetworkAttachment) : null;
  }

  /** Records a sandbox's attachment (atomically replaced). */
  saveAttachment(id: string, a: NetworkAttachment): void {
    const file = path.join(this.sandboxDir(id), 'attachment.json');
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(a), { mode: 0o600 });
    fs.renameSync(`${file}.tmp`, file);
  }

  /** Ids of every sandbox that has files here. */
  sandboxIds(): string[] {
    return fs.readdirSync(path.join(this.run, 'sandboxes'));
  }

  private portFile(p: PortMapping): string {
    return path.join(this.run, 'ports', `${p.protocol}-${p.hostIp}-${p.hostPort}`);
  }

  /**
   * Claims a host port for a sandbox among hutch's own sandboxes (an exclusive create); a claim on
   * every address conflicts with one on a single address and the other way round.
   */
  claimPort(p: PortMapping, id: string): void {
    const clash = fs.readdirSync(path.join(this.run, 'ports')).find((f) => {
      const [proto, ip, port] = f.split('-');
      return proto === p.protocol && Number(port) === p.hostPort && (ip === p.hostIp || ip === '0.0.0.0' || p.hostIp === '0.0.0.0');
    });
    const owner = clash ? readFileIfExists(path.join(this.run, 'ports', clash))?.trim() : undefined;
    if (clash && owner !== id) throw new HutchError('EEXIST', `host port ${p.hostIp}:${p.hostPort}/${p.protocol} is published by sandbox ${owner ?? '(unknown)'} already`, { id });
    try {
      fs.writeFileSync(this.portFile(p), id, { flag: 'wx', mode: 0o600 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || readFileIfExists(this.portFile(p))?.trim() !== id) {
        throw new HutchError('EEXIST', `host port ${p.hostIp}:${p.hostPort}/${p.protocol} is published by another sandbox already`, { id });
      }
    }
  }

  /** Releases the host ports a sandbox claimed. */
  releasePorts(id: string): void {
    const dir = path.join(this.run, 'ports');
    for (const f of fs.readdirSync(dir)) if (readFileIfExists(path.join(dir, f))?.trim() === id) fs.rmSync(path.join(dir, f), { force: true });
  }
}
