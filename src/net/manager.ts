// The network layer's one entry point: networks (create, list, remove), a sandbox's attachment
// (attach, detach, policy) and cleanup after crashes. docs/network.md describes the design.
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import dns from 'node:dns/promises';
import fs from 'node:fs';
import path from 'node:path';
import { HutchError } from '../errors.js';
import { cidrsOverlap, cidrText, parseCidr, PROTECTED_BLOCKS } from './addr.js';
import { checkHostPortFree, hostNetworks, linkExists, sandboxDnsServers, setSysctl } from './host.js';
import { policyNames } from './policy.js';
import { baseScript, bridgeRemovalScript, nameAddressesScript, sandboxRemovalScript, sandboxScript, tableRemovalScript } from './rules.js';
import { checkNetworkName, DEFAULT_NETWORK, type Lease, NetworkStore } from './store.js';
import { ipBatch, nftApply, nftJson } from './tools.js';
import { listeningMarker } from './dns-service.js';
import { FileLock } from '../linux/filelock.js';
import { readFileIfExists } from '../linux/optional-file.js';
import { installDir } from '../install-dir.js';
import { DEFAULT_POLICY, type EgressPolicy, type NetworkAttachment, type NetworkDef, type NetworkRequest } from './types.js';

/** Where the network layer keeps things and what it gives sandboxes. */
export interface NetworkManagerOptions { root?: string; run?: string; defaultSubnet?: string }

/** Who a sandbox is, for its lease and its hosts entry. */
export interface SandboxIdentity { id: string; name: string; root: string }

/** A network as `network ls` shows it. */
export interface NetworkInfo extends NetworkDef { members: Lease[] }

const NAMED_POOL = '10.78.0.0/16';

/** The netns and host interface names of a sandbox (derived from its id: cleanup needs nothing else). */
export function sandboxLinkNames(id: string): { netns: string; hostInterface: string } {
  // A hash: ids of sandboxes are random, but nothing must make two of them share an interface name.
  return { netns: `hutch-${id}`, hostInterface: `hv${crypto.createHash('sha256').update(id).digest('hex').slice(0, 13)}` };
}

/** Bridges, addresses, rules and names of hutch's sandbox networks. */
export class NetworkManager {
  readonly store: NetworkStore;

  constructor(opts: NetworkManagerOptions = {}) {
    this.store = new NetworkStore(
      opts.root ?? process.env.HUTCH_NET_ROOT ?? '/var/lib/hutch/net',
      opts.run ?? process.env.HUTCH_NET_RUN ?? '/run/hutch-net',
      opts.defaultSubnet ?? process.env.HUTCH_BRIDGE_SUBNET ?? '10.77.0.0/16',
    );
  }

  /** Makes a named network (its bridge too); the subnet is the next free /24 of 10.78.0.0/16 unless given. */
  async createNetwork(name: string, subnet?: string): Promise<NetworkDef> {
    checkNetworkName(name);
    await using lock = await this.store.lock();
    void lock;
    const taken = [this.store.defaultNetwork(), ...this.store.named()].map((d) => parseCidr(d.subnet));
    const host = hostNetworks().map((c) => parseCidr(c));
    let block;
    if (subnet !== undefined) {
      block = parseCidr(subnet, '--subnet');
      if (block.prefix > 29 || block.prefix < 8) throw new HutchError('EINVAL', `invalid --subnet ${subnet}: want a prefix between /8 and /29`);
      const clash = [...taken, ...host].find((c) => cidrsOverlap(c, block!));
      if (clash) throw new HutchError('EEXIST', `subnet ${cidrText(block)} overlaps ${cidrText(clash)}, which a network or the host uses`);
    } else {
      const pool = parseCidr(NAMED_POOL);
      for (let i = 0; i < 256 && !block; i++) {
        const c = { base: pool.base + i * 256, prefix: 24 };
        if (![...taken, ...host].some((t) => cidrsOverlap(t, c))) block = c;
      }
      if (!block) throw new HutchError('ENOSPC', `no free /24 left in ${NAMED_POOL}: give one with --subnet`);
    }
    const def: NetworkDef = { name, bridge: NetworkStore.bridgeName(name), subnet: cidrText(block), gateway: cidrText({ base: block.base + 1, prefix: 32 }).replace('/32', ''), isolated: false, createdAt: new Date().toISOString() };
    this.store.add(def);
    try {
      await this.ensureBridge(def);
    } catch (e) {
      this.store.delete(name);
      throw e;
    }
    return def;
  }

