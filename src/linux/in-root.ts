// Paths inside a sandbox's root filesystem, walked from the host without ever leaving it. Each
// component is looked up under a descriptor of its parent dir (through /proc/self/fd: Node has no
// openat), a symlink is resolved against the root as the kernel would inside the sandbox (an absolute
// target starts again at the root, `..` stops there), and nothing is opened through a symlink. So a
// planted link cannot reach a host file, and one swapped in during the walk makes it fail instead.
import fs from 'node:fs';
import { errnoCode, HutchError } from '../errors.js';

/** O_PATH (Linux, x86-64 and arm64): a descriptor that pins a dir for lookups without reading it. */
const O_PATH = 0o10000000;
const { O_DIRECTORY, O_NOFOLLOW, O_RDONLY, O_NONBLOCK, O_NOCTTY } = fs.constants;
/** Symlinks one walk follows at most (the kernel's limit). */
const MAX_LINKS = 40;

/** Who owns a dir that a walk makes, and its mode. */
export interface DirOwner { uid: number; gid: number; mode: number }

/** Where a walk ended: the descriptor of the last dir, the last component in it (a non-link), dirs made. */
interface WalkEnd { dirFd: number; name: string; stat: fs.Stats | null; made: number }

const at = (fd: number, name: string): string => `/proc/self/fd/${fd}/${name}`;

function lstatAt(fd: number, name: string): fs.Stats | null {
  try {
    return fs.lstatSync(at(fd, name));
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Walks `rel` from `root` (a host dir of our own), resolving symlinks inside it; the last
 * component's own link is followed too. Missing dirs on the way are made with `mkdir`, else the walk
 * ends early with stat null. `fds` collects every descriptor it opens (the caller closes them).
 */
function walk(root: string, rel: string, fds: number[], mkdir?: DirOwner): WalkEnd {
  const stack = [fs.openSync(root, O_PATH | O_DIRECTORY)];
  fds.push(stack[0]!);
  const todo = rel.split('/').filter((c) => c !== '' && c !== '.');
  let links = 0;
  let made = 0;
  const fail = (why: string): never => { throw new HutchError('EINVAL', `${rel} in the sandbox's rootfs: ${why}`, { path: rel }); };
  while (todo.length > 0) {
    const name = todo.shift()!;
    if (name === '..') {
      if (stack.length > 1) stack.pop();
      continue;
    }
    const dirFd = stack[stack.length - 1]!;
    let stat = lstatAt(dirFd, name);
    if (stat?.isSymbolicLink()) {
      if (++links > MAX_LINKS) fail('too many symlinks');
      const target = fs.readlinkSync(at(dirFd, name));
      if (target.startsWith('/')) stack.length = 1;
      todo.unshift(...target.split('/').filter((c) => c !== '' && c !== '.'));
      continue;
    }
    if (stat === null && mkdir) {
      fs.mkdirSync(at(dirFd, name), { mode: 0o700 }); // fails on anything put there meanwhile
      stat = lstatAt(dirFd, name);
      const fd = fs.openSync(at(dirFd, name), O_PATH | O_DIRECTORY | O_NOFOLLOW);
      fds.push(fd);
      fs.chownSync(`/proc/self/fd/${fd}`, mkdir.uid, mkdir.gid);
      fs.chmodSync(`/proc/self/fd/${fd}`, mkdir.mode);
      made++;
    }
    if (todo.length === 0) return { dirFd, name, stat, made };
    if (stat === null) return { dirFd, name, stat: null, made };
    if (!stat.isDirectory()) fail(`${name} is not a directory`);
    const fd = fs.openSync(at(dirFd, name), O_PATH | O_DIRECTORY | O_NOFOLLOW);
    fds.push(fd);
    stack.push(fd);
  }
  return { dirFd: stack[stack.length - 1]!, name: '.', stat: fs.fstatSync(stack[stack.length - 1]!), made };
}

function closeAll(fds: number[]): void {
  for (const fd of fds) fs.closeSync(fd);
}

/**
 * Makes dir `rel` inside `root` and its missing parents (as `mkdir -p` run inside the sandbox would),
 * each owned by `owner`; true when it made one. A component that exists but is not a dir is EINVAL.
 */
export function mkdirInRoot(root: string, rel: string, owner: DirOwner): boolean {
  const fds: number[] = [];
  try {
    const end = walk(root, rel, fds, owner);
    if (!end.stat?.isDirectory()) throw new HutchError('EINVAL', `${rel} in the sandbox's rootfs is not a directory`, { path: rel });
    return end.made > 0;
  } finally {
    closeAll(fds);
  }
}

/**
 * The contents of regular file `rel` inside `root`, or null when it does not exist. EINVAL when it
 * is not a regular file (a fifo, a device) or larger than `maxBytes`.
 */
export function readFileInRoot(root: string, rel: string, maxBytes: number): Buffer | null {
  const fds: number[] = [];
  try {
    const end = walk(root, rel, fds);
    if (end.stat === null) return null;
    const fd = fs.openSync(at(end.dirFd, end.name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    fds.push(fd);
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new HutchError('EINVAL', `${rel} in the sandbox's rootfs is not a regular file`, { path: rel });
    if (st.size > maxBytes) throw new HutchError('EINVAL', `${rel} in the sandbox's rootfs is larger than ${maxBytes} bytes`, { path: rel });
    const buf = Buffer.alloc(maxBytes + 1);
    let n = 0;
    for (;;) {
      const got = n < buf.length ? fs.readSync(fd, buf, n, buf.length - n, null) : 0;
      if (got === 0) break;
      n += got;
    }
    if (n > maxBytes) throw new HutchError('EINVAL', `${rel} in the sandbox's rootfs is larger than ${maxBytes} bytes`, { path: rel });
    return buf.subarray(0, n);
  } finally {
    closeAll(fds);
  }
}
