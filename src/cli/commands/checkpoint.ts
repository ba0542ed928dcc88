// hutch checkpoint: save a running sandbox (its processes' memory and writable layer) as a snapshot.
import { HutchError } from '../../errors.js';
import { bool, str } from '../args.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch checkpoint [--to DIR] [--leave-running] ID|NAME',
  summary: 'Save a running sandbox as a snapshot (memory, processes, writable layer; gvisor platform); it stops unless --leave-running. Prints the snapshot id (hutch restore makes sandboxes from it).',
  flags: [
    { name: 'to', kind: 'string', value: 'DIR', help: 'write the snapshot to DIR (new or empty) instead of the data root' },
    { name: 'leave-running', kind: 'bool', help: 'the sandbox goes on running after the checkpoint' },
  ],
  async run(ctx, args) {
    if (args.operands.length !== 1) throw new HutchError('EINVAL', 'checkpoint: give exactly one sandbox ID');
    const to = str(args.flags, 'to');
    const snap = await (await ctx.engine()).snapshots().checkpoint(args.operands[0]!, { ...(to !== undefined ? { to } : {}), leaveRunning: bool(args.flags, 'leave-running') });
    ctx.out(`${to !== undefined ? snap.dir : snap.id}\n`);
    return 0;
  },
};
