// The few libc calls Node lacks, through koffi. Loaded lazily: the CLI's fast paths never pay for it.
import { createRequire } from 'node:module';
import { HutchError } from '../errors.js';

type Fn = (...args: unknown[]) => number;
interface Libc {
  flock: Fn; umount2: Fn; mount: Fn; waitpid: Fn; waitid: Fn; prctl: Fn; errnoLoc: () => unknown;
  decodeErrno: () => number;
}

let libc: Libc | undefined;

/** The subset of koffi's API used here. */
interface Koffi {
  load(name: string): { func(signature: string): Fn };
  decode(pointer: unknown, type: string): unknown;
  /** The errno koffi saved right after the last native call of this thread. */
  errno(): number;
}

let koffiModule: Koffi | undefined;

/**
 * koffi's native module. Its JS entry spends ~6 ms at every start finding which build to load (it
 * reads the node binary's ELF header); a `hutch run` cannot afford that, so the glibc build of the
 * matching platform package is opened directly, with the entry as the fallback.
 */
function koffi(): Koffi {
  if (koffiModule) return koffiModule;
  const require = createRequire(import.meta.url);
  try {
    const pkg = require.resolve(`@koromix/koffi-${process.platform}-${process.arch}/package.json`);
    const native = { exports: {} as Koffi & { version?: string } };
    process.dlopen(native, `${pkg.slice(0, -'package.json'.length)}${process.platform}_${process.arch}/koffi.node`);
    // The platform package is koffi's own build, versioned with it; a mismatch means a stale install.
    if (native.exports.version === (require(pkg) as { version: string }).version) return (koffiModule = native.exports);
  } catch {
    // Another layout or libc (musl): koffi's own entry knows how to find its build.
  }
  return (koffiModule = require('koffi') as Koffi);
}

function load(): Libc {
  if (libc) return libc;
  const k = koffi();
  const lib = k.load('libc.so.6');
  const errnoLoc = lib.func('int *__errno_location()');
  libc = {
    flock: lib.func('int flock(int fd, int op)'),
    umount2: lib.func('int umount2(const char *target, int flags)'),
    mount: lib.func('int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const char *data)'),
    waitpid: lib.func('int waitpid(int pid, _Out_ int *status, int options)'),
    // siginfo_t is 128 bytes; si_pid is at offset 16 for SIGCHLD.
    waitid: lib.func('int waitid(int idtype, int id, _Out_ uint8_t *info, int options)'),
    prctl: lib.func('int prctl(int op, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)'),
    errnoLoc,
    decodeErrno: () => k.decode(errnoLoc(), 'int') as number,
  };
  return libc;
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 4: 'EINTR', 10: 'ECHILD', 11: 'EAGAIN', 13: 'EACCES', 16: 'EBUSY', 17: 'EEXIST',
  20: 'ENOTDIR', 22: 'EINVAL', 38: 'ENOSYS',
  3: 'ESRCH', 7: 'E2BIG', 12: 'ENOMEM', 15: 'ENOTBLK', 19: 'ENODEV', 21: 'EISDIR', 28: 'ENOSPC', 30: 'EROFS',
  36: 'ENAMETOOLONG', 40: 'ELOOP', 95: 'EOPNOTSUPP', 61: 'ENODATA',
  9: 'EBADF', 18: 'EXDEV', 24: 'EMFILE',
};

/** The current errno as a name (EAGAIN, EBUSY...) for the call that just failed. */
function lastErrno(): string {
  return errnoName(load().decodeErrno());
}

/** An errno number as its name. */
function errnoName(n: number): string {
  return ERRNO_NAMES[n] ?? `errno ${n}`;
}

export const LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;

/** flock(2). Returns true on success, false when LOCK_NB was given and the lock is held; throws otherwise. */
export function flock(fd: number, op: number): boolean {
  if (load().flock(fd, op) === 0) return true;
  const e = lastErrno();
  if (e === 'EAGAIN' && (op & LOCK_NB)) return false;
  throw new HutchError('EINTERNAL', `flock failed: ${e}`);
}

