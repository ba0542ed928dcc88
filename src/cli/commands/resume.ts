// hutch resume: thaw a paused sandbox.
import { HutchError } from '../../errors.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch resume ID|NAME...',
  summary: 'Thaw paused sandboxes.',
  flags: [],
  async run(ctx, args) {
    if (args.operands.length === 0) throw new HutchError('EINVAL', 'resume: missing sandbox ID');
    const engine = await ctx.engine();
    for (const ref of args.operands) ctx.out(`${(await engine.resume(ref)).id}\n`);
    return 0;
  },
};
