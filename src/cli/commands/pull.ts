// hutch pull: fetch an image from a registry into the store; progress on stderr, the image id on stdout.
import { HutchError } from '../../errors.js';
import { bool, str } from '../args.js';
import type { Command } from '../command.js';
import { progressDisplay } from '../progress.js';

export const command: Command = {
  usage: 'hutch pull [--platform OS/ARCH[/VARIANT]] [--insecure] [--authfile FILE] [-q] IMAGE',
  summary: 'Pull an image (docker.io/library/busybox:latest, host:port/repo@sha256:...) into the image store and print its id. Layers already stored are not fetched again; an interrupted pull resumes. HTTPS_PROXY, HTTP_PROXY and NO_PROXY are honoured as Go programs (podman, skopeo) do.',
  flags: [
    { name: 'platform', kind: 'string', value: 'OS/ARCH', help: 'the platform to pick from a multi-platform image (default: this machine\'s)' },
    { name: 'insecure', kind: 'bool', help: 'reach the registry over plain http / without TLS checks (loopback registries always are)' },
    { name: 'authfile', kind: 'string', value: 'FILE', help: 'auth file (auths, credHelpers, credsStore; default $REGISTRY_AUTH_FILE, containers\' auth.json, ~/.docker/config.json)' },
    { name: 'quiet', short: 'q', kind: 'bool', help: 'no progress output' },
  ],
  async run(ctx, args) {
    const ref = args.operands[0];
    if (ref === undefined) throw new HutchError('EINVAL', 'pull: missing image reference (e.g. hutch pull busybox:latest)');
    if (args.operands.length > 1) throw new HutchError('EINVAL', `pull: one image at a time (got ${args.operands.length})`);
    const platformText = str(args.flags, 'platform');
    const authFile = str(args.flags, 'authfile');
    const images = await (await ctx.engine()).images();
    const display = bool(args.flags, 'quiet') ? undefined : progressDisplay(process.stderr);
    try {
      const image = await images.store.pull(ref, {
        ...(platformText ? { platform: platformText } : {}),
        ...(bool(args.flags, 'insecure') ? { insecure: true } : {}),
        ...(authFile ? { authFile } : {}),
        ...(display ? { onProgress: (e) => display.onProgress(e) } : {}),
      });
      display?.finish(); // the last drawing goes before the id
      ctx.out(`${image.id}\n`);
      return 0;
    } finally {
      display?.finish();
    }
  },
};
