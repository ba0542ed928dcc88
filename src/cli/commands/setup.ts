// hutch setup: build the embedded busybox rootfs and the agent runtime ahead of the first sandbox.
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch setup',
  summary: 'Build the embedded busybox rootfs (from Debian\'s busybox-static) and the agent runtime (node and its libraries) under the data root.',
  flags: [],
  async run(ctx) {
    const engine = await ctx.engine();
    const rootfs = await engine.resolveRootfs('busybox');
    const { ensureAgentRuntime } = await import('../../platform/index.js');
    const runtime = ensureAgentRuntime(engine.dataRoot);
    ctx.out(`busybox rootfs: ${rootfs}\nagent runtime:  ${runtime.dir}\n`);
    return 0;
  },
};
