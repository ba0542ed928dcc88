// Sandbox networks (docs/network.md): bridges, veths and netns, hutch's IPAM, NAT and egress
// policy in hutch's own nftables table, published ports. Only this layer runs `ip` and `nft`.
export * from './types.js';
export { NetworkManager, sandboxLinkNames, type NetworkInfo, type NetworkManagerOptions, type SandboxIdentity } from './manager.js';
export { checkPolicy, checkRule, parseRule } from './policy.js';
export { checkPortMapping, parsePortMapping } from './ports.js';
export { DEFAULT_NETWORK, checkNetworkName, type Lease } from './store.js';
