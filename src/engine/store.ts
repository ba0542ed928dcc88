// The state store: one dir per sandbox under the root, state.json written atomically, a per-sandbox
// file lock (shared to read, exclusive to change), and a name index claimed with O_EXCL.
import fs from 'node:fs';
import path from 'node:path';
import { HutchError, errnoCode } from '../errors.js';
import { FileLock, processAlive, removeTree } from '../linux/index.js';
import { crashPoint } from '../faults.js';
import type { SandboxRecord } from './state.js';

const ID_RE = /^[0-9a-f]{16}$/;
const LOCK_TIMEOUT_MS = 30_000;

/**
 * `bytes` random bytes from the kernel, as hex. Read from /dev/urandom rather than node:crypto,
 * whose first load costs a `hutch run` ~2.5 ms for eight bytes.
 */
export function randomHex(bytes: number): string {
  const buf = Buffer.alloc(bytes);
  const fd = fs.openSync('/dev/urandom', 'r');
  try {
    if (fs.readSync(fd, buf, 0, bytes, null) !== bytes) throw new HutchError('EINTERNAL', 'short read from /dev/urandom', { path: '/dev/urandom' });
  } finally {
    fs.closeSync(fd);
  }
  return buf.toString('hex');
}

/** A held lock on one sandbox. */
export type SandboxLock = { release(): void };

/** Sandbox records on disk. */
export class SandboxStore {
  readonly sandboxesDir: string;
  readonly namesDir: string;

  private readonly offload: boolean;

  /** `offload`: remove big dirs off the event loop (EngineOptions.offloadBlockingWork). */
  constructor(readonly root: string, opts: { offload?: boolean } = {}) {
    this.offload = opts.offload === true;
    if (!path.isAbsolute(root)) throw new HutchError('EINVAL', `state root must be an absolute path: ${root}`, { path: root });
    this.sandboxesDir = path.join(root, 'sandboxes');
    this.namesDir = path.join(root, 'names');
  }

  /** The sandbox's private dir. */
  dir(id: string): string { return path.join(this.sandboxesDir, id); }

  /**
   * Makes a new sandbox dir with a fresh id and holds its exclusive lock; writes the first
   * record through `initial` before claiming the name, so a crash never leaves an unnamed claim.
   */
  async allocate(name: string | undefined, initial: (id: string, name: string) => SandboxRecord): Promise<{ record: SandboxRecord; lock: SandboxLock }> {
    this.prepareRoot();
    fs.mkdirSync(this.sandboxesDir, { recursive: true, mode: 0o711 });
    fs.mkdirSync(this.namesDir, { recursive: true, mode: 0o700 });
    const id = randomHex(8);
    const dir = this.dir(id);
    fs.mkdirSync(dir, { mode: 0o711 });
    const lock = await FileLock.acquire(path.join(dir, 'lock'), 'exclusive', { timeoutMs: LOCK_TIMEOUT_MS, id });
    const record = initial(id, name ?? id);
    try {
      this.write(record);
      await this.claimName(record.name, id);
    } catch (e) {
      fs.rmSync(dir, { recursive: true, force: true });
      lock.release();
      throw e;
    }
    return { record, lock };
  }

  /**
   * Makes the root (or checks the one given) before the first sandbox goes in. A sandbox's user
   * namespace reaches its rootfs through the root, so the root must be searchable by others: one
   * made 0700 (`runc --root R list` does that) gets o+x, g+x; a dir above it that is not gets a
   * clear error, as does a root that is not a directory.
   */
  private prepareRoot(): void {
    try {
      fs.mkdirSync(this.root, { recursive: true, mode: 0o711 });
    } catch (e) {
      if (errnoCode(e) !== 'ENOTDIR' && errnoCode(e) !== 'EEXIST') throw e;
    }
    const st = this.rootStat();
    if ((st.mode & 0o011) !== 0o011) fs.chmodSync(this.root, (st.mode & 0o7777) | 0o011);
    for (let dir = path.dirname(this.root); ; dir = path.dirname(dir)) {
      if ((fs.statSync(dir).mode & 0o001) === 0) {
        throw new HutchError('EPERM', `state root ${this.root} is inside ${dir}, which others cannot search (mode ${(fs.statSync(dir).mode & 0o777).toString(8)}): sandboxes could not reach their rootfs; use a root elsewhere (--root) or chmod o+x ${dir}`, { path: dir });
      }
      if (dir === '/') break;
    }
  }

