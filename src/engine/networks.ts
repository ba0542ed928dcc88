// The engine's side of sandbox networks: the network layer (src/net) attaches a sandbox before
// its platform makes it and detaches it after its platform removed it; the record keeps where it is.
import type { EgressPolicy, NetworkManager } from '../net/index.js';
import type { SandboxRecord } from './state.js';
import type { SandboxStore } from './store.js';

let manager: Promise<NetworkManager> | undefined;

/** The network layer, loaded on first use (a sandbox without a network never loads it). */
export function networkManager(): Promise<NetworkManager> {
  manager ??= import('../net/index.js').then((m) => new m.NetworkManager());
  return manager;
}

/** Attaches a sandbox that asks for a network (record.network) and records where it is; the record is written. */
export async function attachNetwork(store: SandboxStore, record: SandboxRecord): Promise<void> {
  const n = record.network;
  if (!n) return;
  const net = await networkManager();
  const a = await net.attach({ id: record.id, name: record.name, root: store.root }, { network: n.name, ...(n.ports ? { ports: n.ports } : {}), ...(n.policy ? { policy: n.policy } : {}) });
  record.network = { ...n, address: a.address, netnsPath: a.netnsPath, resolvConf: a.resolvConf, hosts: a.hosts };
  store.write(record);
}

/** Detaches a sandbox that asked for a network; idempotent (a crash may have left any part of it). */
export async function detachNetwork(record: SandboxRecord): Promise<void> {
  if (!record.network) return;
  await (await networkManager()).detach(record.id);
}

/** Replaces the egress policy of an attached sandbox; the record is the caller's to write. */
export async function changePolicy(record: SandboxRecord, policy: EgressPolicy): Promise<void> {
  await (await networkManager()).setPolicy(record.id, policy);
  record.network = { ...record.network!, policy };
}
