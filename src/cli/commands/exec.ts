// hutch exec: run a command in a running sandbox through its agent.
import { HutchError } from '../../errors.js';
import { checkUser } from '../../engine/options.js';
import { bool, list, str } from '../args.js';
import type { Command } from '../command.js';
import { attach, terminalEnv } from '../attach.js';

export const command: Command = {
  usage: 'hutch exec [OPTIONS] ID|NAME [--] COMMAND [ARG...]',
  summary: 'Run COMMAND in a running sandbox and return its exit code.',
  flags: [
    { name: 'tty', short: 't', kind: 'bool', help: 'give the command a terminal' },
    { name: 'interactive', short: 'i', kind: 'bool', help: 'keep stdin open and pass it to the command' },
    { name: 'detach', short: 'd', kind: 'bool', help: 'start the command and print its pid' },
    { name: 'env', short: 'e', kind: 'list', value: 'K=V', help: 'set an environment variable (repeatable)' },
    { name: 'workdir', short: 'w', kind: 'string', value: 'DIR', help: 'working directory' },
    { name: 'user', short: 'u', kind: 'string', value: 'USER[:GROUP]', help: 'user to run as: a name or uid, optionally with a group or gid (names from the sandbox\'s /etc/passwd and /etc/group)' },
  ],
  stopAfter: 1,
  errorExitCode: 125,
  async run(ctx, args) {
    const ref = args.operands[0];
    if (ref === undefined) throw new HutchError('EINVAL', 'exec: missing sandbox ID');
    if (args.rest.length === 0) throw new HutchError('EINVAL', 'exec: missing COMMAND');
    const f = args.flags;
    const tty = bool(f, 'tty');
    const interactive = bool(f, 'interactive');
    const calls = await ctx.calls();
    const user = str(f, 'user');
    const cwd = str(f, 'workdir');
    const size = { cols: process.stdout.columns || 80, rows: process.stdout.rows || 24 };
    const req = {
      argv: args.rest, env: [...(tty ? [terminalEnv()] : []), ...list(f, 'env')], stdin: interactive,
      ...(cwd !== undefined ? { cwd } : {}), ...(user !== undefined ? { user: checkUser(user) } : {}), ...(tty ? { tty: size } : {}),
    };
    const detach = bool(f, 'detach');
    return calls.execAttached(ref, req, [interactive ? 'inherit' : 'ignore', 'inherit', 'inherit'], async (proc) => {
      if (detach) {
        ctx.out(`${proc.pid}\n`);
        return 0;
      }
      return attach(proc, { tty, interactive });
    });
  },
};
