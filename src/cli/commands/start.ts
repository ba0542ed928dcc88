// hutch start: start a ready sandbox.
import { HutchError } from '../../errors.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch start ID|NAME...',
  summary: 'Start ready sandboxes: the agent comes up, then the main command (if any) runs.',
  flags: [],
  async run(ctx, args) {
    if (args.operands.length === 0) throw new HutchError('EINVAL', 'start: missing sandbox ID');
    const engine = await ctx.engine();
    for (const ref of args.operands) {
      const info = await engine.start(ref);
      ctx.out(`${info.id}\n`);
    }
    return 0;
  },
};
