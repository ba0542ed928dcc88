// What the network layer makes and keeps: networks, a sandbox's attachment, its egress policy and
// published ports.

/** A network sandboxes attach to: a bridge on the host with a subnet of hutch's own. */
export interface NetworkDef {
  name: string;
  /** The bridge device on the host. */
  bridge: string;
  /** IPv4 block, `A.B.C.D/N`; the gateway (the bridge's address) is its first address. */
  subnet: string;
  gateway: string;
  /** Sandboxes on it cannot reach each other (the default network); on a named network they can. */
  isolated: boolean;
  createdAt: string;
}

/** One rule of an egress policy: a destination (block or DNS name, or any) and optionally a protocol and ports. */
export interface EgressRule {
  /** An IPv4 block (`A.B.C.D/N` or an address). */
  cidr?: string;
  /** A DNS name (`example.com`) or a wildcard under one (`*.example.com`): the addresses it resolves to. */
  name?: string;
  protocol?: 'tcp' | 'udp';
  /** Inclusive port range; absent = every port. */
  ports?: [number, number];
}

/** What a sandbox may connect to: deny rules first, then allow rules, then the default. */
export interface EgressPolicy {
  default: 'allow' | 'deny';
  allow: EgressRule[];
  deny: EgressRule[];
}

/** A host port forwarded to a port of the sandbox (`-p`). */
export interface PortMapping {
  /** The host address it listens on; 0.0.0.0 = every address of the host. */
  hostIp: string;
  hostPort: number;
  port: number;
  protocol: 'tcp' | 'udp';
}

/** What a sandbox asks of the network layer. */
export interface NetworkRequest {
  /** The network's name (`bridge` is the default network). */
  network: string;
  ports?: PortMapping[];
  policy?: EgressPolicy;
}

/** A sandbox's place on a network, as the platforms use it and the engine records it. */
export interface NetworkAttachment {
  network: string;
  /** The network namespace the sandbox joins (a bind mount under /run/netns). */
  netnsPath: string;
  /** The host side of the sandbox's veth pair (its other end is eth0 inside). */
  hostInterface: string;
  address: string;
  prefix: number;
  gateway: string;
  dns: string[];
  /** Host files to bind at /etc/resolv.conf and /etc/hosts inside. */
  resolvConf: string;
  hosts: string;
  ports: PortMapping[];
  policy: EgressPolicy;
  /** Counts policy changes: flows a name rule admitted carry it (a change makes them be judged again). */
  policyGeneration?: number;
}

/** The policy a sandbox gets unless it asks for another: the internet, not the host's networks. */
export const DEFAULT_POLICY: EgressPolicy = { default: 'allow', allow: [], deny: [] };
