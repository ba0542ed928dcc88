// An image's `User` as uid and gid, from the image's own passwd and group files.
import fs from 'node:fs';
import { HutchError } from '../errors.js';
import { findInLayers } from './unpack/layers.js';

/**
 * The uid and gid of an image's `User` (`name`, `uid`, `uid:gid`, `name:group`), looked up in the
 * image's /etc/passwd and /etc/group as overlayfs would show them (whiteouts and opaque dirs count).
 * Only regular files are read, never through a symlink: one could point at the host's files.
 */
export function imageUser(user: string, lowerDirs: string[]): { uid: number; gid: number } {
  const [u, g] = user.split(':', 2) as [string, string | undefined];
  const passwd = u !== '' && !/^\d+$/.test(u) || g === undefined ? readImageFile(lowerDirs, 'etc/passwd') : '';
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(u)) {
    uid = Number(u);
    const entry = passwd.split('\n').map((l) => l.split(':')).find((f) => f[2] === u);
    if (entry?.[3] && /^\d+$/.test(entry[3])) gid = Number(entry[3]);
  } else {
    const entry = passwd.split('\n').map((l) => l.split(':')).find((f) => f[0] === u);
    if (!entry || !/^\d+$/.test(entry[2] ?? '') || !/^\d+$/.test(entry[3] ?? '')) throw new HutchError('EINVAL', `the image's user "${u}" is not in its /etc/passwd`);
    uid = Number(entry[2]);
    gid = Number(entry[3]);
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const entry = readImageFile(lowerDirs, 'etc/group').split('\n').map((l) => l.split(':')).find((f) => f[0] === g);
      if (!entry || !/^\d+$/.test(entry[2] ?? '')) throw new HutchError('EINVAL', `the image's group "${g}" is not in its /etc/group`);
      gid = Number(entry[2]);
    }
  }
  if (uid > 65535 || (gid ?? 0) > 65535) throw new HutchError('EINVAL', `the image's user ${user} is outside the sandbox's id range 0-65535`);
  return { uid, gid: gid ?? uid };
}

/** A small text file of the image's (at most 1 MiB, regular), or '' when it has none. */
function readImageFile(lowerDirs: string[], rel: string): string {
  const found = findInLayers(rel, lowerDirs, 'image', rel, 'absent');
  if (!found || !found.stat.isFile() || found.stat.size > 1024 * 1024) return '';
  return fs.readFileSync(found.path, 'utf8');
}
