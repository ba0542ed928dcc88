// hutch snapshot: the snapshots of the data root (ls, rm, inspect).
import { HutchError } from '../../errors.js';
import { bool } from '../args.js';
import type { Command } from '../command.js';

const SUBCOMMANDS = 'ls, inspect SNAPSHOT..., rm SNAPSHOT...';

export const command: Command = {
  usage: 'hutch snapshot ls [--json] | inspect SNAPSHOT... | rm SNAPSHOT...',
  summary: 'The snapshots hutch checkpoint made: list them, print their records as JSON, remove them.',
  flags: [{ name: 'json', kind: 'bool', help: 'ls: print JSON' }],
  async run(ctx, args) {
    const [sub, ...operands] = args.operands;
    const store = (await ctx.engine()).snapshots().store;
    if (sub === 'ls' || sub === 'list') {
      const all = store.list();
      if (bool(args.flags, 'json')) ctx.out(JSON.stringify(all, null, 2) + '\n');
      else {
        ctx.out(`${'ID'.padEnd(18)}${'SOURCE'.padEnd(18)}${'PLATFORM'.padEnd(10)}${'SIZE'.padEnd(10)}CREATED\n`);
        for (const s of all) ctx.out(`${s.id.padEnd(18)}${s.source.name.slice(0, 16).padEnd(18)}${s.platform.padEnd(10)}${`${(s.sizeBytes / 1048576).toFixed(1)}M`.padEnd(10)}${s.createdAt.replace('T', ' ').slice(0, 19)}\n`);
      }
      return 0;
    }
    if (sub === 'inspect' || sub === 'rm') {
      if (operands.length === 0) throw new HutchError('EINVAL', `snapshot ${sub}: missing snapshot id`);
      const out: unknown[] = [];
      for (const ref of operands) {
        if (sub === 'rm') {
          store.remove(ref);
          ctx.out(`${ref}\n`);
        } else out.push(store.read(ref));
      }
      if (sub === 'inspect') ctx.out(JSON.stringify(out, null, 2) + '\n');
      return 0;
    }
    throw new HutchError('EINVAL', `snapshot: ${sub === undefined ? 'missing subcommand' : `unknown subcommand ${sub.slice(0, 40)}`} (${SUBCOMMANDS})`);
  },
};
