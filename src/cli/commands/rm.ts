// hutch rm: remove sandboxes and everything they had on the host.
import { HutchError } from '../../errors.js';
import { bool } from '../args.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch rm [-f] ID|NAME...',
  summary: 'Remove stopped sandboxes; with -f also running ones (they are killed). Mounts, cgroups, processes and state go with them.',
  flags: [{ name: 'force', short: 'f', kind: 'bool', help: 'kill running sandboxes first' }],
  async run(ctx, args) {
    if (args.operands.length === 0) throw new HutchError('EINVAL', 'rm: missing sandbox ID');
    const engine = await ctx.engine();
    let failed = 0;
    for (const ref of args.operands) {
      try {
        await engine.remove(ref, bool(args.flags, 'force'));
        ctx.out(`${ref}\n`);
      } catch (e) {
        failed++;
        ctx.err(`hutch: ${e instanceof Error ? e.message : String(e)}\n`);
      }
    }
    return failed ? 1 : 0;
  },
};