  /** The default network and every named one, with the sandboxes on each. */
  listNetworks(): NetworkInfo[] {
    return [this.store.defaultNetwork(), ...this.store.named()].map((d) => ({ ...d, members: this.store.leases(d.name) }));
  }

  /** Removes a named network and its bridge; refused while sandboxes are on it. */
  async removeNetwork(name: string): Promise<void> {
    if (name === DEFAULT_NETWORK) throw new HutchError('EINVAL', 'the default network (bridge) cannot be removed: it goes when its last sandbox does');
    const def = this.store.get(name);
    await using lock = await this.store.lock();
    void lock;
    const members = this.store.leases(name);
    if (members.length) throw new HutchError('ESTATE', `network ${name} is in use by ${members.length} sandbox(es): ${members.slice(0, 5).map((m) => m.name || m.id).join(', ')}`);
    await this.dropBridge(def);
    this.store.delete(name);
    await this.dropTableIfUnused();
  }

  /** Makes the sandbox's netns with its end of a veth pair on the network's bridge, its address, routes, rules, resolv.conf and hosts. */
  async attach(who: SandboxIdentity, req: NetworkRequest): Promise<NetworkAttachment> {
    const def = this.store.get(req.network);
    const ports = req.ports ?? [];
    const policy = req.policy ?? DEFAULT_POLICY;
    for (const p of ports) await checkHostPortFree(p, who.id);
    const names = sandboxLinkNames(who.id);
    const dnsServers = sandboxDnsServers();
    const dir = this.store.sandboxDir(who.id);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const attachment: NetworkAttachment = {
      network: def.name, netnsPath: `/run/netns/${names.netns}`, hostInterface: names.hostInterface, address: '', prefix: parseCidr(def.subnet).prefix,
      gateway: def.gateway, dns: dnsServers, resolvConf: path.join(dir, 'resolv.conf'), hosts: path.join(dir, 'hosts'), ports, policy,
    };
    try {
      {
        await using lock = await this.store.lock();
        void lock;
        await this.ensureBridgeLink(def);
        attachment.address = this.store.claimAddress(def, { id: who.id, name: who.name, root: who.root });
        for (const p of ports) this.store.claimPort(p, who.id);
        this.store.saveAttachment(who.id, attachment);
      }
      this.writeNameFiles(who, attachment);
      // At once (none needs another): the netns with its veth; one nft transaction with the table's
      // base (rewritten whole, so that it holds even if someone flushed it) and the sandbox's own
      // chain, sets and map entries; the DNS service. Nothing runs in the netns before all are done.
      const steps = await Promise.allSettled([
        this.makeNetns(who.id, def, attachment),
        nftApply(this.baseScriptFor(def) + sandboxScript(who.id, attachment.address, policy, ports, 0), { id: who.id }),
        this.ensureDnsService(def.gateway, who.id),
      ]);
      const failed = steps.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      await this.resolvePolicyNames(who.id, policy, dnsServers);
      if (!def.isolated) {
        await using lock = await this.store.lock();
        void lock;
        this.refreshHosts(def);
      }
      return attachment;
    } catch (e) {
      try {
        await this.detach(who.id);
      } catch (cleanup) {
        // Both are said: the attach's error first; what is left goes with hutch rm -f (detach is idempotent).
        const msg = `${e instanceof Error ? e.message : String(e)}; undoing its network failed too (hutch rm -f finishes it): ${cleanup instanceof Error ? cleanup.message : String(cleanup)}`;
        throw new HutchError(e instanceof HutchError ? e.code : 'EINTERNAL', msg, { id: who.id, cause: e });
      }
      throw e;
    }
  }

