// hutch network: sandbox networks (create, ls, inspect, rm) and a sandbox's egress policy.
import { HutchError } from '../../errors.js';
import { bool, str, type FlagSpec } from '../args.js';
import type { Command } from '../command.js';
import { policyFlags } from './sandbox-flags.js';

const SUBCOMMANDS = 'create NAME [--subnet CIDR], ls, inspect NAME..., rm NAME..., policy SANDBOX [--egress allow|deny] [--allow RULE]... [--deny RULE]...';

const FLAGS: FlagSpec[] = [
  { name: 'subnet', kind: 'string', value: 'CIDR', help: 'create: the network\'s IPv4 block (default: the next free /24 of 10.78.0.0/16)' },
  { name: 'egress', kind: 'string', value: 'allow|deny', help: 'policy: what a connection no rule names gets' },
  { name: 'allow', kind: 'list', value: 'RULE', help: 'policy: allow a CIDR, address or DNS name, optionally :tcp/PORT[-PORT] (repeatable)' },
  { name: 'deny', kind: 'list', value: 'RULE', help: 'policy: deny RULE (repeatable; deny rules come first)' },
  { name: 'json', kind: 'bool', help: 'ls, policy: print JSON' },
];

export const command: Command = {
  usage: `hutch network ${SUBCOMMANDS.replace(/, /g, ' | ')}`,
  summary: 'Networks sandboxes attach to with --network (bridge is the default one), and a sandbox\'s egress policy (docs/network.md).',
  flags: FLAGS,
  async run(ctx, args) {
    const [sub, ...operands] = args.operands;
    const engine = await ctx.engine();
    const json = bool(args.flags, 'json');
    if (sub === 'create') {
      if (operands.length !== 1) throw new HutchError('EINVAL', 'network create: give one NAME');
      const def = await (await engine.networks()).createNetwork(operands[0]!, str(args.flags, 'subnet'));
      ctx.out(json ? JSON.stringify(def, null, 2) + '\n' : `${def.name}\n`);
      return 0;
    }
    if (sub === 'ls' || sub === 'list') {
      const all = (await engine.networks()).listNetworks();
      if (json) ctx.out(JSON.stringify(all, null, 2) + '\n');
      else {
        ctx.out(`${'NAME'.padEnd(20)}${'SUBNET'.padEnd(18)}${'BRIDGE'.padEnd(17)}SANDBOXES\n`);
        for (const n of all) ctx.out(`${n.name.padEnd(20)}${n.subnet.padEnd(18)}${n.bridge.padEnd(17)}${n.members.length}\n`);
      }
      return 0;
    }
    if (sub === 'inspect' || sub === 'rm') {
      if (operands.length === 0) throw new HutchError('EINVAL', `network ${sub}: missing network name`);
      const net = await engine.networks();
      const out: unknown[] = [];
      for (const name of operands) {
        if (sub === 'rm') {
          await net.removeNetwork(name);
          ctx.out(`${name}\n`);
        } else out.push(net.listNetworks().find((n) => n.name === name) ?? net.store.get(name));
      }
      if (sub === 'inspect') ctx.out(JSON.stringify(out, null, 2) + '\n');
      return 0;
    }
    if (sub === 'policy') {
      if (operands.length !== 1) throw new HutchError('EINVAL', 'network policy: give one SANDBOX');
      const policy = policyFlags(args);
      const info = policy ? await engine.setNetworkPolicy(operands[0]!, policy) : await engine.inspect(operands[0]!);
      if (!info.network) throw new HutchError('ESTATE', `sandbox ${info.id} is on no network (none or host): it has no egress policy`, { id: info.id });
      const shown = info.network.policy ?? { default: 'allow', allow: [], deny: [] };
      if (json || !policy) ctx.out(JSON.stringify(shown, null, 2) + '\n');
      return 0;
    }
    throw new HutchError('EINVAL', `network: ${sub === undefined ? 'missing subcommand' : `unknown subcommand ${sub.slice(0, 40)}`} (${SUBCOMMANDS})`);
  },
};
