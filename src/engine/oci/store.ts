// OCI containers on disk: one dir per container under the caller's --root (`<root>/<id>/`) with
// hutch's record (written atomically), a lock file and the private bundle. The dir itself is the
// claim on the id: mkdir fails for a duplicate, so two concurrent creates cannot both win.
import fs from 'node:fs';
import path from 'node:path';
import { HutchError, isHutchError, errnoCode } from '../../errors.js';
import { FileLock } from '../../linux/filelock.js';

/** A container's part in a pod, from the CRI annotations. */
export interface PodMembership { role: 'sandbox' | 'container'; sandboxId: string }

/** hutch's record of one OCI container. */
export interface OciRecord {
  version: 1;
  id: string;
  /** The caller's bundle (absolute), reported by `state` and `list`. */
  bundle: string;
  executor: string;
  platform: string;
  /** creating until the executor has made the container; deleting once teardown began. */
  phase: 'creating' | 'ready' | 'deleting';
  created: string;
  pod?: PodMembership;
  /** The bundle the executor reports (state, hooks) when it is not the private one: the caller's (caller-view.ts). */
  executorBundle?: string;
}

/** The dir in a container's dir where runc is shown the caller's bundle with the private config (caller-view.ts). */
export const CALLER_VIEW_DIR = 'caller-bundle';

/** The executor's own state root under hutch's root. */
export const EXECUTOR_DIR = '.executor';

const LOCK_TIMEOUT_MS = 30_000;
// runc's id rule ([\w+-.]: word characters and + , - .); a leading dot is hutch's own (.executor).
const ID_PATTERN = /^[\w+,.-]+$/;

/** Throws runc's "invalid id format" error unless `id` is a usable container id. */
export function checkContainerId(id: string): void {
  if (!ID_PATTERN.test(id) || id.startsWith('.') || id.length > 1024) {
    throw new HutchError('EINVAL', `invalid id format: ${id}`, { id });
  }
}

/** The error every verb gives for an id it does not know (runc's words). */
export function notFound(id: string): HutchError {
  return new HutchError('ENOTFOUND', 'container does not exist', { id });
}

/** The records of OCI containers under one root. */
export class OciStore {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  /** The container's dir. */
  dir(id: string): string { return path.join(this.root, id); }

  /** The private bundle dir the executor is given. */
  bundleDir(id: string): string { return path.join(this.dir(id), 'bundle'); }

  /** The executor's state root. */
  get executorRoot(): string { return path.join(this.root, EXECUTOR_DIR); }

  /** Claims `id` (its dir, made with mkdir so a duplicate fails) and holds its exclusive lock. */
  async claim(id: string): Promise<FileLock> {
    checkContainerId(id);
    // The executor's dir also marks the root as an OCI one for the CLI's mode detection.
    fs.mkdirSync(this.executorRoot, { recursive: true, mode: 0o700 });
    try {
      fs.mkdirSync(this.dir(id), { mode: 0o711 });
    } catch (e) {
      if (errnoCode(e) === 'EEXIST') throw new HutchError('EEXIST', `container with id exists: ${id}`, { id });
      throw e;
    }
    try {
      return await FileLock.acquire(path.join(this.dir(id), 'lock'), 'exclusive', { timeoutMs: LOCK_TIMEOUT_MS, id });
    } catch (e) {
      fs.rmSync(this.dir(id), { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * Takes the exclusive lock of an existing container; ENOTFOUND when there is none. A lock waited
   * for may turn out to be that of a container deleted meanwhile (and perhaps made again under the
   * same id): only the lock file its dir has now counts, so then it tries again.
   */
  async lock(id: string): Promise<FileLock> {
    checkContainerId(id);
    for (;;) {
      // Not a dir of another runtime's either: its lock file would make it look hutch's.
      if (this.read(id) === null) throw notFound(id);
      let lock: FileLock;
      try {
        lock = await FileLock.acquire(path.join(this.dir(id), 'lock'), 'exclusive', { timeoutMs: LOCK_TIMEOUT_MS, id });
      } catch (e) {
        // Deleted by someone else between the check and the lock.
        if (isHutchError(e) && e.code === 'ENOTFOUND') throw notFound(id);
        throw e;
      }
      if (lock.isAtPath()) return lock;
      lock.release();
    }
  }

  /**
   * Writes a record atomically: temp file, fsync, rename. `durable: false` skips the fsync, for a
   * record whose loss in a power cut changes nothing (a lost `creating` record reads as a broken
   * container, which delete removes just the same).
   */
  write(record: OciRecord, durable = true): void {
    const dir = this.dir(record.id);
    const tmp = path.join(dir, `.record.json.${process.pid}.tmp`);
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(record));
      if (durable) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path.join(dir, 'record.json'));
  }

  /**
   * The record of `id`; null when there is no such container (or the dir is another runtime's);
   * 'broken' when its dir has no readable record (a create cut short).
   */
  read(id: string): OciRecord | 'broken' | null {
    checkContainerId(id);
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.dir(id), 'record.json'), 'utf8');
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
      return this.isOurs(id) ? 'broken' : null;
    }
    try {
      const r = JSON.parse(text) as OciRecord;
      return r.version === 1 && r.id === id ? r : 'broken';
    } catch {
      return 'broken'; // not hutch's format: shown as broken, removable with delete --force
    }
  }

  /**
   * Whether the dir of `id`, which has no record, is hutch's. dockerd 20.10 gives every runtime one
   * root (`<exec-root>/runtime-runc/moby`), so runc's own container dirs (its state.json, no lock)
   * sit next to hutch's: those are not hutch's to show or delete. hutch's dir has its lock from
   * the moment after mkdir; an empty dir is a claim cut short.
   */
  private isOurs(id: string): boolean {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir(id));
    } catch (e) {
      if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return false;
      throw e;
    }
    return names.length === 0 || names.includes('lock');
  }

  /** The record of `id`, or runc's "container does not exist". */
  get(id: string): OciRecord | 'broken' {
    const r = this.read(id);
    if (r === null) throw notFound(id);
    return r;
  }

  /** Every container id under the root, sorted. */
  ids(): string[] {
    try {
      return fs.readdirSync(this.root).filter((n) => !n.startsWith('.') && ID_PATTERN.test(n)).sort();
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return [];
      throw e;
    }
  }

  /** The view of the caller's bundle runc is given while it makes a container with hooks. */
  callerViewDir(id: string): string { return path.join(this.dir(id), CALLER_VIEW_DIR); }

  /** Removes the container's dir (record, lock, private bundle); the runtime takes the caller view down first. */
  remove(id: string): void {
    checkContainerId(id);
    fs.rmSync(this.dir(id), { recursive: true, force: true });
  }
}
