// Mount table reading, overlay and bind mounts, and a mount-aware, symlink-safe tree removal.
import * as fs from 'node:fs';
import { HutchError, errnoCode } from '../errors.js';
import * as ffi from './ffi.js';
import { assertCleanAbsolute, isAtOrBelow, pathDepth } from './paths.js';

/** One line of /proc/self/mountinfo (see proc(5)), with its paths unescaped. */
export interface MountInfo {
  id: number;
  parentId: number;
  /** "major:minor" of the filesystem's device. */
  device: string;
  /** The path inside the filesystem that is mounted (not "/" for bind mounts of a subdir). */
  root: string;
  mountPoint: string;
  /** Per-mount options: rw/ro, nosuid, nodev, noexec, relatime... */
  mountOptions: string[];
  /** Propagation tags such as shared:1, master:2. */
  optionalFields: string[];
  fsType: string;
  source: string;
  /** Per-superblock options (for cgroup v1: the controllers). */
  superOptions: string[];
}

/** Undoes the kernel's octal escaping of space, tab, newline and backslash in mountinfo paths. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses mountinfo text; exported for tests and for reading another process's table. */
export function parseMountinfo(text: string): MountInfo[] {
  const mounts: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 4) {
      throw new HutchError('EINTERNAL', `unparseable mountinfo line: ${line}`);
    }
    mounts.push({
      id: Number(fields[0]),
      parentId: Number(fields[1]),
      device: fields[2]!,
      root: unescapeMountField(fields[3]!),
      mountPoint: unescapeMountField(fields[4]!),
      mountOptions: fields[5]!.split(','),
      optionalFields: fields.slice(6, sep),
      fsType: fields[sep + 1]!,
      source: unescapeMountField(fields[sep + 2]!),
      superOptions: fields.slice(sep + 3).join(' ').split(','),
    });
  }
  return mounts;
}

/** The current mount table of this process's mount namespace. */
export function readMountinfo(): MountInfo[] {
  return parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
}

/** Mounts at or below `dir` (a clean absolute path), deepest first; stacked mounts topmost first. */
export function mountsUnder(dir: string): MountInfo[] {
  assertCleanAbsolute(dir, 'mountsUnder');
  const table = readMountinfo();
  const order = new Map(table.map((m, i) => [m, i]));
  return table
    .filter((m) => isAtOrBelow(m.mountPoint, dir))
    // Deeper first; at equal depth the later line (mounted later, so on top) first.
    .sort((a, b) => pathDepth(b.mountPoint) - pathDepth(a.mountPoint) || order.get(b)! - order.get(a)!);
}

/** True when `p` is itself a mount point (a bind mount of a dir onto itself counts). */
export function isMountPoint(p: string): boolean {
  assertCleanAbsolute(p, 'isMountPoint');
  const real = realpathOrNull(p);
  return real !== null && readMountinfo().some((m) => m.mountPoint === real);
}

/** realpath(p), or null when it does not exist. */
function realpathOrNull(p: string): string | null {
  try {
    return fs.realpathSync(p);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return null;
    throw new HutchError('EINTERNAL', `cannot resolve ${p}: ${(e as Error).message}`, { path: p, cause: e });
  }
}

/** Refuses a cleanup root reached through a symlink: unmounting or deleting there would act outside the tree named. */
function assertNoSymlinkComponent(dir: string, what: string): boolean {
  const real = realpathOrNull(dir);
  if (real === null) return false;
  if (real !== dir) {
    throw new HutchError('EPERM', `${what}: ${dir} resolves through a symlink to ${real}; refusing`, { path: dir });
  }
  return true;
}

const MAX_UNMOUNT_ROUNDS = 8;

