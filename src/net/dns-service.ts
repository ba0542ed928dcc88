// hutch's DNS server for sandboxes on its networks: one process per host listening on the
// gateway of every hutch bridge (docs/network.md). It answers the names of a named network's
// members, refuses what a sandbox's policy denies, forwards the rest to the sandbox's upstream
// servers, and adds the addresses an allowed name resolved to to that sandbox's allowed set, so
// that a policy by name follows the records the sandbox itself sees.
import fs from 'node:fs';
import path from 'node:path';
import { startDnsServer, type DnsAddress, type DnsDecision, type DnsServer } from './dns/index.js';
import { linkExists } from './host.js';
import { nameAddressesScript } from './rules.js';
import { type Lease, NetworkStore } from './store.js';
import { nftApply } from './tools.js';
import type { EgressPolicy, NetworkAttachment, NetworkDef } from './types.js';

/** A name a rule names: exactly, or as `*.suffix` any name below it. */
export function nameMatches(rule: string, name: string): boolean {
  return rule.startsWith('*.') ? name.endsWith(rule.slice(1)) : rule === name;
}

/** What the policy says about looking a name up: deny rules refuse it; a deny default refuses names no allow rule names. */
export function dnsDecision(policy: EgressPolicy, name: string): 'allow' | 'refuse' {
  if (policy.deny.some((r) => r.name && nameMatches(r.name, name))) return 'refuse';
  if (policy.default === 'deny' && !policy.allow.some((r) => r.name && nameMatches(r.name, name))) return 'refuse';
  return 'allow';
}

/** The file that says the service listens on a gateway (attach waits for it). */
export function listeningMarker(run: string, gateway: string): string {
  return path.join(run, 'dns', gateway);
}

interface Member { lease: Lease; def: NetworkDef; attachment: NetworkAttachment | null }

/** Runs the service until no hutch bridge is left; resolves when it stopped. */
export async function runDnsService(store: NetworkStore, log: (line: string) => void): Promise<void> {
  fs.mkdirSync(path.join(store.run, 'dns'), { recursive: true, mode: 0o700 });
  let members = new Map<string, Member>();
  const refresh = () => {
    const next = new Map<string, Member>();
    for (const def of [store.defaultNetwork(), ...store.named()]) {
      for (const lease of store.leases(def.name)) next.set(lease.address, { lease, def, attachment: store.attachment(lease.id) });
    }
    members = next;
  };
  // The attachment is read for every question: a policy changed a moment ago must hold for the next lookup.
  const member = (ip: string): Member | undefined => {
    if (!members.get(ip)) refresh(); // a sandbox attached since the last look
    const m = members.get(ip);
    return m && { ...m, attachment: store.attachment(m.lease.id) };
  };
  const server: DnsServer = await startDnsServer({
    listen: [],
    upstreams: [],
    upstreamsFor: (ip) => (member(ip)?.attachment?.dns ?? []).map((address) => ({ address, port: 53 })),
    decide: (ip, name): DnsDecision => {
      const m = member(ip);
      if (!m?.attachment) return 'refuse'; // not one of ours
      if (!m.def.isolated && [...members.values()].some((o) => o.def.name === m.def.name && o.lease.name.toLowerCase() === name)) return 'local';
      return dnsDecision(m.attachment.policy, name);
    },
    localAnswer: (ip, name) => {
      const m = member(ip);
      const found = [...members.values()].filter((o) => m && o.def.name === m.def.name && o.lease.name.toLowerCase() === name).map((o) => o.lease.address);
      return found.length ? found : null;
    },
    onAnswer: async (ip, name, addrs: DnsAddress[]) => {
      const m = member(ip);
      const policy = m?.attachment?.policy;
      if (!m || !policy) return;
      const v4 = addrs.filter((a) => a.family === 4);
      if (!v4.length || !policy.allow.some((r) => r.name && nameMatches(r.name, name))) return;
      // At least a minute: a connection is often opened a little after its lookup.
      const ttl = Math.max(60, Math.min(...v4.map((a) => a.ttl)));
      await nftApply(nameAddressesScript(m.lease.id, v4.map((a) => a.address), ttl, false), { id: m.lease.id });
    },
  });
  const bound = new Map<string, string>(); // gateway → bridge
  let idle = 0;
  try {
    for (;;) {
      const wanted = new Map<string, string>();
      for (const def of [store.defaultNetwork(), ...store.named()]) if (linkExists(def.bridge)) wanted.set(def.gateway, def.bridge);
      for (const [gw] of bound) {
        if (wanted.has(gw)) continue;
        await server.removeListener({ address: gw, port: 53 }).catch((e: Error) => log(`stop listening on ${gw}: ${e.message}`));
        fs.rmSync(listeningMarker(store.run, gw), { force: true });
        bound.delete(gw);
      }
      for (const [gw, bridge] of wanted) {
        if (bound.has(gw)) continue;
        try {
          await server.addListener({ address: gw, port: 53 });
          bound.set(gw, bridge);
          fs.writeFileSync(listeningMarker(store.run, gw), `${process.pid}\n`);
        } catch (e) {
          log(`cannot listen on ${gw}:53 (${bridge}): ${(e as Error).message}`);
        }
      }
      idle = wanted.size === 0 ? idle + 1 : 0;
      if (idle >= 10) return; // 2 s without a bridge: nothing to serve
      refresh();
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    for (const gw of bound.keys()) fs.rmSync(listeningMarker(store.run, gw), { force: true });
    await server.close();
  }
}
