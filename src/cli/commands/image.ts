// hutch image: subcommands on the image store (prune, inspect, ls, rm as podman spells them).
import { HutchError } from '../../errors.js';
import type { Command } from '../command.js';

const SUBCOMMANDS = 'prune, inspect IMAGE..., ls, rm IMAGE...';

export const command: Command = {
  usage: 'hutch image prune | inspect IMAGE... | ls | rm [-f] IMAGE...',
  summary: 'prune: remove images without names that no sandbox uses, and every layer and blob no image uses (never a layer a sandbox uses). inspect: print image records as JSON with their sizes (size = unpacked on disk, compressedSize, sharedSize, uniqueSize; per layer too) and layer dirs.',
  flags: [
    { name: 'force', short: 'f', kind: 'bool', help: 'rm: remove images that sandboxes use' },
    { name: 'json', kind: 'bool', help: 'ls: print JSON' },
    { name: 'quiet', short: 'q', kind: 'bool', help: 'ls: ids only' },
  ],
  async run(ctx, args) {
    const [sub, ...operands] = args.operands;
    if (sub === undefined) throw new HutchError('EINVAL', `image: missing subcommand (${SUBCOMMANDS})`);
    if (sub === 'ls' || sub === 'list') return (await import('./images.js')).command.run(ctx, { ...args, operands });
    if (sub === 'rm') return (await import('./rmi.js')).command.run(ctx, { ...args, operands });
    const images = await (await ctx.engine()).images();
    if (sub === 'prune') {
      if (operands.length) throw new HutchError('EINVAL', 'image prune takes no operands');
      const removed = images.prune();
      ctx.out(removed.map((l) => `${l}\n`).join(''));
      return 0;
    }
    if (sub === 'inspect') {
      if (operands.length === 0) throw new HutchError('EINVAL', 'image inspect: missing image name or id');
      const out: unknown[] = [];
      let failed = 0;
      for (const ref of operands) {
        try {
          const r = images.store.rootfsOf(ref);
          const [sized] = images.store.withSizes([r.image]);
          out.push({ ...sized, layerDirs: r.lowerDirs, usedBy: images.usersOf(r.image) });
        } catch (e) {
          failed++;
          ctx.err(`hutch: ${e instanceof Error ? e.message : String(e)}\n`);
        }
      }
      ctx.out(JSON.stringify(out, null, 2) + '\n');
      return failed ? 1 : 0;
    }
    throw new HutchError('EINVAL', `image: unknown subcommand "${sub}" (${SUBCOMMANDS})`);
  },
};
