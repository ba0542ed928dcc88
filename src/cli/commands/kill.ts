// hutch kill: send a signal to one process, a process group, or every process of a sandbox.
import { HutchError } from '../../errors.js';
import { bool, str } from '../args.js';
import type { Command } from '../command.js';
import type { SignalTarget } from '../../engine/index.js';

export const command: Command = {
  usage: 'hutch kill [--pid PID | --pgid PGID | --all] ID|NAME [SIGNAL]',
  summary: 'Send SIGNAL (name or number, default SIGTERM) into a running sandbox: to every process by default.',
  flags: [
    { name: 'pid', kind: 'string', value: 'PID', help: 'one process (pid inside the sandbox)' },
    { name: 'pgid', kind: 'string', value: 'PGID', help: 'a process group' },
    { name: 'all', short: 'a', kind: 'bool', help: 'every process in the sandbox' },
  ],
  async run(ctx, args) {
    const [ref, sig = 'SIGTERM'] = args.operands;
    if (ref === undefined) throw new HutchError('EINVAL', 'kill: missing sandbox ID');
    const pid = str(args.flags, 'pid');
    const pgid = str(args.flags, 'pgid');
    const chosen = [pid !== undefined, pgid !== undefined, bool(args.flags, 'all')].filter(Boolean).length;
    if (chosen > 1) throw new HutchError('EINVAL', 'kill: give only one of --pid, --pgid, --all');
    const num = (s: string, what: string) => {
      if (!/^\d+$/.test(s) || Number(s) < 1) throw new HutchError('EINVAL', `kill: invalid ${what} "${s}"`);
      return Number(s);
    };
    const target: SignalTarget = pid !== undefined ? { pid: num(pid, 'pid') } : pgid !== undefined ? { pgid: num(pgid, 'pgid') } : { all: true };
    const calls = await ctx.calls();
    try {
      await calls.signal(ref, /^\d+$/.test(sig) ? Number(sig) : sig.toUpperCase().startsWith('SIG') ? sig.toUpperCase() : `SIG${sig.toUpperCase()}`, target);
    } finally {
      calls.closeAll();
    }
    return 0;
  },
};
