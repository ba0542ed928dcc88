// Watching a path with inotify (fs.watch, one watch per directory: node 20's recursive fs.watch on
// Linux walks and watches in JS, follows symlinks and has no bound, so the tree is walked here).
// A directory is watched through /proc/self/fd of a descriptor opened O_NOFOLLOW whose kernel path is
// checked to be the expected place under the root: a symlink (or a swapped parent) never leads a
// watch out of the tree. Events are coalesced per path for COALESCE_MS, then each path is looked at
// once (lstat): fs.watch's 'rename' means created if it exists now, removed if not; 'change' means
// modified. The last state of every path is sent; nothing is dropped while the connection is
// congested (changes wait, merged per path, up to MAX_PENDING paths).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { errnoCode, HutchError, isHutchError } from '../errors.js';
import { fsError, normalizePath } from './files.js';
import {
  MAX_WATCH_BATCH, MAX_WATCH_DIRS, MAX_WATCHES,
  type EventMessage, type WatchChange, type WatchParams, type WatchResult, type WireError,
} from './protocol.js';

/** How long events are gathered before the paths they name are looked at. */
export const COALESCE_MS = 50;
/** Most distinct changed paths a watch holds before they are sent; beyond, the watch ends (EINVAL). */
export const MAX_PENDING = 50_000;
/** Most changes sent per COALESCE_MS (the rest wait): at most 20000 a second. */
export const MAX_CHANGES_PER_FLUSH = 1000;
/** Most subdirectories of a root watched without `recursive` that are told apart from new ones. */
const MAX_SUBDIRS = 100_000;

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fs.constants;
/** A modification ('change'). */
const SEEN_CHANGE = 1;
/** A create, delete or move ('rename'). */
const SEEN_RENAME = 2;
/** Found in a directory that appeared: created, even if already watched. */
const SEEN_NEW = 4;

/** Where a watch's events go (a session). */
export interface WatchSink {
  readonly congested: boolean;
  readonly isClosed: boolean;
  sendEvent(ev: EventMessage): void;
}

interface WatchedDir { path: string; key: string; watcher: fs.FSWatcher }

/** A failure of inotify itself (limits) as EUNSUPPORTED, so that the host can poll instead. */
function watchError(p: string, e: unknown): HutchError {
  const c = errnoCode(e);
  if (c === 'ENOSPC' || c === 'EMFILE' || c === 'ENFILE' || c === 'ENOSYS') {
    return new HutchError('EUNSUPPORTED', `cannot watch ${p}: inotify limit reached (${c})`, { path: p, cause: e });
  }
  return fsError('watch', p, e);
}

/** One watch: a directory tree (or one directory, or one file through its parent). */
class TreeWatch {
  private readonly dirs = new Map<string, WatchedDir>();
  private readonly inodes = new Set<string>();
  /** The subdirectories of the root, when not watched recursively. */
  private readonly subdirs = new Set<string>();
  /** path → what was seen of it (SEEN_* bits). */
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private ended = false;
  /** The real path of the base (kernel paths of watched directories are checked against it). */
  private realBase = '';
  /** The name of the watched file when the root is not a directory (its parent is watched). */
  private fileName: string | null = null;
  entries = 0;

  constructor(readonly id: number, private readonly root: string, private readonly recursive: boolean,
    private readonly sink: WatchSink, private readonly onEnd: (w: TreeWatch) => void) {}

  /** Walks and watches; resolves once every change after it is seen. */
  async start(): Promise<WatchResult> {
    let st: fs.Stats;
    try {
      st = await fsp.stat(this.root);
      if (!st.isDirectory()) this.fileName = path.posix.basename(this.root);
      this.realBase = await fsp.realpath(this.base);
    } catch (e) {
      throw fsError('watch', this.root, e);
    }
    try {
      if (this.fileName === null) await this.walk(this.root, false);
      else {
        // A file is watched through its directory, so that replacing it (rename over) is seen.
        this.addDir(this.base);
        this.entries = 1;
      }
      if (this.dirs.size === 0) throw new HutchError('ENOTFOUND', `watch ${this.root}: it went away while being watched`, { path: this.root });
    } catch (e) {
      this.closeAll();
      throw e;
    }
    this.started = true;
    return { watchId: this.id, dirs: this.dirs.size, entries: this.entries };
  }

  /** The watched directory at the top: the root, or a watched file's parent. */
  private get base(): string {
    return this.fileName === null ? this.root : path.posix.dirname(this.root);
  }

  /** The kernel's path of directory `p` (under the base) when no symlink leads there. */
  private realOf(p: string): string {
    const base = this.base;
    if (p === base) return this.realBase;
    return (this.realBase === '/' ? '' : this.realBase) + p.slice(base === '/' ? 0 : base.length);
  }

