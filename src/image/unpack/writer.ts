// Writes the entries of one layer into its (temp) dir. Every path is checked before use: names by
// layerPath, parents by a set of the dirs this layer made (a miss is lstat'ed), final components
// are created with O_EXCL / O_NOFOLLOW semantics, so nothing is ever written through a symlink.
// Sync fs calls on purpose: a few syscalls per entry, no thread-pool round trip per call.
import * as fs from 'node:fs';
import { HutchError, isHutchError } from '../../errors.js';
import { lsetxattr, mknod, S_IFCHR, S_IFIFO } from '../../linux/index.js';
import type { IdMapping } from '../types.js';
import { findInLayers, OPAQUE_XATTR } from './layers.js';
import { baseOf, entryError, layerPath, lstatOrNull, parentOf } from './paths.js';
import type { TarEntry, TarSink } from './tar-reader.js';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
const OPAQUE_MARKER = '.wh..wh..opq';
const WHITEOUT_PREFIX = '.wh.';
/** Inside id of `nobody`: what ids outside the mapping become. */
const OVERFLOW_ID = 65534;

/** An entry not made, and why. */
export interface SkippedEntry { name: string; reason: string }

/** The tar sink that makes files: one per layer, used once. */
export class LayerWriter implements TarSink {
  readonly skipped: SkippedEntry[] = [];
  entries = 0;
  /** Layer-relative paths known to be real dirs made by this layer ('' is the root). */
  private readonly dirs = new Set<string>(['']);
  /** The dirs directly below each dir, so a removed dir's subtree is forgotten without scanning them all. */
  private readonly subdirs = new Map<string, Set<string>>();
  /** Dir times, applied at the end (writing into a dir changes its mtime). */
  private readonly dirTimes = new Map<string, [number, number]>();
  private rootSet = false;
  private fd: number | undefined;
  private file: { e: TarEntry; abs: string } | undefined;
  private readonly lowers: string[];

  constructor(
    private readonly root: string,
    private readonly ids: IdMapping,
    lowerDirs: string[],
    private readonly label: string,
    private readonly maxEntries: number,
  ) {
    this.lowers = lowerDirs;
  }

  entry(e: TarEntry): void {
    if (++this.entries > this.maxEntries) throw entryError('EINVAL', this.label, e.name, `is past the limit of ${this.maxEntries} entries: refused`);
    try {
      this.begin(e);
    } catch (err) {
      throw this.wrap(err, e.name);
    }
  }

  data(chunk: Buffer): void {
    if (this.fd === undefined) return; // the body of an entry that is not made
    try {
      let off = 0;
      while (off < chunk.length) off += fs.writeSync(this.fd, chunk, off, chunk.length - off);
    } catch (err) {
      throw this.wrap(err, this.file!.e.name);
    }
  }

  endEntry(): void {
    if (this.fd === undefined) return;
    const { e, abs } = this.file!;
    const fd = this.fd;
    this.fd = this.file = undefined;
    try {
      try {
        // chown first: it clears setuid/setgid, which the chmod then sets.
        fs.fchownSync(fd, this.uid(e.uid), this.gid(e.gid));
        fs.fchmodSync(fd, e.mode);
        fs.futimesSync(fd, e.atime ?? e.mtime, e.mtime);
      } finally {
        fs.closeSync(fd);
      }
      this.applyXattrs(e, abs, false);
    } catch (err) {
      throw this.wrap(err, e.name);
    }
  }

  /** After the last entry: dir times, and the root's defaults when no entry set them. */
  finish(): void {
    try {
      if (!this.rootSet) {
        fs.chownSync(this.root, this.uid(0), this.gid(0));
        fs.chmodSync(this.root, 0o755);
      }
      for (const [rel, [atime, mtime]] of this.dirTimes) {
        if (this.dirs.has(rel)) fs.utimesSync(this.abs(rel), atime, mtime);
      }
    } catch (err) {
      throw new HutchError('EINTERNAL', `layer ${this.label}: setting the owner and times of its dirs failed: ${(err as Error).message}`, { id: this.label, cause: err });
    }
  }

  /** Closes a file left open by an error. */
  abort(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = this.file = undefined;
  }

  private begin(e: TarEntry): void {
    const rel = layerPath(e.name, this.label);
    // Pre-POSIX tars mark dirs with a trailing slash on a file entry.
    const type = (e.type === '0' || e.type === '7') && e.name.endsWith('/') ? '5' : e.type;
    const base = baseOf(rel);
    if (base.startsWith(WHITEOUT_PREFIX)) return this.whiteout(e, rel, base);
    if (rel === '') {
      if (type !== '5') throw entryError('EPERM', this.label, e.name, 'is the layer root but not a directory: refused');
      return this.directory(e, rel);
    }
    switch (type) {
      case '0': case '7': return this.regular(e, rel);
      case '5': case 'D': return this.directory(e, rel);
      case '2': return this.symlink(e, rel);
      case '1': return this.hardLink(e, rel);
      case '6': return this.fifo(e, rel);
      case '3': case '4':
        this.skipped.push({ name: e.name, reason: `${type === '3' ? 'character' : 'block'} device ${e.devmajor}:${e.devminor} not made (a user namespace cannot use devices)` });
        return;
      default:
        this.skipped.push({ name: e.name, reason: `unknown tar entry type ${JSON.stringify(type)} not made` });
    }
  }