  /** The sandbox's attachment, or null when it has none. */
  attachment(id: string): NetworkAttachment | null {
    return this.store.attachment(id);
  }

  /** Replaces a sandbox's egress policy; new and open flows follow it from the next packet. */
  async setPolicy(id: string, policy: EgressPolicy): Promise<NetworkAttachment> {
    const a = this.store.attachment(id);
    if (!a) throw new HutchError('ESTATE', `sandbox ${id} is on no network (its mode is none or host): it has no egress policy`, { id });
    const generation = ((a.policyGeneration ?? 0) + 1) & 0xffff;
    await nftApply(sandboxScript(id, a.address, policy, [], generation) + `flush set inet hutch sb_${id}_names\nflush set inet hutch sb_${id}_denied\n`, { id });
    const next = { ...a, policy, policyGeneration: generation };
    this.store.saveAttachment(id, next);
    await this.resolvePolicyNames(id, policy, a.dns);
    return next;
  }

  /** Packets of the sandbox its egress policy dropped; null when it has no rules. */
  async droppedPackets(id: string): Promise<number | null> {
    if (!this.store.attachment(id)) return null;
    const out = await nftJson(['list', 'counter', 'inet', 'hutch', `sb_${id}_dropped`]).catch(() => null) /* no such counter (the table went with its last bridge): unknown */ as { nftables?: { counter?: { packets?: number } }[] } | null;
    const c = out?.nftables?.find((x) => x.counter)?.counter;
    return typeof c?.packets === 'number' ? c.packets : null;
  }

  /** Packets each sandbox's policy dropped, by sandbox id (one nft call for all of them). */
  async droppedPacketsAll(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (!this.tableExists()) return out;
    const json = await nftJson(['list', 'counters', 'table', 'inet', 'hutch']) as { nftables?: { counter?: { name?: string; packets?: number } }[] };
    for (const x of json.nftables ?? []) {
      const m = /^sb_(.+)_dropped$/.exec(x.counter?.name ?? '');
      if (m && typeof x.counter?.packets === 'number') out.set(m[1]!, x.counter.packets);
    }
    return out;
  }

  /** Removes everything a sandbox had on its network; idempotent, and works from the id alone after a crash. */
  async detach(id: string): Promise<void> {
    const a = this.store.attachment(id);
    const { netns, hostInterface } = sandboxLinkNames(id);
    const networks = [this.store.defaultNetwork(), ...this.store.named()];
    const held = networks.flatMap((d) => this.store.leases(d.name).filter((l) => l.id === id).map((l) => ({ def: d, lease: l })));
    const address = a?.address || held[0]?.lease.address || null;
    // The host end first (that takes eth0 with it at once; a netns's own teardown is deferred).
    const gone = [...(linkExists(hostInterface) ? [`link del ${hostInterface}`] : []), ...(fs.existsSync(`/run/netns/${netns}`) ? [`netns del ${netns}`] : [])];
    const steps = await Promise.allSettled([
      gone.length ? ipBatch(gone, undefined, { id }) : Promise.resolve(''),
      this.tableExists() ? nftApply(sandboxRemovalScript(id, address, a?.ports ?? []), { id }) : Promise.resolve(''),
    ]);
    const failed = steps.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    {
      await using lock = await this.store.lock();
      void lock;
      for (const { def } of held) this.store.releaseAddresses(def.name, id);
      this.store.releasePorts(id);
      for (const { def } of held) if (!def.isolated) this.refreshHosts(def);
      const dflt = this.store.defaultNetwork();
      if (this.store.leases(dflt.name).length === 0 && linkExists(dflt.bridge)) await this.dropBridge(dflt);
      await this.dropTableIfUnused();
    }
    fs.rmSync(this.store.sandboxDir(id), { recursive: true, force: true });
  }

