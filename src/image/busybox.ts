// The embedded default rootfs: Debian's static busybox plus the few files a shell session expects.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { HutchError } from '../errors.js';

/** Where the host's busybox-static binary lives (Debian package busybox-static). */
export const HOST_BUSYBOX = '/bin/busybox';

/** Owner ids that the rootfs files get on the host, so that they are root's inside the user namespace. */
export interface RootfsOwner { uid: number; gid: number }

const DIRS = ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'root', 'home', 'var/tmp', 'run', 'mnt', '.hutch'];

/** True when `dir` holds a complete busybox rootfs built by `buildBusyboxRootfs`. */
export function busyboxRootfsReady(dir: string): boolean {
  return fs.existsSync(path.join(dir, '.hutch-rootfs-complete'));
}

/**
 * Builds the busybox rootfs in `dir` (atomically: a temp dir renamed into place), owned by `owner`.
 * Idempotent: an existing complete rootfs is left alone.
 */
export function buildBusyboxRootfs(dir: string, owner: RootfsOwner): void {
  if (busyboxRootfsReady(dir)) return;
  if (!fs.existsSync(HOST_BUSYBOX)) {
    throw new HutchError('ENOTFOUND', `${HOST_BUSYBOX} is missing: install Debian's busybox-static`, { path: HOST_BUSYBOX });
  }
  fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o711 });
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { mode: 0o755 });
  for (const d of DIRS) fs.mkdirSync(path.join(tmp, d), { recursive: true, mode: 0o755 });
  fs.mkdirSync(path.join(tmp, 'tmp'), { mode: 0o1777 });
  fs.chmodSync(path.join(tmp, 'tmp'), 0o1777);
  fs.chmodSync(path.join(tmp, 'root'), 0o700);
  fs.copyFileSync(HOST_BUSYBOX, path.join(tmp, 'bin/busybox'));
  fs.chmodSync(path.join(tmp, 'bin/busybox'), 0o755);
  const applets = execFileSync(HOST_BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => /^[a-z0-9_.[-]+$/.test(a));
  for (const applet of applets) {
    if (applet === 'busybox') continue;
    fs.symlinkSync('busybox', path.join(tmp, 'bin', applet));
  }
  fs.symlinkSync('../../bin/env', path.join(tmp, 'usr/bin/env'));
  const etc = (name: string, text: string, mode = 0o644) => fs.writeFileSync(path.join(tmp, 'etc', name), text, { mode });
  etc('passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  etc('group', 'root:x:0:\nnogroup:x:65534:\n');
  etc('shadow', 'root:*:19000:0:99999:7:::\n', 0o600);
  etc('hosts', '127.0.0.1\tlocalhost\n::1\tlocalhost\n');
  etc('resolv.conf', '');
  etc('os-release', 'NAME="hutch busybox"\nID=busybox\n');
  fs.writeFileSync(path.join(tmp, '.hutch-rootfs-complete'), '');
  chownTree(tmp, owner);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
}

/** lchown every entry below `dir` (symlinks themselves, never their targets) to `owner`. */
function chownTree(dir: string, owner: RootfsOwner): void {
  fs.lchownSync(dir, owner.uid, owner.gid);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) chownTree(p, owner);
    else fs.lchownSync(p, owner.uid, owner.gid);
  }
}
