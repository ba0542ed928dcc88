// hutch wait: block until a sandbox stops and print its exit code.
import { HutchError } from '../../errors.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch wait ID|NAME',
  summary: 'Wait until the sandbox stops (its main process or init exits) and print the exit code.',
  flags: [],
  async run(ctx, args) {
    const ref = args.operands[0];
    if (ref === undefined) throw new HutchError('EINVAL', 'wait: missing sandbox ID');
    const engine = await ctx.engine();
    const info = await engine.waitStopped(ref);
    ctx.out(`${info.exitCode ?? ''}\n`);
    return 0;
  },
};
