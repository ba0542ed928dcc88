// hutch's nftables table (`inet hutch`): its sets, maps and base chains, and a sandbox's own
// objects. Scripts only; tools.ts applies them. docs/network.md explains the rules.
import { policyChain, sandboxObjects } from './policy.js';
import type { EgressPolicy, PortMapping } from './types.js';

/** The table's name, in the inet family. */
export const TABLE = 'inet hutch';

const DECLARATIONS = [
  `add table ${TABLE}`,
  `add set ${TABLE} bridges { type ifname; }`,
  `add set ${TABLE} peers { type ifname . ifname; }`,
  `add set ${TABLE} gateways { type ipv4_addr; }`,
  `add set ${TABLE} protected { type ipv4_addr; flags interval; }`,
  `add map ${TABLE} egress { type ipv4_addr : verdict; }`,
  `add map ${TABLE} pub_tcp { type inet_service : ipv4_addr . inet_service; }`,
  `add map ${TABLE} pub_udp { type inet_service : ipv4_addr . inet_service; }`,
  `add map ${TABLE} pub_tcp_ip { type ipv4_addr . inet_service : ipv4_addr . inet_service; }`,
  `add map ${TABLE} pub_udp_ip { type ipv4_addr . inet_service : ipv4_addr . inet_service; }`,
];

function chain(name: string, hook: string, rules: string[]): string[] {
  return [`add chain ${TABLE} ${name} { ${hook}; policy accept; }`, `flush chain ${TABLE} ${name}`, ...rules.map((r) => `add rule ${TABLE} ${name} ${r}`)];
}

const dnatRules = ['tcp', 'udp'].flatMap((p) => [
  `fib daddr type local meta l4proto ${p} dnat ip to ip daddr . ${p} dport map @pub_${p}_ip`,
  `fib daddr type local meta l4proto ${p} dnat ip to ${p} dport map @pub_${p}`,
]);

/**
 * The table with its base chains, (re)written whole: applying it again changes nothing of the
 * sandboxes' own objects. `protectedBlocks` are the blocks a sandbox reaches only through an allow
 * rule (private ranges, link-local, the host's own networks).
 */
export function baseScript(bridges: string[], peerBridges: string[], gateways: string[], protectedBlocks: string[]): string {
  return [
    ...DECLARATIONS,
    ...(gateways.length ? [`add element ${TABLE} gateways { ${gateways.join(', ')} }`] : []),
    ...(bridges.length ? [`add element ${TABLE} bridges { ${bridges.join(', ')} }`] : []),
    ...(peerBridges.length ? [`add element ${TABLE} peers { ${peerBridges.map((b) => `${b} . ${b}`).join(', ')} }`] : []),
    `flush set ${TABLE} protected`,
    `add element ${TABLE} protected { ${protectedBlocks.join(', ')} }`,
    // A packet from a sandbox goes through its own chain (picked by its source address, which it
    // cannot change: it has no CAP_NET_ADMIN over its netns); from an unknown source, or IPv6, it is dropped.
    ...chain('forward', 'type filter hook forward priority filter', [
      // Within a named network (bridged frames reach this hook where br_netfilter is loaded).
      'iifname . oifname @peers accept',
      'iifname @bridges ip saddr vmap @egress',
      'iifname @bridges drop',
      'oifname @bridges ct state established,related accept',
      'oifname @bridges ct status dnat accept',
      'oifname @bridges drop',
    ]),
    // The host's own services are not the sandboxes' business.
    ...chain('input', 'type filter hook input priority filter', [
      'iifname @bridges ct state established,related accept',
      // hutch's DNS service, on each bridge's gateway.
      'iifname @bridges ip daddr @gateways udp dport 53 accept',
      'iifname @bridges ip daddr @gateways tcp dport 53 accept',
      'iifname @bridges drop',
    ]),
    ...chain('prerouting', 'type nat hook prerouting priority dstnat', dnatRules),
    ...chain('output', 'type nat hook output priority -100', dnatRules),
    ...chain('postrouting', 'type nat hook postrouting priority srcnat', [
      'iifname @bridges oifname != @bridges masquerade',
      // A published port reached on the host's loopback: the sandbox could not answer 127.0.0.1.
      'oifname @bridges ct status dnat ip saddr 127.0.0.0/8 masquerade',
    ]),
  ].join('\n') + '\n';
}