  /**
   * Watches directory `p` if it is a real directory at its place under the root (not reached through
   * a symlink) and not watched yet; then runs `then` with a path that reads that very directory.
   */
  private addDir(p: string, then?: (fdPath: string) => Promise<void>): Promise<void> | void {
    const isBase = p === this.base;
    let fd: number;
    try {
      // The base may be reached through symlinks (the caller named it); nothing under it may.
      fd = fs.openSync(p, O_RDONLY | O_DIRECTORY | (isBase ? 0 : O_NOFOLLOW));
    } catch (e) {
      const c = errnoCode(e);
      if (!isBase && (c === 'ENOENT' || c === 'ENOTDIR' || c === 'ELOOP' || c === 'EACCES' || c === 'ENAMETOOLONG')) return; // gone, or not a real directory
      throw watchError(p, e);
    }
    const fdPath = `/proc/self/fd/${fd}`;
    const release = (): void => fs.closeSync(fd);
    try {
      if (fs.readlinkSync(fdPath) !== this.realOf(p)) return release(); // reached through a symlink, or moved meanwhile
      const st = fs.fstatSync(fd);
      const key = `${st.dev}:${st.ino}`;
      if (this.inodes.has(key) || this.dirs.has(p)) return release();
      if (this.dirs.size >= MAX_WATCH_DIRS) {
        throw new HutchError('EINVAL', `${this.root} has more than ${MAX_WATCH_DIRS} directories to watch`, { path: this.root });
      }
      const dir: WatchedDir = { path: p, key, watcher: undefined as unknown as fs.FSWatcher };
      // Watched by the descriptor's path: the watch is on this very directory, whatever its name does.
      // The trailing '/.' makes events about the directory itself carry the name '.', which no entry has.
      dir.watcher = fs.watch(`${fdPath}/.`, { persistent: false }, (type, name) => this.onEvent(dir, type, name));
      dir.watcher.on('error', (e) => this.end(watchError(p, e)));
      this.dirs.set(p, dir);
      this.inodes.add(key);
    } catch (e) {
      release();
      throw isHutchError(e) ? e : watchError(p, e);
    }
    if (!then) return release();
    return then(fdPath).finally(release);
  }

  /** Watches `top` and (recursively) the directories under it; `report` queues their entries as created. */
  private async walk(top: string, report: boolean): Promise<void> {
    const queue = [top];
    while (queue.length > 0 && !this.ended) {
      const dir = queue.shift()!;
      await this.addDir(dir, async (fdPath) => {
        let entries: fs.Dirent[];
        try {
          entries = await fsp.readdir(fdPath, { withFileTypes: true });
        } catch (e) {
          if (errnoCode(e) === 'ENOENT') return; // removed while we looked: its events tell
          throw watchError(dir, e);
        }
        this.entries += entries.length;
        for (const e of entries) {
          const p = path.posix.join(dir, e.name);
          if (report) this.mark(p, SEEN_NEW);
          if (e.isDirectory()) {
            if (this.recursive) queue.push(p);
            else this.rememberSubdir(p);
          }
        }
      });
    }
  }

  private onEvent(dir: WatchedDir, type: string, name: string | Buffer | null): void {
    if (this.ended || typeof name !== 'string' || name === '' || name.includes('/')) return;
    if (name === '.') return this.selfEvent(dir);
    if (this.fileName !== null) {
      if (name === this.fileName) this.mark(this.root, type === 'rename' ? SEEN_RENAME : SEEN_CHANGE);
      return;
    }
    this.mark(path.posix.join(dir.path, name), type === 'rename' ? SEEN_RENAME : SEEN_CHANGE);
  }

  /** An event about a watched directory itself: nothing unless it is gone or replaced (then removed). */
  private selfEvent(dir: WatchedDir): void {
    const st = fs.lstatSync(dir.path, { throwIfNoEntry: false });
    if (st && st.isDirectory() && `${st.dev}:${st.ino}` === dir.key) return; // its own attributes changed
    this.mark(this.fileName !== null ? this.root : dir.path, SEEN_RENAME);
    if (this.fileName !== null) this.drop(dir.path);
  }

  /** Notes a directory in the (not recursively) watched root, so that its attribute changes are not a creation. */
  private rememberSubdir(p: string): void {
    if (this.subdirs.size < MAX_SUBDIRS) this.subdirs.add(p);
  }

  private mark(p: string, seen: number): void {
    if (p.length > 4096) return; // beyond PATH_MAX: it cannot be looked at (or named) anyway
    this.pending.set(p, (this.pending.get(p) ?? 0) | seen);
    if (this.pending.size > MAX_PENDING) {
      return this.end(new HutchError('EINVAL', `watch of ${this.root}: more than ${MAX_PENDING} changes pending`, { path: this.root }));
    }
    this.timer ??= setTimeout(() => this.flush(), COALESCE_MS);
  }

  /** Closes the watches of `p` and of every directory under it. */
  private drop(p: string): void {
    for (const [dp, d] of this.dirs) {
      if (dp === p || dp.startsWith(p === '/' ? '/' : `${p}/`)) {
        d.watcher.close();
        this.dirs.delete(dp);
        this.inodes.delete(d.key);
      }
    }
  }