  private regular(e: TarEntry, rel: string): void {
    const abs = this.prepare(rel, e.name);
    this.fd = this.create(rel, abs, () => fs.openSync(abs, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600));
    this.file = { e, abs };
  }

  private directory(e: TarEntry, rel: string): void {
    const abs = rel === '' ? this.root : this.prepare(rel, e.name);
    if (rel === '') this.rootSet = true;
    else if (!this.dirs.has(rel)) {
      // A dir entry for an existing dir only updates it (tar semantics); anything else there is replaced.
      try {
        fs.mkdirSync(abs, 0o700);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        if (!fs.lstatSync(abs).isDirectory()) {
          this.clear(rel, abs);
          fs.mkdirSync(abs, 0o700);
        }
      }
      this.addDir(rel);
    }
    fs.lchownSync(abs, this.uid(e.uid), this.gid(e.gid));
    fs.chmodSync(abs, e.mode); // abs is a real dir: made or checked just above
    this.dirTimes.set(rel, [e.atime ?? e.mtime, e.mtime]);
    this.applyXattrs(e, abs, false);
  }

  private symlink(e: TarEntry, rel: string): void {
    // Any target text: it resolves inside the sandbox, and nothing here ever follows it.
    if (e.linkname.includes('\0')) throw entryError('EINVAL', this.label, e.name, 'has a symlink target with a NUL byte: refused');
    const abs = this.prepare(rel, e.name);
    this.create(rel, abs, () => fs.symlinkSync(e.linkname, abs));
    this.finishNode(e, abs, true);
  }

  private fifo(e: TarEntry, rel: string): void {
    const abs = this.prepare(rel, e.name);
    this.create(rel, abs, () => mknod(abs, S_IFIFO | 0o600, 0));
    this.finishNode(e, abs, false);
  }

  /**
   * A hard link: to an earlier entry of this layer (linked: the inode keeps its own entry's owner and
   * mode), or to a file of a lower layer (copied with the lower file's owner, mode and times).
   */
  private hardLink(e: TarEntry, rel: string): void {
    const target = layerPath(e.linkname, this.label, e.name, 'has a hard link target');
    if (target === rel || target === '') throw entryError('EINVAL', this.label, e.name, `is a hard link to ${JSON.stringify(e.linkname)}, itself or the root: refused`);
    const abs = this.prepare(rel, e.name);
    const found = findInLayers(target, [this.root, ...this.lowers], this.label, e.name);
    if (!found) throw entryError('ENOTFOUND', this.label, e.name, `is a hard link to ${JSON.stringify(e.linkname)}, which no earlier entry or lower layer has`);
    const st = found.stat;
    if (st.isDirectory()) throw entryError('EPERM', this.label, e.name, `is a hard link to the directory ${JSON.stringify(e.linkname)}: refused`);
    if (found.layer === 0) return this.create(rel, abs, () => fs.linkSync(found.path, abs));
    if (st.isFile()) this.create(rel, abs, () => fs.copyFileSync(found.path, abs, fs.constants.COPYFILE_EXCL));
    else if (st.isSymbolicLink()) this.create(rel, abs, () => fs.symlinkSync(fs.readlinkSync(found.path), abs));
    else if (st.isFIFO()) this.create(rel, abs, () => mknod(abs, S_IFIFO | 0o600, 0));
    else throw entryError('EPERM', this.label, e.name, `is a hard link to ${JSON.stringify(e.linkname)}, which is not a file: refused`);
    fs.lchownSync(abs, st.uid, st.gid);
    if (!st.isSymbolicLink()) fs.chmodSync(abs, st.mode & 0o7777); // abs was just made and is not a symlink
    fs.lutimesSync(abs, st.atimeMs / 1000, st.mtimeMs / 1000);
  }

