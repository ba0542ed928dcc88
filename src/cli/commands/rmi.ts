// hutch rmi: remove images (or one of an image's names); an image sandboxes use needs -f.
import { HutchError } from '../../errors.js';
import { bool } from '../args.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch rmi [-f] IMAGE...',
  summary: 'Remove images by name or id. A name of an image with several names is only untagged. An image that sandboxes use is refused unless -f; with -f its layers stay until those sandboxes are gone.',
  flags: [{ name: 'force', short: 'f', kind: 'bool', help: 'remove images that sandboxes use (the sandboxes keep running)' }],
  async run(ctx, args) {
    if (args.operands.length === 0) throw new HutchError('EINVAL', 'rmi: missing image name or id');
    const images = await (await ctx.engine()).images();
    let failed = 0;
    for (const ref of args.operands) {
      try {
        ctx.out(images.remove(ref, bool(args.flags, 'force')).map((l) => `${l}\n`).join(''));
      } catch (e) {
        failed++;
        ctx.err(`hutch: ${e instanceof Error ? e.message : String(e)}\n`);
      }
    }
    return failed ? 1 : 0;
  },
};
