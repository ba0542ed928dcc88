// hutch wait: block until a sandbox stops, print its exit code and exit with it.
import { HutchError } from '../../errors.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch wait ID|NAME',
  summary: 'Wait until the sandbox stops (its main process or init exits), print its exit code (128+N for a signal N) and exit with it. When the exit status is lost (the agent died first), says so on stderr and exits 1.',
  flags: [],
  async run(ctx, args) {
    const ref = args.operands[0];
    if (ref === undefined) throw new HutchError('EINVAL', 'wait: missing sandbox ID');
    const engine = await ctx.engine();
    const info = await engine.waitStopped(ref);
    if (info.exitCode !== undefined && info.exitCode !== null) {
      ctx.out(`${info.exitCode}\n`);
      return info.exitCode;
    }
    if (info.agentDied || info.command !== undefined) {
      throw new HutchError('ESTATE', `sandbox ${info.id} has no exit status: ${info.note ?? 'none was recorded'}`, { id: info.id });
    }
    ctx.out('\n'); // no main command: the sandbox was stopped, and there is no exit code to give
    return 0;
  },
};