export const MNT_DETACH = 2;

/** umount2(2). Returns the errno name on failure ('EINVAL' = not a mount point), or null on success. */
export function umount2(target: string, flags = 0): string | null {
  return load().umount2(target, flags) === 0 ? null : lastErrno();
}

export const MS_RDONLY = 1, MS_NOSUID = 2, MS_NODEV = 4, MS_BIND = 4096, MS_REC = 16384, MS_PRIVATE = 1 << 18;
export const MS_NOEXEC = 8, MS_REMOUNT = 32, MS_NOATIME = 1024, MS_NODIRATIME = 2048, MS_RELATIME = 1 << 21;

/**
 * umount2 on one of koffi's worker threads: the kernel's teardown of a big overlay (its cached
 * dentries, ~1 s for 100k files) then costs the event loop nothing. errno is per thread, so a
 * failure is asked again here, where it can be read (a failed umount is cheap and repeatable).
 */
export function umount2Async(target: string, flags = 0): Promise<string | null> {
  const fn = load().umount2 as Fn & { async(...args: unknown[]): void };
  return new Promise((resolve) => {
    fn.async(target, flags, (err: unknown, r: number) => resolve(err || r !== 0 ? umount2(target, flags) : null));
  });
}

/** mount(2); throws a HutchError naming the target on failure. */
export function mount(src: string, target: string, fstype: string | null, flags: number, data: string | null): void {
  if (load().mount(src, target, fstype, flags, data) !== 0) {
    throw new HutchError('EINTERNAL', `mount ${fstype ?? 'bind'} on ${target} failed: ${lastErrno()}`, { path: target });
  }
}

const WNOHANG = 1, WEXITED = 4, WNOWAIT = 0x01000000, P_ALL = 0;

/** Decoded wait status of a reaped child. */
export interface ReapedChild { pid: number; exitCode: number | null; signal: number | null }

/** waitpid(pid, WNOHANG): reaps `pid` (or any child for -1) if it has exited; null when none has. */
export function waitpidNoHang(pid: number): ReapedChild | null {
  const status = [0];
  const r = load().waitpid(pid, status, WNOHANG);
  if (r <= 0) return null;
  const s = status[0] ?? 0;
  const sig = s & 0x7f;
  return sig === 0 ? { pid: r, exitCode: (s >> 8) & 0xff, signal: null } : { pid: r, exitCode: null, signal: sig };
}

/** The pid of some exited child without reaping it (waitid WNOWAIT), or null when no child has exited. */
export function peekExitedChild(): number | null {
  const info = new Uint8Array(128);
  const r = load().waitid(P_ALL, 0, info, WEXITED | WNOHANG | WNOWAIT);
  if (r !== 0) return null;
  const pid = new DataView(info.buffer).getInt32(16, true);
  return pid > 0 ? pid : null;
}

const PR_SET_CHILD_SUBREAPER = 36, PR_SET_PDEATHSIG = 1, PR_SET_DUMPABLE = 4;

/**
 * Marks this process not dumpable: without CAP_SYS_PTRACE, other processes of the same uid can no
 * longer open its /proc fds, read its memory or attach to it (children get it back at execve).
 */
export function setNotDumpable(): void {
  if (load().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) !== 0) throw new HutchError('EINTERNAL', `prctl(DUMPABLE) failed: ${lastErrno()}`);
}

/** Makes this process the reaper of its orphaned descendants. */
export function setChildSubreaper(): void {
  if (load().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) !== 0) throw new HutchError('EINTERNAL', `prctl(SUBREAPER) failed: ${lastErrno()}`);
}

/** Asks the kernel to send `signal` to this process when its parent dies. */
export function setParentDeathSignal(signal: number): void {
  if (load().prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0) !== 0) throw new HutchError('EINTERNAL', `prctl(PDEATHSIG) failed: ${lastErrno()}`);
}

