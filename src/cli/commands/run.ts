// hutch run: create a sandbox, run a command in it, wait for it (or leave it running with -d).
import { HutchError } from '../../errors.js';
import { bool, type FlagSpec } from '../args.js';
import type { Command } from '../command.js';
import { SANDBOX_FLAGS, createOptionsFrom } from './sandbox-flags.js';
import { isRootfsPath } from '../../engine/options.js';
import { terminalEnv } from '../attach.js';

const FLAGS: FlagSpec[] = [
  { name: 'rm', kind: 'bool', help: 'remove the sandbox when the command exits (with -d: when the main command ends or it is stopped)' },
  { name: 'init', kind: 'bool', help: 'foreground: run the command under a small init (catatonit) that reaps zombies and forwards signals' },
  { name: 'detach', short: 'd', kind: 'bool', help: 'leave the sandbox running (with its agent) and print its id' },
  { name: 'tty', short: 't', kind: 'bool', help: 'give the command a terminal' },
  { name: 'interactive', short: 'i', kind: 'bool', help: 'keep stdin open and pass it to the command' },
  ...SANDBOX_FLAGS,
];

export const command: Command = {
  usage: 'hutch run [OPTIONS] IMAGE|ROOTFS|busybox [--] [COMMAND [ARG...]]',
  summary: 'Create a sandbox from an image (pulled when missing), a rootfs dir (a path: /… or ./…) or the embedded busybox, run COMMAND in it and return its exit code.\nWithout -d the command is the sandbox\'s init (no agent); with -d the sandbox keeps its agent for exec, cp, ps.\nWithout COMMAND an image\'s Entrypoint/Cmd runs (docs/images.md); with -d and nothing to run the sandbox waits for exec.',
  flags: FLAGS,
  stopAfter: 1,
  errorExitCode: 125,
  async run(ctx, args) {
    const rootfs = args.operands[0];
    if (rootfs === undefined) throw new HutchError('EINVAL', 'run: missing IMAGE (an image, a rootfs dir or "busybox")');
    const f = args.flags;
    const engine = await ctx.engine();
    const opts = createOptionsFrom(args, rootfs, args.rest);
    if (bool(f, 'detach')) {
      // --rm: the sandbox's exit watch removes it once its init is gone (no hutch stays around).
      if (bool(f, 'rm')) opts.autoRemove = true;
      if (bool(f, 'tty') || bool(f, 'interactive')) throw new HutchError('EINVAL', 'run: -t/-i need the foreground; use hutch exec -t -i on a detached sandbox');
      const created = await engine.create(opts);
      try {
        await engine.start(created.id);
      } catch (e) {
        await engine.remove(created.id, true);
        throw e;
      }
      ctx.out(`${created.id}\n`);
      return 0;
    }
    // An image may bring its own command (Entrypoint/Cmd); busybox and rootfs dirs do not.
    if (args.rest.length === 0 && (rootfs === 'busybox' || isRootfsPath(rootfs))) throw new HutchError('EINVAL', 'run: missing COMMAND (or use -d for a sandbox that waits for exec)');
    const tty = bool(f, 'tty');
    const interactive = bool(f, 'interactive');
    // runc's own console handling needs our stdin to be a terminal (it opens /dev/tty).
    if (tty && !process.stdin.isTTY) throw new HutchError('EINVAL', `run: -t needs a terminal on stdin${interactive ? '' : ' (or use run -d and exec -t, which gives a pty without one)'}`);
    opts.terminal = tty;
    if (bool(f, 'init')) opts.init = true;
    if (tty) opts.env = [terminalEnv(), ...(opts.env ?? [])];
    const { exitCode } = await engine.runForeground(opts, [interactive ? 'inherit' : 'ignore', 'inherit', 'inherit'], bool(f, 'rm'));
    return exitCode;
  },
};