/** Unmounts everything at or below `dir`, deepest first, lazily (MNT_DETACH) when busy; returns how many it unmounted. */
export function unmountTree(dir: string): number {
  assertCleanAbsolute(dir, 'unmountTree');
  if (!assertNoSymlinkComponent(dir, 'unmountTree')) return 0;
  let unmounted = 0;
  // Rounds, because unmounting can reveal mounts that were stacked underneath or propagated in meanwhile.
  for (let round = 0; round < MAX_UNMOUNT_ROUNDS; round++) {
    const mounts = mountsUnder(dir);
    if (mounts.length === 0) return unmounted;
    for (const m of mounts) {
      let err = ffi.umount2(m.mountPoint, 0);
      if (err === 'EBUSY') err = ffi.umount2(m.mountPoint, ffi.MNT_DETACH);
      if (err === null) unmounted++;
      // EINVAL/ENOENT: already gone with a detached parent; the next round's table decides.
      else if (err !== 'EINVAL' && err !== 'ENOENT') {
        throw new HutchError('EINTERNAL', `cannot unmount ${m.mountPoint}: ${err}`, { path: m.mountPoint });
      }
    }
  }
  const left = mountsUnder(dir).map((m) => m.mountPoint);
  if (left.length === 0) return unmounted;
  throw new HutchError('EINTERNAL', `mounts left under ${dir} after unmounting: ${left.join(', ')}`, { path: dir });
}

/**
 * Removes `dir` and everything in it: unmounts what is mounted there first, then deletes without following
 * symlinks (fs.rm lstat()s each entry and unlinks links; the test checks a link to outside leaves its target).
 * Missing is fine. Refuses `/`, paths with fewer than 2 components, and paths through a symlink.
 */
