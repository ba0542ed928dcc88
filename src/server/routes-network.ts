// Sandbox networks in the API: the network fields of a create (network, ports, policy), a
// sandbox's egress policy (GET/PUT /v1/sandboxes/{id}/network/policy) and /v1/networks.
import { HutchError } from '../errors.js';
import { checkPolicy, checkPortMapping, type EgressPolicy, type PortMapping } from '../net/index.js';
import { optString, readJson, sendJson } from './http.js';
import type { Route } from './router.js';
import { servedSandbox, type Services } from './services.js';

/** The network fields of a create request: the mode (the server's default when absent), ports and policy. */
export function networkOptionsOf(s: Services, body: Record<string, unknown>): { network: string; ports?: PortMapping[]; policy?: EgressPolicy } {
  const network = optString(body, 'network', 40) ?? s.network.defaultMode;
  if (network === 'host' && !s.network.allowHost) throw new HutchError('EPERM', 'network host is not allowed by this server (hutchd --allow-host-network)');
  const rawPorts = body['ports'];
  if (rawPorts !== undefined && (!Array.isArray(rawPorts) || rawPorts.length > 64)) throw new HutchError('EINVAL', 'ports must be a list (at most 64) of "[HOSTIP:]HOSTPORT:PORT[/udp]" or {hostIp?, hostPort, port, protocol?}');
  const ports = Array.isArray(rawPorts) ? rawPorts.map(checkPortMapping) : undefined;
  const policy = body['policy'] === undefined || body['policy'] === null ? undefined : checkPolicy(body['policy']);
  return { network, ...(ports?.length ? { ports } : {}), ...(policy ? { policy } : {}) };
}

/** The routes. */
export function networkRoutes(s: Services): Route[] {
  return [
    {
      method: 'GET', path: '/v1/sandboxes/{id}/network/policy', handle: async ({ res, params }) => {
        const info = await servedSandbox(s, params['id']!);
        if (!info.network) throw new HutchError('ESTATE', `sandbox ${info.id} is on no network (none or host): it has no egress policy`, { id: info.id });
        sendJson(res, 200, info.network.policy ?? { default: 'allow', allow: [], deny: [] });
      },
    },
    {
      method: 'PUT', path: '/v1/sandboxes/{id}/network/policy', handle: async ({ req, res, params }) => {
        const policy = checkPolicy(await readJson(req, s.limits.maxJsonBytes));
        const info = await servedSandbox(s, params['id']!);
        const changed = await s.engine.setNetworkPolicy(info.id, policy);
        s.events.publish({ type: 'policy-changed', sandboxId: info.id });
        sendJson(res, 200, changed.network?.policy ?? policy);
      },
    },
    {
      method: 'GET', path: '/v1/networks', handle: async ({ res }) => {
        const all = (await s.engine.networks()).listNetworks();
        sendJson(res, 200, { networks: all.map((n) => ({ name: n.name, subnet: n.subnet, gateway: n.gateway, isolated: n.isolated, sandboxes: n.members.length })) });
      },
    },
    {
      method: 'POST', path: '/v1/networks', handle: async ({ req, res }) => {
        const body = await readJson(req, s.limits.maxJsonBytes);
        for (const k of Object.keys(body)) if (k !== 'name' && k !== 'subnet') throw new HutchError('EINVAL', `unknown field ${k.slice(0, 80)} in network create (fields: name, subnet)`);
        const name = optString(body, 'name', 64);
        if (!name) throw new HutchError('EINVAL', 'a network needs a name');
        const def = await (await s.engine.networks()).createNetwork(name, optString(body, 'subnet', 40));
        sendJson(res, 201, { name: def.name, subnet: def.subnet, gateway: def.gateway, isolated: def.isolated, sandboxes: 0 });
      },
    },
    {
      method: 'DELETE', path: '/v1/networks/{name}', handle: async ({ res, params }) => {
        await (await s.engine.networks()).removeNetwork(params['name']!);
        res.writeHead(204).end();
      },
    },
  ];
}
