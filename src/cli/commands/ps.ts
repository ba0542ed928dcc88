// hutch ps: the processes of a sandbox.
import { HutchError } from '../../errors.js';
import { bool } from '../args.js';
import type { Command } from '../command.js';
import { table } from './ls.js';

export const command: Command = {
  usage: 'hutch ps [--json] ID|NAME',
  summary: 'List the processes of a running sandbox (pids as seen inside it).',
  flags: [{ name: 'json', kind: 'bool', help: 'print JSON' }],
  async run(ctx, args) {
    const ref = args.operands[0];
    if (ref === undefined) throw new HutchError('EINVAL', 'ps: missing sandbox ID');
    const calls = await ctx.calls();
    try {
      const procs = await calls.ps(ref);
      if (bool(args.flags, 'json')) ctx.out(JSON.stringify(procs, null, 2) + '\n');
      else ctx.out(table([['PID', 'PPID', 'UID', 'STATE', 'COMMAND'], ...procs.map((p) => [String(p.pid), String(p.ppid), String(p.uid), p.state, (p.argv.length ? p.argv.join(' ') : `[${p.comm}]`).slice(0, 120)])]));
      return 0;
    } finally {
      calls.closeAll();
    }
  },
};