/** A bridge removed from the sets the base chains match. */
export function bridgeRemovalScript(bridge: string, gateway: string): string {
  return [...DECLARATIONS, `add element ${TABLE} bridges { ${bridge} }`, `delete element ${TABLE} bridges { ${bridge} }`,
    `add element ${TABLE} gateways { ${gateway} }`, `delete element ${TABLE} gateways { ${gateway} }`,
    `add element ${TABLE} peers { ${bridge} . ${bridge} }`, `delete element ${TABLE} peers { ${bridge} . ${bridge} }`].join('\n') + '\n';
}

function portElements(address: string, ports: PortMapping[]): { map: string; element: string }[] {
  return ports.map((p) => p.hostIp === '0.0.0.0'
    ? { map: `pub_${p.protocol}`, element: `${p.hostPort} : ${address} . ${p.port}` }
    : { map: `pub_${p.protocol}_ip`, element: `${p.hostIp} . ${p.hostPort} : ${address} . ${p.port}` });
}

/** A sandbox's chain, sets and counter (made if missing), its policy written into the chain, and its map entries. */
export function sandboxScript(id: string, address: string, policy: EgressPolicy, ports: PortMapping[], generation: number): string {
  const o = sandboxObjects(id);
  return [
    ...DECLARATIONS,
    `add counter ${TABLE} ${o.counter}`,
    `add set ${TABLE} ${o.names} { type ipv4_addr; flags timeout; }`,
    `add set ${TABLE} ${o.denyNames} { type ipv4_addr; flags timeout; }`,
    `add chain ${TABLE} ${o.chain}`,
    `flush chain ${TABLE} ${o.chain}`,
    ...policyChain(id, policy, generation).map((r) => `add rule ${TABLE} ${o.chain} ${r}`),
    `add element ${TABLE} egress { ${address} : jump ${o.chain} }`,
    ...portElements(address, ports).map((e) => `add element ${TABLE} ${e.map} { ${e.element} }`),
  ].join('\n') + '\n';
}

/**
 * Removes a sandbox's objects; each is added first so that the script holds whether or not a
 * crash already removed some (nft 1.0.6 has no `destroy`).
 */
export function sandboxRemovalScript(id: string, address: string | null, ports: PortMapping[]): string {
  const o = sandboxObjects(id);
  const lines = [...DECLARATIONS, `add chain ${TABLE} ${o.chain}`];
  if (address) {
    lines.push(`add element ${TABLE} egress { ${address} : jump ${o.chain} }`, `delete element ${TABLE} egress { ${address} }`);
    for (const e of portElements(address, ports)) {
      const key = e.element.slice(0, e.element.indexOf(' : '));
      lines.push(`add element ${TABLE} ${e.map} { ${e.element} }`, `delete element ${TABLE} ${e.map} { ${key} }`);
    }
  }
  lines.push(
    `flush chain ${TABLE} ${o.chain}`, `delete chain ${TABLE} ${o.chain}`,
    `add counter ${TABLE} ${o.counter}`, `delete counter ${TABLE} ${o.counter}`,
    `add set ${TABLE} ${o.names} { type ipv4_addr; flags timeout; }`, `delete set ${TABLE} ${o.names}`,
    `add set ${TABLE} ${o.denyNames} { type ipv4_addr; flags timeout; }`, `delete set ${TABLE} ${o.denyNames}`,
  );
  return lines.join('\n') + '\n';
}

/** Adds addresses a DNS name resolved to, to the sandbox's allowed (or denied) set, for `ttlSeconds`. */
export function nameAddressesScript(id: string, addresses: string[], ttlSeconds: number, denied: boolean): string {
  const o = sandboxObjects(id);
  if (!addresses.length) return '';
  const ttl = Math.max(1, Math.min(Math.round(ttlSeconds), 86_400));
  const set = `${TABLE} ${denied ? o.denyNames : o.names}`;
  const timed = addresses.map((a) => `${a} timeout ${ttl}s`).join(', ');
  // `add` leaves an element that is there as it is: removed and added again, its timeout starts anew.
  return `add element ${set} { ${timed} }\ndelete element ${set} { ${addresses.join(', ')} }\nadd element ${set} { ${timed} }\n`;
}

/** Removes the whole table (nothing attached any more). */
export function tableRemovalScript(): string {
  return `add table ${TABLE}\ndelete table ${TABLE}\n`;
}
