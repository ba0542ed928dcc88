// hutch logs: what a sandbox's main command printed (stdout and stderr, interleaved), and with -f what it prints next.
import { HutchError } from '../../errors.js';
import { bool, str } from '../args.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch logs [-f] [--tail N] ID|NAME',
  summary: 'Print the output of the sandbox\'s main command (hutch run -d / create with a COMMAND): kept by its agent in the sandbox\'s run dir, the newest 8-16 MiB. With -f, follow it until the sandbox stops.',
  flags: [
    { name: 'follow', short: 'f', kind: 'bool', help: 'keep printing new output until the sandbox stops (Ctrl-C ends it sooner)' },
    { name: 'tail', short: 'n', kind: 'string', value: 'N', help: 'only the last N lines' },
  ],
  async run(ctx, args) {
    const ref = args.operands[0];
    if (ref === undefined) throw new HutchError('EINVAL', 'logs: missing sandbox ID');
    const tail = str(args.flags, 'tail');
    if (tail !== undefined && !/^\d+$/.test(tail)) throw new HutchError('EINVAL', `logs: invalid --tail "${tail}": use a whole number of lines`);
    const engine = await ctx.engine();
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    try {
      await engine.logs(ref, (chunk) => process.stdout.write(chunk), {
        follow: bool(args.flags, 'follow'), signal: stop.signal, ...(tail !== undefined ? { tailLines: Number(tail) } : {}),
      });
    } finally {
      process.off('SIGINT', onSignal);
    }
    return 0;
  },
};
