// hutch load: import images from a docker-archive, an oci-archive or an OCI layout dir (no registry).
import { HutchError } from '../../errors.js';
import { bool, str } from '../args.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch load -i FILE|DIR|- [--name NAME] [-q]',
  summary: 'Import images from a docker-archive (docker save), an oci-archive, or an OCI layout dir; plain or gzip; "-" reads stdin. Every blob and layer is checked against its digest.',
  flags: [
    { name: 'input', short: 'i', kind: 'string', value: 'FILE', help: 'the archive, layout dir, or - for stdin' },
    { name: 'name', kind: 'string', value: 'NAME', help: 'name the (single) image NAME instead of what the archive says' },
    { name: 'quiet', short: 'q', kind: 'bool', help: 'print image ids only' },
  ],
  async run(ctx, args) {
    const input = str(args.flags, 'input') ?? args.operands[0];
    if (input === undefined) throw new HutchError('EINVAL', 'load: missing input (hutch load -i FILE)');
    if (input === '-' && process.stdin.isTTY) throw new HutchError('EINVAL', 'load: -i - reads an archive from stdin, but stdin is a terminal');
    const images = await (await ctx.engine()).images();
    const name = str(args.flags, 'name');
    const loaded = await images.store.load(input, name);
    for (const i of loaded) {
      if (bool(args.flags, 'quiet')) ctx.out(`${i.id}\n`);
      else if (i.names.length) for (const n of i.names) ctx.out(`Loaded image: ${n}\n`);
      else ctx.out(`Loaded image: ${i.id}\n`);
    }
    return 0;
  },
};
