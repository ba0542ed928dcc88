// The dirs of a rootfs that runc mounts over or creates entries in. runc works in them as the
// sandbox's host uid: a symlink there (planted by a rootfs dir or an image layer) would lead its
// mkdir/mknod/unlink into host dirs that uid owns, such as the shared base layer.
import fs from 'node:fs';
import path from 'node:path';
import { HutchError, errnoCode } from '../../errors.js';

/**
 * The top-level dirs runc mounts over (the rest, /dev/pts, /dev/shm…, live in /dev's tmpfs), and
 * /tmp, which a writable sandbox gets as a real dir too.
 */
export function mountPoints(agent: boolean, writable: boolean): string[] {
  return ['proc', 'sys', 'dev', ...(agent ? ['.hutch'] : []), ...(writable ? ['tmp'] : [])];
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return null;
    throw e;
  }
}

function kind(st: fs.Stats): string {
  return st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'special file';
}

/**
 * Makes every mount point of `rootfs` (the merged view runc is given) a real directory, never
 * following a link: a missing one or one that is a link or file is replaced by a dir owned by
 * `owner` when `writable` (the change lands in the sandbox's own layer); refused otherwise.
 */
export function ensureRealMountPoints(rootfs: string, names: string[], owner: { uid: number; gid: number } | null, writable: boolean): void {
  for (const name of names) {
    const p = path.join(rootfs, name);
    const st = lstatOrNull(p);
    if (st?.isDirectory()) continue;
    if (!writable) {
      throw new HutchError('EINVAL', st
        ? `rootfs: /${name} is a ${kind(st)}, not a directory; hutch mounts over it (use a writable layer or fix the rootfs)`
        : `rootfs: /${name} is missing and the rootfs is read-only; hutch needs it as a mount point`, { path: p });
    }
    if (st) fs.unlinkSync(p);
    fs.mkdirSync(p, { mode: 0o755 });
    fs.chmodSync(p, name === 'tmp' ? 0o1777 : 0o755);
    if (owner) fs.chownSync(p, owner.uid, owner.gid);
  }
}