// ---- Added for the agent (src/agent/agent.ts): returning freed heap memory to the kernel. ----
// Bound on first use and on its own, so a libc without malloc_trim (musl) costs nothing else.

let mallocTrimFn: ((pad: number) => number) | null | undefined;

/** glibc malloc_trim(0): gives free heap pages back to the kernel; false where libc lacks it. */
export function mallocTrim(): boolean {
  if (mallocTrimFn === undefined) {
    try {
      mallocTrimFn = koffi().load('libc.so.6').func('int malloc_trim(size_t pad)') as (pad: number) => number;
    } catch {
      mallocTrimFn = null; // not glibc: there is nothing to trim through this call
    }
  }
  if (!mallocTrimFn) return false;
  mallocTrimFn(0);
  return true;
}

// ---- Added for image layer unpacking (src/image/unpack): fifos, overlay whiteouts (a 0/0 character
// device) and the overlay opaque xattr. Bound on first use, apart from the calls above. ----

interface FsCalls { mknod: Fn; lsetxattr: Fn; lgetxattr: Fn; syncfs: Fn }
let fsCalls: FsCalls | undefined;

function fsLib(): FsCalls {
  if (fsCalls) return fsCalls;
  const lib = koffi().load('libc.so.6');
  fsCalls = {
    mknod: lib.func('int mknod(const char *path, uint32_t mode, uint64_t dev)'),
    lsetxattr: lib.func('int lsetxattr(const char *path, const char *name, const uint8_t *value, size_t size, int flags)'),
    lgetxattr: lib.func('long lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)'),
    syncfs: lib.func('int syncfs(int fd)'),
  };
  return fsCalls;
}

export const S_IFIFO = 0o010000, S_IFCHR = 0o020000;

/** mknod(2) (a fifo, or a device such as the 0/0 whiteout); throws a HutchError naming the path and errno. */
export function mknod(path: string, mode: number, dev = 0): void {
  if (fsLib().mknod(path, mode, dev) !== 0) {
    throw new HutchError('EINTERNAL', `mknod ${path} failed: ${lastErrno()}`, { path });
  }
}

/** lsetxattr(2): sets xattr `name` on `path` itself (a symlink is not followed). */
export function lsetxattr(path: string, name: string, value: Buffer): void {
  if (fsLib().lsetxattr(path, name, value, value.length, 0) !== 0) {
    throw new HutchError('EINTERNAL', `setting xattr ${name} on ${path} failed: ${lastErrno()}`, { path });
  }
}

/** lgetxattr(2): the value of xattr `name` of `path` itself (at most 64 KiB), or null when it has none. */
export function lgetxattr(path: string, name: string): Buffer | null {
  const buf = new Uint8Array(65536);
  const n = fsLib().lgetxattr(path, name, buf, buf.length);
  if (n >= 0) return Buffer.from(buf.subarray(0, n));
  const e = lastErrno();
  if (e === 'ENODATA' || e === 'EOPNOTSUPP') return null;
  throw new HutchError('EINTERNAL', `reading xattr ${name} of ${path} failed: ${e}`, { path });
}

/** syncfs(2): writes out everything cached for the file system that `fd` is on. */
export function syncfs(fd: number, what: string): void {
  if (fsLib().syncfs(fd) !== 0) throw new HutchError('EINTERNAL', `syncing the file system of ${what} failed: ${lastErrno()}`, { path: what });
}

// ---- Added for private id ranges (src/linux/idmount.ts): the new mount API (open_tree,
// mount_setattr, move_mount), which glibc wraps only from 2.36; called through syscall(2). ----

let syscallFn: ((nr: number, ...typedArgs: unknown[]) => number) | undefined;

