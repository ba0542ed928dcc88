// hutch create: make a sandbox in state ready.
import { HutchError } from '../../errors.js';
import type { Command } from '../command.js';
import { SANDBOX_FLAGS, createOptionsFrom } from './sandbox-flags.js';

export const command: Command = {
  usage: 'hutch create [OPTIONS] IMAGE|ROOTFS|busybox [--] [COMMAND [ARG...]]',
  summary: 'Create a sandbox (state ready) and print its id. COMMAND (after an image\'s Entrypoint; without one, the image\'s Entrypoint/Cmd) is its main process: it runs on start, and the sandbox stops when it exits. With none the sandbox waits for exec.',
  flags: SANDBOX_FLAGS,
  stopAfter: 1,
  errorExitCode: 125,
  async run(ctx, args) {
    const rootfs = args.operands[0];
    if (rootfs === undefined) throw new HutchError('EINVAL', 'create: missing IMAGE (an image, a rootfs dir or "busybox")');
    const engine = await ctx.engine();
    const info = await engine.create(createOptionsFrom(args, rootfs, args.rest));
    ctx.out(`${info.id}\n`);
    return 0;
  },
};
