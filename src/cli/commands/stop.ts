// hutch stop: SIGTERM every process of a sandbox, SIGKILL after a grace period.
import { HutchError } from '../../errors.js';
import { str } from '../args.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch stop [--time SECONDS] ID|NAME...',
  summary: 'Stop sandboxes: SIGTERM to every process, SIGKILL after the grace period (default 10 s).',
  flags: [{ name: 'time', short: 't', kind: 'string', value: 'SECONDS', help: 'grace period before SIGKILL (default 10)' }],
  async run(ctx, args) {
    if (args.operands.length === 0) throw new HutchError('EINVAL', 'stop: missing sandbox ID');
    const t = str(args.flags, 'time') ?? '10';
    if (!/^\d+(\.\d+)?$/.test(t)) throw new HutchError('EINVAL', `stop: invalid --time "${t}": use seconds`);
    const engine = await ctx.engine();
    for (const ref of args.operands) ctx.out(`${(await engine.stop(ref, Number(t) * 1000)).id}\n`);
    return 0;
  },
};