export async function removeTreeSafely(dir: string): Promise<void> {
  assertCleanAbsolute(dir, 'removeTreeSafely');
  if (pathDepth(dir) < 2) {
    throw new HutchError('EPERM', `refusing to remove ${dir}: too close to the root`, { path: dir });
  }
  if (!assertNoSymlinkComponent(dir, 'removeTreeSafely')) return;
  unmountTree(dir);
  // rm -rf must never cross into a mounted filesystem (a bind of a host dir would be emptied).
  const left = mountsUnder(dir);
  if (left.length > 0) {
    throw new HutchError('EINTERNAL', `refusing to remove ${dir}: still mounted at ${left[0]!.mountPoint}`, { path: dir });
  }
  try {
    await fs.promises.rm(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch (e) {
    throw new HutchError('EINTERNAL', `cannot remove ${dir}: ${(e as Error).message}`, { path: dir, cause: e });
  }
}

/** mount(2)'s data argument is copied into one page; longer option strings fail with an obscure error. */
const MOUNT_DATA_MAX = 4096;

/** Where and from what to mount an overlay; without upperDir/workDir it is read-only (needs 2+ lowers). */
export interface OverlayMount {
  /** Topmost first, as overlayfs orders them. */
  lowerDirs: string[];
  upperDir?: string;
  workDir?: string;
  target: string;
  /** Extra overlay options such as "xino=off" or "userxattr". */
  extraOptions?: string[];
}

/** Overlay option values are split on ',' and ':'; we build host paths ourselves, so refuse rather than escape. */
function assertOverlayPath(p: string, what: string, target: string): void {
  assertCleanAbsolute(p, `overlay ${what}`);
  if (/[,:\\\n]/.test(p)) {
    throw new HutchError('EINVAL', `overlay ${what} ${p} contains ',', ':', '\\' or a newline`, { path: target });
  }
}

/** The option string for an overlay mount; throws EINVAL if it would not fit in mount(2)'s one page. */
export function overlayOptions(o: OverlayMount): string {
  if (o.lowerDirs.length === 0) throw new HutchError('EINVAL', `overlay on ${o.target}: no lower dirs`, { path: o.target });
  if ((o.upperDir === undefined) !== (o.workDir === undefined)) {
    throw new HutchError('EINVAL', `overlay on ${o.target}: upperDir and workDir go together`, { path: o.target });
  }
  if (o.upperDir === undefined && o.lowerDirs.length < 2) {
    throw new HutchError('EINVAL', `overlay on ${o.target}: a read-only overlay needs 2 or more lower dirs`, { path: o.target });
  }
  for (const d of o.lowerDirs) assertOverlayPath(d, 'lower dir', o.target);
  const parts = [`lowerdir=${o.lowerDirs.join(':')}`];
  if (o.upperDir !== undefined && o.workDir !== undefined) {
    assertOverlayPath(o.upperDir, 'upper dir', o.target);
    assertOverlayPath(o.workDir, 'work dir', o.target);
    parts.push(`upperdir=${o.upperDir}`, `workdir=${o.workDir}`);
  }
  for (const opt of o.extraOptions ?? []) {
    if (!/^[a-z_]+(=[A-Za-z0-9_./-]+)?$/.test(opt)) {
      throw new HutchError('EINVAL', `overlay on ${o.target}: bad extra option ${JSON.stringify(opt)}`, { path: o.target });
    }
    parts.push(opt);
  }
  const data = parts.join(',');
  const bytes = Buffer.byteLength(data) + 1;
  if (bytes > MOUNT_DATA_MAX) {
    throw new HutchError('EINVAL',
      `overlay on ${o.target}: options are ${bytes} bytes with ${o.lowerDirs.length} lower dirs, over the ${MOUNT_DATA_MAX}-byte page mount(2) accepts`,
      { path: o.target });
  }
  return data;
}

/** open(2)'s O_PATH on Linux (node's fs.constants lacks it): an fd that names a dir, nothing more. */
const O_PATH = 0o10000000;

/**
 * Mounts an overlay filesystem on `target`. Every dir is passed as `/proc/self/fd/N` of an O_PATH
 * fd held for the call: mountinfo (the sandbox's own too) then shows no host path, and an image of
 * a hundred layers still fits in mount(2)'s one page.
 */
export function mountOverlay(o: OverlayMount): void {
  assertCleanAbsolute(o.target, 'overlay target');
  const fds: number[] = [];
  const byFd = (dir: string, what: string): string => {
    assertCleanAbsolute(dir, `overlay ${what}`);
    try {
      fds.push(fs.openSync(dir, O_PATH | fs.constants.O_DIRECTORY));
    } catch (e) {
      throw new HutchError(errnoCode(e) === 'ENOENT' ? 'ENOTFOUND' : 'EINVAL', `overlay on ${o.target}: ${what} ${dir}: ${errnoCode(e) ?? String(e)}`, { path: dir, cause: e });
    }
    return `/proc/self/fd/${fds[fds.length - 1]}`;
  };
  try {
    const data = overlayOptions({
      ...o,
      lowerDirs: o.lowerDirs.map((d) => byFd(d, 'lower dir')),
      ...(o.upperDir !== undefined ? { upperDir: byFd(o.upperDir, 'upper dir') } : {}),
      ...(o.workDir !== undefined ? { workDir: byFd(o.workDir, 'work dir') } : {}),
    });
    ffi.mount('overlay', o.target, 'overlay', 0, data);
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}

/** How to bind-mount: read-only needs a second, remount step; recursive also binds the mounts below src. */
export interface BindOptions { readonly?: boolean; recursive?: boolean }

const PRESERVED_MOUNT_FLAGS: Record<string, number> = {
  nosuid: ffi.MS_NOSUID, nodev: ffi.MS_NODEV, noexec: ffi.MS_NOEXEC,
  noatime: ffi.MS_NOATIME, nodiratime: ffi.MS_NODIRATIME, relatime: ffi.MS_RELATIME,
};

/** Remounts one bind mount read-only, keeping its nosuid/nodev/noexec/atime flags (dropping them is EPERM in a user ns). */
function remountReadonly(m: MountInfo): void {
  let flags = ffi.MS_REMOUNT | ffi.MS_BIND | ffi.MS_RDONLY;
  for (const opt of m.mountOptions) flags |= PRESERVED_MOUNT_FLAGS[opt] ?? 0;
  ffi.mount('none', m.mountPoint, null, flags, null);
}

/** Bind-mounts `src` on `target` (both must exist); with readonly, every mount of a recursive bind becomes read-only. */
export function bindMount(src: string, target: string, opts: BindOptions = {}): void {
  assertCleanAbsolute(src, 'bind source');
  assertCleanAbsolute(target, 'bind target');
  ffi.mount(src, target, null, ffi.MS_BIND | (opts.recursive ? ffi.MS_REC : 0), null);
  if (!opts.readonly) return;
  const real = fs.realpathSync(target);
  const mounts = mountsUnder(real);
  const top = mounts.filter((m) => m.mountPoint === real)[0];
  if (top === undefined) throw new HutchError('EINTERNAL', `bind mount on ${target} is not in the mount table`, { path: target });
  remountReadonly(top);
  if (opts.recursive) for (const m of mounts) if (m.mountPoint !== real) remountReadonly(m);
}

/** Makes the mount at `target` (and, with recursive, those below) private, so later mounts do not propagate out. */
export function makePrivate(target: string, recursive = false): void {
  assertCleanAbsolute(target, 'makePrivate');
  ffi.mount('none', target, null, ffi.MS_PRIVATE | (recursive ? ffi.MS_REC : 0), null);
}

