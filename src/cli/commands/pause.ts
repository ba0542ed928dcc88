// hutch pause: freeze every process of a sandbox (cgroup freezer).
import { HutchError } from '../../errors.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch pause ID|NAME...',
  summary: 'Freeze every process of running sandboxes.',
  flags: [],
  async run(ctx, args) {
    if (args.operands.length === 0) throw new HutchError('EINVAL', 'pause: missing sandbox ID');
    const engine = await ctx.engine();
    for (const ref of args.operands) ctx.out(`${(await engine.pause(ref)).id}\n`);
    return 0;
  },
};
