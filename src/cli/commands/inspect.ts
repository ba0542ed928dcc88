// hutch inspect: sandboxes' records with their observed state, as JSON.
import { HutchError } from '../../errors.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch inspect ID|NAME...',
  summary: 'Print sandboxes as a JSON array: settings, observed status and how it ended (exitCode, signal, oomKilled, agentDied, note).',
  flags: [],
  async run(ctx, args) {
    if (args.operands.length === 0) throw new HutchError('EINVAL', 'inspect: missing sandbox ID');
    const engine = await ctx.engine();
    const infos = [];
    for (const ref of args.operands) infos.push(await engine.inspect(ref));
    ctx.out(JSON.stringify(infos, null, 2) + '\n');
    return 0;
  },
};