  /** The root's stat; a clear error when it is not a directory. */
  private rootStat(): fs.Stats {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.root);
    } catch (e) {
      if (errnoCode(e) === 'ENOTDIR') throw this.notADir();
      throw e;
    }
    if (!st.isDirectory()) throw this.notADir();
    return st;
  }

  private notADir(): HutchError {
    return new HutchError('EINVAL', `state root ${this.root} is not a directory (--root or $HUTCH_ROOT): give a directory, or a path that does not exist yet`, { path: this.root });
  }

  /**
   * Claims `name` for `id`. The claim is written whole in the sandbox's own dir and hard-linked into
   * names/, so it appears complete or not at all (a kill mid-claim leaves no empty claim, and the
   * link fails for all but one claimer). A claim whose sandbox dir is gone (or an empty one an older
   * hutch left) is stale: it is taken over under the names lock, so two takeovers cannot both win.
   */
  private async claimName(name: string, id: string): Promise<void> {
    const file = path.join(this.namesDir, name);
    const mine = path.join(this.dir(id), 'name-claim');
    fs.writeFileSync(mine, id, { mode: 0o600 });
    try {
      if (this.linkClaim(mine, file)) return;
      const owner = this.readNameClaim(name);
      if (owner !== null && fs.existsSync(this.dir(owner))) throw inUse(name, owner);
      const lock = await FileLock.acquire(path.join(this.namesDir, '.takeover.lock'), 'exclusive', { timeoutMs: LOCK_TIMEOUT_MS, id });
      try {
        // Again under the lock: another claimer may have taken it over (or claimed it fresh) meanwhile.
        if (this.linkClaim(mine, file)) return;
        const now = this.readNameClaim(name);
        if (now !== null && fs.existsSync(this.dir(now))) throw inUse(name, now);
        fs.rmSync(file, { force: true });
        if (this.linkClaim(mine, file)) return;
        const winner = this.readNameClaim(name);
        throw winner !== null ? inUse(name, winner) : new HutchError('EEXIST', `the name "${name}" is being claimed by another hutch`, { path: file });
      } finally {
        lock.release();
      }
    } finally {
      fs.rmSync(mine, { force: true });
    }
  }

  /** Links a written claim into place; false when the name already has one. */
  private linkClaim(mine: string, file: string): boolean {
    try {
      fs.linkSync(mine, file);
      return true;
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
      return false;
    }
  }

  private readNameClaim(name: string): string | null {
    try {
      const id = fs.readFileSync(path.join(this.namesDir, name), 'utf8').trim();
      return ID_RE.test(id) ? id : null;
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return null;
      throw e;
    }
  }

  /**
   * Writes a record atomically: temp file, fsync, rename. Other hutch processes see the old or the
   * new record, never a torn one, whenever this process dies. (The dir is not fsynced: state under
   * /run is runtime state, and on a disk-backed /run each extra fsync costs a `hutch run` ~1-2 ms.)
   */
  write(record: SandboxRecord): void {
    const dir = this.dir(record.id);
    const tmp = path.join(dir, `.state.json.${process.pid}.tmp`);
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(record, null, 1));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path.join(dir, 'state.json'));
  }

  /** The record of `id`, or null when its dir exists without a (readable) state.json. */
  read(id: string): SandboxRecord | null {
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.dir(id), 'state.json'), 'utf8');
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return null;
      throw e;
    }
    try {
      const r = JSON.parse(text) as SandboxRecord;
      if (r.version !== 1 || r.id !== id) return null;
      return upgradeHandle(r);
    } catch {
      return null; // a torn or foreign file: treated like a missing record (the sandbox shows as broken)
    }
  }

  /** Every sandbox id present on disk. */
  ids(): string[] {
    try {
      return fs.readdirSync(this.sandboxesDir).filter((n) => ID_RE.test(n));
    } catch (e) {
      if (errnoCode(e) === 'ENOTDIR') this.rootStat(); // a root that is a file: say so
      if (errnoCode(e) === 'ENOENT') return [];
      throw e;
    }
  }

  /** Resolves an id, a name, or a unique id prefix (4+ characters) to an id. */
  resolve(ref: string): string {
    if (ID_RE.test(ref) && fs.existsSync(this.dir(ref))) return ref;
    if (/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(ref)) {
      const byName = this.readNameClaim(ref);
      if (byName !== null && fs.existsSync(this.dir(byName))) return byName;
      if (/^[0-9a-f]{4,15}$/.test(ref)) {
        const matches = this.ids().filter((i) => i.startsWith(ref));
        if (matches.length === 1) return matches[0]!;
        if (matches.length > 1) throw new HutchError('EINVAL', `"${ref}" matches ${matches.length} sandboxes: give more of the id`);
      }
    }
    throw new HutchError('ENOTFOUND', `no such sandbox: ${ref.slice(0, 100)}`, { id: ref.slice(0, 100) });
  }

  /**
   * Takes the sandbox's lock; ENOTFOUND if the sandbox is gone (or goes while we wait: a remover
   * holding the lock deletes the dir, and then we hold a lock on a file that no longer exists).
   */
  async lock(id: string, mode: 'shared' | 'exclusive', timeoutMs = LOCK_TIMEOUT_MS): Promise<SandboxLock> {
    let lock: FileLock;
    try {
      lock = await FileLock.acquire(path.join(this.dir(id), 'lock'), mode, { timeoutMs, id });
    } catch (e) {
      if (errnoCode(e) === 'ENOENT' || !fs.existsSync(this.dir(id))) throw new HutchError('ENOTFOUND', `no such sandbox: ${id}`, { id });
      throw e;
    }
    if (!fs.existsSync(path.join(this.dir(id), 'lock'))) {
      lock.release();
      throw new HutchError('ENOTFOUND', `no such sandbox: ${id} (removed meanwhile)`, { id });
    }
    return lock;
  }

  /** Takes the lock only if it is free at once. */
  tryLock(id: string, mode: 'shared' | 'exclusive'): SandboxLock | null {
    try {
      return FileLock.tryAcquire(path.join(this.dir(id), 'lock'), mode);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT' || !fs.existsSync(this.dir(id))) return null; // removed meanwhile
      throw e;
    }
  }

  /**
   * Removes a sandbox's dir and its name claim (the caller holds its exclusive lock). The dir is
   * renamed aside first, so the sandbox is gone at once and for good whenever this process dies;
   * its files (a writable layer may hold millions) are then removed (off the event loop with
   * `offload`), and trash
   * that a dead process left is finished here too.
   */
  async remove(id: string, name: string | undefined): Promise<void> {
    if (name !== undefined && this.readNameClaim(name) === id) fs.rmSync(path.join(this.namesDir, name), { force: true });
    const trash = path.join(this.sandboxesDir, `${TRASH_PREFIX}${id}.${process.pid}`);
    try {
      fs.renameSync(this.dir(id), trash);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return;
      throw e;
    }
    crashPoint('delete:renamed');
    if (this.offload) await removeTree(trash);
    else fs.rmSync(trash, { recursive: true, force: true });
    await this.emptyTrash();
  }

  /** Removes what interrupted removals left (`.trash-<id>.<pid>` of a process that is gone). */
  async emptyTrash(): Promise<void> {
    let names: string[];
    try {
      names = fs.readdirSync(this.sandboxesDir);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return;
      throw e;
    }
    for (const n of names) {
      const pid = Number(n.startsWith(TRASH_PREFIX) ? n.slice(n.lastIndexOf('.') + 1) : NaN);
      if (!Number.isInteger(pid) || processAlive(pid)) continue;
      await removeTree(path.join(this.sandboxesDir, n));
    }
  }
}

/** Names of sandbox dirs being removed (never an id: ids() skips them). */
const TRASH_PREFIX = '.trash-';

/**
 * Records written before the platform contract kept the container platform's fields (executor,
 * containerId, cgroupsPath...) flat in the handle: they move into its opaque state.
 */
function upgradeHandle(r: SandboxRecord): SandboxRecord {
  const h = r.handle as (Record<string, unknown> & { platform: string; dir: string }) | undefined;
  if (!h || (typeof h['state'] === 'object' && h['state'] !== null)) return r;
  const { platform, dir, ...state } = h;
  r.handle = { platform, dir, state };
  return r;
}

function inUse(name: string, owner: string): HutchError {
  return new HutchError('EEXIST', `the name "${name}" is already in use by sandbox ${owner}`, { id: owner });
}
