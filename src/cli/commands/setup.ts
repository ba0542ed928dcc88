// hutch setup: build the embedded busybox rootfs and the agent runtime ahead of the first sandbox.
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch setup',
  summary: 'Build the embedded busybox rootfs (from Debian\'s busybox-static) and the agent runtime (node and its libraries) under the data root.',
  flags: [],
  async run(ctx) {
    const { rootfs, runtime } = await (await ctx.engine()).setup();
    ctx.out(`busybox rootfs: ${rootfs}\nagent runtime:  ${runtime}\n`);
    return 0;
  },
};
