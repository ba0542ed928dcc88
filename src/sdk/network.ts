// Sandbox networks from the SDK: the types of hutchd's network fields (the SDK's own copies: it
// imports nothing of the server), a sandbox's egress policy, changeable while it runs, and the named
// networks of hutchd.
import type { CallOptions, Transport } from './transport.js';

/** One rule of an egress policy: a destination (block or DNS name, or any) and optionally a protocol and ports. */
export interface EgressRule {
  /** An IPv4 block (`A.B.C.D/N`) or an address. */
  cidr?: string;
  /** A DNS name (`example.com`) or a wildcard under one (`*.example.com`): the addresses it resolves to. */
  name?: string;
  protocol?: 'tcp' | 'udp';
  /** Inclusive port range [low, high], 1-65535; absent: every port. */
  ports?: [number, number];
}

/** What a sandbox may connect to: deny rules first, then allow rules, then the default. */
export interface EgressPolicy {
  default: 'allow' | 'deny';
  allow: EgressRule[];
  deny: EgressRule[];
}

/** A host port forwarded to a port of the sandbox, as hutchd reports it. */
export interface PortMapping {
  /** The host address it listens on; 0.0.0.0 = every address of the host. */
  hostIp: string;
  hostPort: number;
  port: number;
  protocol: 'tcp' | 'udp';
}

/** A port to publish at create: `"[HOSTIP:]HOSTPORT:PORT[/udp]"` or an object (hostIp default 0.0.0.0, protocol tcp). */
export type PortSpec = string | { hostIp?: string; hostPort: number; port: number; protocol?: 'tcp' | 'udp' };

/** Where a sandbox is on the network: none, host, bridge or a named network, with its address and published ports on the last two. */
export interface SandboxNetworkInfo {
  name: string;
  address?: string;
  ports?: PortMapping[];
}

/** A network of hutchd (`bridge`, the default one, or one made with createNetwork). */
export interface NetworkInfo {
  name: string;
  /** IPv4 block `A.B.C.D/N`; the gateway is its first address. */
  subnet: string;
  gateway: string;
  /** Its sandboxes cannot reach each other (the default network); on a named network they can, by name. */
  isolated: boolean;
  /** How many sandboxes are on it. */
  sandboxes: number;
}

/** A sandbox's network: its egress policy, read and changed while it runs (bridge and named networks). */
export class SandboxNetwork {
  constructor(private readonly transport: Transport, private readonly id: string) {}

  private get path(): string {
    return `/v1/sandboxes/${encodeURIComponent(this.id)}/network/policy`;
  }

  /** Its egress policy (ESTATE, 409, on the none and host networks). */
  getPolicy(opts: CallOptions = {}): Promise<EgressPolicy> {
    return this.transport.json<EgressPolicy>({ ...opts, method: 'GET', path: this.path });
  }

  /** Replaces its egress policy; connections it no longer allows fail from now on. Returns the policy as hutchd keeps it. */
  setPolicy(policy: Partial<EgressPolicy>, opts: CallOptions = {}): Promise<EgressPolicy> {
    return this.transport.json<EgressPolicy>({ ...opts, method: 'PUT', path: this.path, json: policy });
  }
}

/** The networks of hutchd. */
export async function listNetworks(t: Transport, opts: CallOptions): Promise<NetworkInfo[]> {
  return (await t.json<{ networks: NetworkInfo[] }>({ ...opts, method: 'GET', path: '/v1/networks' })).networks;
}

/** Makes a named network (a subnet of hutch's own unless `subnet` is given). */
export function createNetwork(t: Transport, name: string, subnet: string | undefined, opts: CallOptions): Promise<NetworkInfo> {
  return t.json<NetworkInfo>({ ...opts, method: 'POST', path: '/v1/networks', json: { name, ...(subnet ? { subnet } : {}) } });
}

/** Removes a named network (ESTATE, 409, while sandboxes are on it). */
export async function removeNetwork(t: Transport, name: string, opts: CallOptions): Promise<void> {
  await t.json({ ...opts, method: 'DELETE', path: `/v1/networks/${encodeURIComponent(name)}` });
}
