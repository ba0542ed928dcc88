// The verbs that move sandboxes from one state to another and print their ids: start, pause, resume.
import { HutchError } from '../../errors.js';
import type { Engine } from '../../engine/index.js';
import type { Command } from '../command.js';

/** A verb that applies `act` to each sandbox named on the command line, printing each id. */
export function transitionVerb(verb: string, summary: string, act: (engine: Engine, ref: string) => Promise<{ id: string }>): Command {
  return {
    usage: `hutch ${verb} ID|NAME...`,
    summary,
    flags: [],
    async run(ctx, args) {
      if (args.operands.length === 0) throw new HutchError('EINVAL', `${verb}: missing sandbox ID`);
      const engine = await ctx.engine();
      for (const ref of args.operands) ctx.out(`${(await act(engine, ref)).id}\n`);
      return 0;
    },
  };
}
