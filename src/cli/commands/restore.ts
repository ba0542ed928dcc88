// hutch restore: a new running sandbox from a snapshot (several from one snapshot: a fork).
import { HutchError } from '../../errors.js';
import { list, str } from '../args.js';
import type { Command } from '../command.js';
import { parseLabel } from './sandbox-flags.js';

export const command: Command = {
  usage: 'hutch restore [--name NAME] [--label K=V]... SNAPSHOT',
  summary: 'Make a running sandbox from a snapshot (an id from hutch checkpoint or snapshot ls, or a snapshot dir): its processes go on where they were. Prints the new sandbox id.',
  flags: [
    { name: 'name', kind: 'string', value: 'NAME', help: 'name of the new sandbox' },
    { name: 'label', short: 'l', kind: 'list', value: 'K=V', help: 'set a label (over the snapshot\'s; repeatable)' },
  ],
  async run(ctx, args) {
    if (args.operands.length !== 1) throw new HutchError('EINVAL', 'restore: give exactly one snapshot');
    const name = str(args.flags, 'name');
    const labels = Object.fromEntries(list(args.flags, 'label').map(parseLabel));
    const info = await (await ctx.engine()).snapshots().restore(args.operands[0]!, { ...(name !== undefined ? { name } : {}), labels });
    ctx.out(`${info.id}\n`);
    return 0;
  },
};