  /** Looks at each changed path once and sends what changed. */
  private flush(): void {
    this.timer = undefined;
    if (this.ended) return;
    if (!this.started || this.sink.congested) {
      this.timer = setTimeout(() => this.flush(), COALESCE_MS);
      return;
    }
    const changes: WatchChange[] = [];
    const appeared: string[] = [];
    let rootGone = false;
    for (const [p, seen] of this.pending) {
      const rename = (seen & (SEEN_RENAME | SEEN_NEW)) !== 0;
      if (changes.length >= MAX_CHANGES_PER_FLUSH) break;
      this.pending.delete(p);
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(p, { throwIfNoEntry: false });
      } catch {
        st = undefined; // ENOTDIR, ELOOP, ENAMETOOLONG: nothing there that can be named
      }
      const watched = this.dirs.get(p);
      if (watched && (!st || !st.isDirectory() || `${st.dev}:${st.ino}` !== watched.key)) this.drop(p);
      if (!st) {
        this.subdirs.delete(p);
        changes.push({ kind: 'removed', path: p });
        if (p === this.root && this.fileName === null) rootGone = true;
        continue;
      }
      if (!st.isDirectory() || this.fileName !== null) {
        changes.push({ kind: rename ? 'created' : 'modified', path: p });
        continue;
      }
      // A directory is created or removed, never modified (its changes are its entries').
      const stillWatched = this.dirs.has(p);
      // A directory's attribute change comes as 'rename' too (IN_ATTRIB|IN_ISDIR): known ones are not new.
      const known = stillWatched || this.subdirs.has(p);
      if (p === this.root) {
        if (!stillWatched) appeared.push(p); // replaced by a new directory: watch that one
        continue;
      }
      if (!(seen & SEEN_NEW) && (known || !rename)) continue;
      changes.push({ kind: 'created', path: p });
      if (this.recursive) appeared.push(p);
      else this.rememberSubdir(p);
    }
    // After the loop: a directory moved within the tree is dropped under its old name first.
    for (const p of appeared) this.rewalk(p);
    if (this.fileName !== null && this.dirs.size === 0) rootGone = true;
    for (let i = 0; i < changes.length; i += MAX_WATCH_BATCH) {
      this.sink.sendEvent({ event: 'watch', watchId: this.id, changes: changes.slice(i, i + MAX_WATCH_BATCH) });
    }
    if (rootGone) return this.end(null);
    if (this.pending.size > 0) this.timer = setTimeout(() => this.flush(), COALESCE_MS);
  }

  /** Watches a directory that appeared (and its subdirectories), reporting what is in it as created. */
  private rewalk(p: string): void {
    this.walk(p, true).catch((e: unknown) => this.end(isHutchError(e) ? e : watchError(p, e)));
  }

  private closeAll(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const d of this.dirs.values()) d.watcher.close();
    this.dirs.clear();
    this.inodes.clear();
  }

  /** Stops the watch quietly (unwatch, or the connection closed). */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.closeAll();
    this.onEnd(this);
  }

  /** Ends the watch by itself: the root is gone (null) or watching failed; tells the host. */
  end(error: HutchError | null): void {
    if (this.ended) return;
    const wire: WireError | null = error && { code: error.code, message: error.message.slice(0, 8192) };
    this.close();
    if (this.started) this.sink.sendEvent({ event: 'watch-end', watchId: this.id, error: wire });
  }
}

/** The watches of every connection. */
export class Watches {
  private nextId = 1;
  private readonly bySink = new Map<WatchSink, Map<number, TreeWatch>>();

  /** Number of watches held (all connections). */
  get size(): number {
    let n = 0;
    for (const m of this.bySink.values()) n += m.size;
    return n;
  }

  /** Starts a watch for `sink`. */
  async start(sink: WatchSink, params: WatchParams): Promise<WatchResult> {
    const mine = this.bySink.get(sink) ?? new Map<number, TreeWatch>();
    if (mine.size >= MAX_WATCHES) throw new HutchError('EINVAL', `a connection may hold at most ${MAX_WATCHES} watches`);
    const id = this.nextId;
    this.nextId = this.nextId >= 0x7fffffff ? 1 : this.nextId + 1;
    const w = new TreeWatch(id, normalizePath(params.path), params.recursive, sink, (done) => {
      const m = this.bySink.get(sink);
      m?.delete(done.id);
      if (m?.size === 0) this.bySink.delete(sink);
    });
    mine.set(id, w);
    this.bySink.set(sink, mine);
    try {
      const result = await w.start();
      if (sink.isClosed) throw new HutchError('ESTATE', 'the connection closed while the watch started');
      return result;
    } catch (e) {
      w.close();
      throw e;
    }
  }

  /** Stops a watch of `sink` (nothing if it already ended). */
  stop(sink: WatchSink, watchId: number): void {
    this.bySink.get(sink)?.get(watchId)?.close();
  }

  /** Stops every watch of a connection that closed. */
  closeSink(sink: WatchSink): void {
    for (const w of [...(this.bySink.get(sink)?.values() ?? [])]) w.close();
    this.bySink.delete(sink);
  }
}