/** syscall(2), variadic: koffi takes each argument after the number as a (type, value) pair. */
function syscall(): (nr: number, ...typedArgs: unknown[]) => number {
  syscallFn ??= koffi().load('libc.so.6').func('long syscall(long nr, ...)') as (nr: number, ...typedArgs: unknown[]) => number;
  return syscallFn;
}

const SYS_OPEN_TREE = 428, SYS_MOVE_MOUNT = 429, SYS_MOUNT_SETATTR = 442;
const AT_FDCWD = -100, AT_EMPTY_PATH = 0x1000, OPEN_TREE_CLONE = 1, OPEN_TREE_CLOEXEC = 0o2000000, MOVE_MOUNT_F_EMPTY_PATH = 4;
export const MOUNT_ATTR_RDONLY = 0x1, MOUNT_ATTR_IDMAP = 0x100000;

/** The errno of the syscall that just failed, as koffi saved it. */
const syscallErrno = (): string => errnoName(koffi().errno());

/** open_tree(OPEN_TREE_CLONE): a detached copy of the mount at `path` (a bind mount not yet attached); returns its fd. */
export function openTreeClone(path: string): number {
  const fd = syscall()(SYS_OPEN_TREE, 'int', AT_FDCWD, 'str', path, 'unsigned int', OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (fd < 0) {
    const e = syscallErrno();
    throw new HutchError(e === 'ENOSYS' ? 'EUNSUPPORTED' : 'EINTERNAL', `open_tree ${path} failed: ${e}${e === 'ENOSYS' ? ' (this kernel is older than 5.2)' : ''}`, { path });
  }
  return fd;
}

/** mount_setattr(2) on a detached mount: sets `attrs` (MOUNT_ATTR_*), with the user namespace fd an idmapping needs. */
export function mountSetattr(mountFd: number, attrs: number, usernsFd: number, what: string): void {
  // struct mount_attr { u64 attr_set, attr_clr, propagation, userns_fd }
  const attr = new BigUint64Array([BigInt(attrs), 0n, 0n, BigInt(usernsFd)]);
  if (syscall()(SYS_MOUNT_SETATTR, 'int', mountFd, 'str', '', 'unsigned int', AT_EMPTY_PATH, 'void *', attr, 'size_t', attr.byteLength) !== 0) {
    const e = syscallErrno();
    // EINVAL for an idmapping: the filesystem (or the kernel) cannot do idmapped mounts.
    const unsupported = e === 'ENOSYS' || ((attrs & MOUNT_ATTR_IDMAP) !== 0 && (e === 'EINVAL' || e === 'EOPNOTSUPP'));
    throw new HutchError(unsupported ? 'EUNSUPPORTED' : 'EINTERNAL',
      `mount_setattr on ${what} failed: ${e}${unsupported ? ' (its filesystem or this kernel does not support idmapped mounts)' : ''}`, { path: what });
  }
}

/** move_mount(2): attaches the detached mount `mountFd` at `target`. */
export function moveMountTo(mountFd: number, target: string): void {
  if (syscall()(SYS_MOVE_MOUNT, 'int', mountFd, 'str', '', 'int', AT_FDCWD, 'str', target, 'unsigned int', MOVE_MOUNT_F_EMPTY_PATH) !== 0) {
    throw new HutchError('EINTERNAL', `move_mount to ${target} failed: ${syscallErrno()}`, { path: target });
  }
}

// ---- Added for OOM notices of v1 memory cgroups (src/linux/oom.ts). Bound on first use. ----

let eventfdFn: ((initval: number, flags: number) => number) | undefined;
export const EFD_CLOEXEC = 0o2000000;

/** eventfd(2): a new eventfd with the given flags. */
export function eventfd(flags: number): number {
  eventfdFn ??= koffi().load('libc.so.6').func('int eventfd(unsigned int initval, int flags)') as (initval: number, flags: number) => number;
  const fd = eventfdFn(0, flags);
  if (fd < 0) throw new HutchError('EINTERNAL', `eventfd failed: ${lastErrno()}`);
  return fd;
}