  /** `.wh.NAME` → an overlay whiteout NAME; `.wh..wh..opq` → its dir made opaque; other `.wh..wh.*` ignored. */
  private whiteout(e: TarEntry, rel: string, base: string): void {
    const dir = parentOf(rel);
    if (base === OPAQUE_MARKER) {
      this.ensureDir(dir, e.name);
      lsetxattr(this.abs(dir), OPAQUE_XATTR, Buffer.from('y'));
      return;
    }
    if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return; // aufs metadata: nothing for overlayfs
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === '' || name === '.' || name === '..') throw entryError('EPERM', this.label, e.name, `is a whiteout of ${JSON.stringify(name)}: refused`);
    const targetRel = dir ? `${dir}/${name}` : name;
    const abs = this.prepare(targetRel, e.name);
    this.create(targetRel, abs, () => mknod(abs, S_IFCHR, 0));
    fs.lchownSync(abs, this.uid(e.uid), this.gid(e.gid));
  }

  /** Owner, mode (not for symlinks), times and xattrs of a node made by path. */
  private finishNode(e: TarEntry, abs: string, isSymlink: boolean): void {
    fs.lchownSync(abs, this.uid(e.uid), this.gid(e.gid));
    if (!isSymlink) fs.chmodSync(abs, e.mode); // abs was just made by this layer and is not a symlink
    fs.lutimesSync(abs, e.atime ?? e.mtime, e.mtime);
    this.applyXattrs(e, abs, isSymlink);
  }

  private applyXattrs(e: TarEntry, abs: string, isSymlink: boolean): void {
    for (const key of e.otherPax ?? []) this.skipped.push({ name: e.name, reason: `pax record ${key} not applied` });
    if (!e.xattrs) return;
    for (const [name, value] of e.xattrs) {
      if (!name.startsWith('user.')) this.skipped.push({ name: e.name, reason: `xattr ${name} not applied (only user.* xattrs are)` });
      else if (isSymlink) this.skipped.push({ name: e.name, reason: `xattr ${name} not applied (Linux allows no user.* xattrs on symlinks)` });
      else lsetxattr(abs, name, value);
    }
  }

  /** The host path of layer-relative `rel`, with its parent dirs checked (and made when implied). */
  private prepare(rel: string, entry: string): string {
    this.ensureDir(parentOf(rel), entry);
    return this.abs(rel);
  }

  /** Makes sure `rel` is a real dir of this layer: made when missing (like the lower layers' dir, if one has it). */
  private ensureDir(rel: string, entry: string): void {
    if (this.dirs.has(rel)) return;
    this.ensureDir(parentOf(rel), entry);
    const abs = this.abs(rel);
    const st = lstatOrNull(abs);
    if (st?.isDirectory()) {
      this.addDir(rel);
      return;
    }
    if (st?.isSymbolicLink()) throw entryError('EPERM', this.label, entry, `goes through the symlink ${JSON.stringify(rel)}: refused (it could write outside the layer)`);
    if (st) throw entryError('EPERM', this.label, entry, `goes through ${JSON.stringify(rel)}, which is not a directory: refused`);
    const lower = findInLayers(rel, this.lowers, this.label, entry, 'absent');
    fs.mkdirSync(abs, 0o700);
    this.addDir(rel);
    if (lower?.stat.isDirectory()) {
      // Overlayfs shows the topmost dir's owner and mode: keep the lower one's.
      fs.lchownSync(abs, lower.stat.uid, lower.stat.gid);
      fs.chmodSync(abs, lower.stat.mode & 0o7777);
      this.dirTimes.set(rel, [lower.stat.atimeMs / 1000, lower.stat.mtimeMs / 1000]);
    } else {
      fs.lchownSync(abs, this.uid(0), this.gid(0));
      fs.chmodSync(abs, 0o755);
    }
  }

  /** Runs `make`; when something is already at `abs` (an earlier entry), removes it and runs it again. */
  private create<T>(rel: string, abs: string, make: () => T): T {
    try {
      return make();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' && !(isHutchError(err) && err.message.endsWith('EEXIST'))) throw err;
      this.clear(rel, abs);
      return make();
    }
  }

  /** Removes what an earlier entry made at `rel` (later entries replace earlier ones). */
  private clear(rel: string, abs: string): void {
    if (!fs.lstatSync(abs).isDirectory()) return fs.unlinkSync(abs);
    fs.rmSync(abs, { recursive: true, force: true }); // does not follow symlinks
    this.forgetDir(rel);
    this.subdirs.get(parentOf(rel))?.delete(rel);
  }

  private addDir(rel: string): void {
    this.dirs.add(rel);
    const parent = parentOf(rel);
    let siblings = this.subdirs.get(parent);
    if (!siblings) this.subdirs.set(parent, (siblings = new Set()));
    siblings.add(rel);
  }

  /** Drops `rel` and the dirs below it from what this layer knows (work in proportion to them, not to all dirs). */
  private forgetDir(rel: string): void {
    for (const child of this.subdirs.get(rel) ?? []) this.forgetDir(child);
    this.subdirs.delete(rel);
    this.dirs.delete(rel);
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : `${this.root}/${rel}`;
  }

  private uid(n: number): number {
    return this.ids.uidBase + (n >= 0 && n < this.ids.size ? n : OVERFLOW_ID);
  }

  private gid(n: number): number {
    return this.ids.gidBase + (n >= 0 && n < this.ids.size ? n : OVERFLOW_ID);
  }

  /** An error naming the entry; one that already names it passes unchanged. */
  private wrap(err: unknown, name: string): HutchError {
    if (isHutchError(err) && err.message.startsWith(`layer ${this.label}`)) return err;
    const what = err instanceof Error ? err.message : String(err);
    return entryError('EINTERNAL', this.label, name, `could not be written: ${what}`, err);
  }
}
