// Snapshots on disk: one dir each under <data root>/snapshots ($HUTCH_SNAPSHOT_ROOT; not /run: a snapshot outlives a
// reboot of the state root and hutchd restarts), or a dir the user names (checkpoint --to DIR).
// A dir holds the platform's files (gVisor: its image and the writable layer) and snapshot.json,
// written last: a dir without it is an unfinished checkpoint, never listed or restored.
import fs from 'node:fs';
import path from 'node:path';
import { errnoCode, HutchError } from '../errors.js';
import type { SandboxSettings } from '../platform/index.js';
import { randomHex } from './store.js';

/** What snapshot.json says. */
export interface SnapshotMeta {
  version: 1;
  id: string;
  createdAt: string;
  /** The sandbox it was taken of. */
  source: { id: string; name: string };
  platform: string;
  /** What the restored sandbox is made of (its id and name are new). */
  settings: Omit<SandboxSettings, 'id' | 'name'>;
  labels?: Record<string, string>;
  image?: { ref: string; id: string };
  mainPid?: number;
}

/** A snapshot with where it is and its size on disk. */
export interface SnapshotInfo extends SnapshotMeta { dir: string; sizeBytes: number }

const META = 'snapshot.json';
const ID_RE = /^[0-9a-f]{16}$/;

/** The snapshots of one data root (in `$HUTCH_SNAPSHOT_ROOT` or `<dataRoot>/snapshots`). */
export class SnapshotStore {
  readonly root: string;
  constructor(dataRoot: string) {
    this.root = process.env.HUTCH_SNAPSHOT_ROOT ?? path.join(dataRoot, 'snapshots');
  }

  /** A new empty dir for a snapshot: under the store, or `to` (which must not exist or be empty). */
  allocate(to?: string): { id: string; dir: string; made: boolean } {
    const id = randomHex(8);
    if (to === undefined) {
      fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
      const dir = path.join(this.root, id);
      fs.mkdirSync(dir, { mode: 0o700 });
      return { id, dir, made: true };
    }
    const dir = path.resolve(to);
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
      return { id, dir, made: true };
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw new HutchError('EINVAL', `cannot make snapshot dir ${dir}: ${errnoCode(e) ?? String(e)}`, { path: dir, cause: e });
      if (!fs.statSync(dir).isDirectory() || fs.readdirSync(dir).length > 0) throw new HutchError('EEXIST', `snapshot dir ${dir} exists and is not an empty directory`, { path: dir });
    }
    return { id, dir, made: false };
  }

  /** Writes snapshot.json last: from then on the snapshot exists. */
  commit(dir: string, meta: SnapshotMeta): void {
    const tmp = path.join(dir, `.${META}.tmp`);
    fs.writeFileSync(tmp, JSON.stringify(meta, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, path.join(dir, META));
  }

  /** Removes an unfinished snapshot: its dir, or only what is in it when the caller gave the dir (--to). */
  discard(snap: { dir: string; made: boolean }): void {
    if (snap.made) return fs.rmSync(snap.dir, { recursive: true, force: true });
    for (const name of fs.readdirSync(snap.dir)) fs.rmSync(path.join(snap.dir, name), { recursive: true, force: true });
  }

  /** The dir of snapshot `ref`: an id of this store, or a path to a snapshot dir. */
  dirOf(ref: string): string {
    if (ID_RE.test(ref)) return path.join(this.root, ref);
    if (ref.includes('/')) return path.resolve(ref);
    throw new HutchError('ENOTFOUND', `snapshot ${ref.slice(0, 80)} not found: give a snapshot id (hutch snapshot ls) or a snapshot dir`, { id: ref });
  }

  /** The snapshot `ref` (id or dir); ENOTFOUND when there is none, EPROTO when its record is not one. */
  read(ref: string): SnapshotInfo {
    const meta = this.readMeta(ref);
    return { ...meta, sizeBytes: duBytes(meta.dir) };
  }

  /** What snapshot.json of `ref` says, and where it is (no size: that walks the whole dir). */
  readMeta(ref: string): SnapshotMeta & { dir: string } {
    const dir = this.dirOf(ref);
    let text: string;
    try {
      text = fs.readFileSync(path.join(dir, META), 'utf8');
    } catch (e) {
      if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') throw new HutchError('ENOTFOUND', `snapshot ${ref.slice(0, 200)} not found`, { id: ref });
      throw e;
    }
    let meta: SnapshotMeta;
    try {
      meta = JSON.parse(text) as SnapshotMeta;
    } catch {
      throw new HutchError('EPROTO', `snapshot ${ref.slice(0, 200)}: ${META} is not JSON`, { path: dir });
    }
    if (meta.version !== 1 || typeof meta.platform !== 'string' || typeof meta.settings !== 'object' || meta.settings === null || !ID_RE.test(String(meta.id))) {
      throw new HutchError('EPROTO', `snapshot ${ref.slice(0, 200)}: ${META} is not a hutch snapshot record`, { path: dir });
    }
    return { ...meta, dir };
  }

  /** The snapshots under the store, oldest first. */
  list(): SnapshotInfo[] {
    return this.metas().map((m) => ({ ...m, sizeBytes: duBytes(m.dir) }));
  }

  /** The records of the snapshots under the store (unfinished and unreadable ones left out), oldest first. */
  metas(): (SnapshotMeta & { dir: string })[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.root).filter((n) => ID_RE.test(n));
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return [];
      throw e;
    }
    const out: (SnapshotMeta & { dir: string })[] = [];
    for (const n of names) {
      try {
        out.push(this.readMeta(n));
      } catch (e) {
        if (e instanceof HutchError && e.code === 'ENOTFOUND') continue; // being made
        throw e;
      }
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Removes snapshot `ref` of this store (or a snapshot dir given by path). */
  remove(ref: string): void {
    const info = this.read(ref);
    fs.rmSync(info.dir, { recursive: true, force: true });
  }
}

/** Bytes used by the files under `dir` (not following links). */
function duBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    const st = fs.lstatSync(p);
    total += st.isDirectory() ? duBytes(p) : st.size;
  }
  return total;
}