  /** Detaches every sandbox whose lease `isGone` says is no longer anyone's (a crash left it); returns their ids. */
  async collectGarbage(isGone: (lease: Lease) => boolean): Promise<string[]> {
    const stale = new Set<string>();
    const networks = this.listNetworks();
    for (const d of networks) {
      // A torn lease (a crash while it was written) names nobody: only its address is freed.
      if (d.members.some((l) => !l.id)) this.store.releaseAddresses(d.name, '');
      for (const l of d.members) if (l.id && isGone(l)) stale.add(l.id);
    }
    // Files of a sandbox that holds no lease and has no attachment: an attach cut short before its
    // claim (left a minute, so as not to race an attach under way).
    for (const id of this.store.sandboxIds()) {
      const dir = this.store.sandboxDir(id);
      const old = (fs.statSync(dir, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) < Date.now() - 60_000;
      if (old && !networks.some((d) => d.members.some((m) => m.id === id)) && !fs.existsSync(path.join(dir, 'attachment.json'))) stale.add(id);
    }
    for (const id of stale) await this.detach(id);
    return [...stale];
  }

  private tableExists(): boolean {
    // The table exists while any of hutch's bridges does (they are made and dropped together under the lock).
    return this.listNetworks().some((d) => linkExists(d.bridge));
  }

  /**
   * Makes sure hutch's DNS service (dns-service.ts, one process per host) listens on `gateway`:
   * started when none runs (its lock is free), then awaited until its marker for the gateway is there.
   */
  private async ensureDnsService(gateway: string, id: string): Promise<void> {
    const marker = listeningMarker(this.store.run, gateway);
    const lockFile = path.join(this.store.run, 'dns.lock');
    let spawnedAt = 0;
    for (const deadline = Date.now() + 5000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 10))) {
      const free = FileLock.tryAcquire(lockFile, 'exclusive');
      free?.release();
      if (!free && fs.existsSync(marker)) return;
      if (free && Date.now() - spawnedAt > 1000) {
        spawnedAt = Date.now();
        const env = { ...process.env };
        delete env.NODE_EXTRA_CA_CERTS; // ~40 ms of each node start, and nothing it needs
        const log = fs.openSync(path.join(this.store.run, 'dns.log'), 'a', 0o600);
        try {
          spawn(process.execPath, [path.join(installDir(), 'dist/bundle/netdns.cjs'), '--root', this.store.root, '--run', this.store.run],
            { detached: true, stdio: ['ignore', 'ignore', log], cwd: '/', env: { ...env, HUTCH_BRIDGE_SUBNET: this.store.defaultNetwork().subnet } }).unref();
        } finally {
          fs.closeSync(log);
        }
      }
    }
    const last = (readFileIfExists(path.join(this.store.run, 'dns.log')) ?? '').trim().split('\n').pop() ?? '';
    throw new HutchError('EEXEC', `hutch's DNS server did not come up on ${gateway}:53${last ? `: ${last.slice(0, 200)}` : ''}`, { id });
  }

  /** Makes the network's bridge if it is missing, and writes the table's base (alone, or first in `then`'s transaction). */
  private async ensureBridge(def: NetworkDef, then = ''): Promise<void> {
    await this.ensureBridgeLink(def);
    await nftApply(this.baseScriptFor(def) + then);
  }

  private async ensureBridgeLink(def: NetworkDef): Promise<void> {
    if (!linkExists(def.bridge)) {
      await ipBatch([`link add ${def.bridge} type bridge`, `addr add ${def.gateway}/${parseCidr(def.subnet).prefix} dev ${def.bridge}`, `link set ${def.bridge} up`]);
      // Published ports reached on the host's loopback are forwarded into the bridge.
      setSysctl(`net/ipv4/conf/${def.bridge}/route_localnet`, '1');
      setSysctl('net/ipv4/ip_forward', '1');
    }
  }

  private baseScriptFor(def: NetworkDef): string {
    const present = this.listNetworks().filter((d) => d.bridge === def.bridge || linkExists(d.bridge));
    const protectedBlocks = withoutCovered([...PROTECTED_BLOCKS, ...hostNetworks()]);
    return baseScript(present.map((d) => d.bridge), present.filter((d) => !d.isolated).map((d) => d.bridge), present.map((d) => d.gateway), protectedBlocks);
  }

  private async dropBridge(def: NetworkDef): Promise<void> {
    if (this.tableExists()) await nftApply(bridgeRemovalScript(def.bridge, def.gateway));
    if (linkExists(def.bridge)) await ipBatch([`link del ${def.bridge}`]);
  }

  private async dropTableIfUnused(): Promise<void> {
    const inUse = this.listNetworks().some((d) => d.members.length > 0 || linkExists(d.bridge));
    if (!inUse) await nftApply(tableRemovalScript());
  }

  private async makeNetns(id: string, def: NetworkDef, a: NetworkAttachment): Promise<void> {
    const { netns, hostInterface } = sandboxLinkNames(id);
    await ipBatch([
      `netns add ${netns}`,
      `link add ${hostInterface} type veth peer name eth0 netns ${netns}`,
      `link set ${hostInterface} master ${def.bridge}`,
      // On the default network the ports cannot reach each other, only the bridge (the host's side).
      ...(def.isolated ? [`link set dev ${hostInterface} type bridge_slave isolated on`] : []),
      `link set ${hostInterface} up`,
    ], undefined, { id });
    await ipBatch(['link set lo up', `addr add ${a.address}/${a.prefix} dev eth0`, 'link set eth0 up', `route add default via ${a.gateway}`], netns, { id });
  }

  private writeNameFiles(who: SandboxIdentity, a: NetworkAttachment): void {
    // hutch's DNS service on the gateway answers it (and forwards to a.dns, the upstreams).
    const resolv = `nameserver ${a.gateway}\n`;
    fs.writeFileSync(a.resolvConf, resolv, { mode: 0o644 });
    fs.writeFileSync(a.hosts, hostsText(who.name, a.address, []), { mode: 0o644 });
  }

  /** Rewrites every member's hosts file of a named network in place (the sandboxes have them bind-mounted). */
  private refreshHosts(def: NetworkDef): void {
    const members = this.store.leases(def.name);
    for (const m of members) {
      const file = path.join(this.store.sandboxDir(m.id), 'hosts');
      if (!fs.existsSync(file)) continue;
      fs.writeFileSync(file, hostsText(m.name, m.address, members.filter((o) => o.id !== m.id)));
    }
  }

  /** Resolves the policy's names with the sandbox's own DNS servers (what it would see) into its sets. */
  private async resolvePolicyNames(id: string, policy: EgressPolicy, servers: string[]): Promise<void> {
    const resolver = new dns.Resolver({ timeout: 2000, tries: 2 });
    if (servers.length) resolver.setServers(servers);
    for (const [rules, denied] of [[policy.allow, false], [policy.deny, true]] as const) {
      for (const name of policyNames({ ...policy, allow: rules })) {
        if (name.startsWith('*.')) continue; // a wildcard has no addresses of its own to look up
        // A name that does not resolve allows nothing (yet): not an error of the policy.
        const found = await resolver.resolve4(name, { ttl: true }).catch(() => []);
        const script = nameAddressesScript(id, found.map((r) => r.address), Math.min(...found.map((r) => r.ttl), 3600), denied);
        if (script) await nftApply(script, { id });
      }
    }
  }
}

/** The blocks no other block of the list covers (nftables refuses overlapping intervals in one set). */
function withoutCovered(blocks: string[]): string[] {
  const parsed = [...new Set(blocks)].map((b) => parseCidr(b));
  return parsed.filter((c, i) => !parsed.some((o, j) => j !== i && o.prefix <= c.prefix && cidrsOverlap(o, c) && (o.prefix < c.prefix || j < i))).map(cidrText);
}

function hostsText(name: string, address: string, peers: { name: string; address: string }[]): string {
  return ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', `${address}\t${name}`, ...peers.filter((p) => p.name).map((p) => `${p.address}\t${p.name}`)].join('\n') + '\n';
}
