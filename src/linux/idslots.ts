// Private host id ranges ("slots"), one per sandbox that asks for one: slot n >= 1 is the 65536 ids
// from the shared range's base + n * 65536 (slot 0 is the shared range itself, never handed out).
// A slot is claimed by creating its file with O_EXCL in a slots dir, holding who owns it; claims and
// releases take a lock file there, and a claim first reclaims slots whose owner's dir is gone (a crash).
import fs from 'node:fs';
import path from 'node:path';
import { HutchError, errnoCode } from '../errors.js';
import { readFileIfExists } from './optional-file.js';
import { FileLock } from './filelock.js';
import { DEFAULT_HOST_ID_BASE, ID_RANGE_SIZE, hostIdRange, subidEntry, type IdRange, type SubidFiles } from './idmap.js';

/** Who holds a slot: a sandbox id, and its dir (the slot is stale once that dir is gone). */
export interface IdSlotOwner { id: string; dir: string }

/** A claimed slot and the host ids it stands for. */
export interface IdSlot { slot: number; range: IdRange }

const DEFAULT_SUBID_FILES: SubidFiles = { subuid: '/etc/subuid', subgid: '/etc/subgid' };
const LOCK_NAME = 'lock';
const LOCK_TIMEOUT_MS = 30_000;
/** Ids stay below 2^31 without a subid entry: some tools treat ids as signed. */
const ID_LIMIT = 2 ** 31;

/** One past the highest valid id: (uid_t)-1 is no id (the kernel refuses it in a mapping). */
const ID_END = 0xffffffff;

/** The highest slot one side (uids or gids) has room for: within its entry, and below 2^32 - 1. */
function maxSlotOf(file: string): number {
  const entry = subidEntry(file);
  const count = entry ? Math.min(entry.count, ID_END - entry.start) : ID_LIMIT - DEFAULT_HOST_ID_BASE;
  return Math.floor(count / ID_RANGE_SIZE) - 1;
}

/** The highest slot number: bounded by the `hutch` subid entries' counts, else by 2^31. */
export function maxIdSlot(files: SubidFiles = DEFAULT_SUBID_FILES): number {
  return Math.min(maxSlotOf(files.subuid), maxSlotOf(files.subgid));
}

/** The host ids of slot `slot`. */
export function idSlotRange(slot: number, files: SubidFiles = DEFAULT_SUBID_FILES): IdRange {
  const base = hostIdRange(files);
  return { hostUid: base.hostUid + slot * ID_RANGE_SIZE, hostGid: base.hostGid + slot * ID_RANGE_SIZE, size: ID_RANGE_SIZE };
}

/** The slots in use in `slotsDir` and their owners (null when a slot file is unreadable: a claim cut short). */
export function idSlotsInUse(slotsDir: string): Map<number, IdSlotOwner | null> {
  const out = new Map<number, IdSlotOwner | null>();
  let names: string[];
  try {
    names = fs.readdirSync(slotsDir);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return out;
    throw new HutchError('EINTERNAL', `cannot list ${slotsDir}: ${(e as Error).message}`, { path: slotsDir, cause: e });
  }
  for (const name of names) {
    if (!/^[1-9]\d*$/.test(name)) continue;
    out.set(Number(name), readOwner(path.join(slotsDir, name)));
  }
  return out;
}

/** The owner written in a slot file; null when it is empty or torn. */
function readOwner(file: string): IdSlotOwner | null {
  const text = readFileIfExists(file);
  if (text === null) return null;
  try {
    const o = JSON.parse(text) as Partial<IdSlotOwner>;
    return typeof o.id === 'string' && typeof o.dir === 'string' ? { id: o.id, dir: o.dir } : null;
  } catch {
    return null; // torn by a crash mid-write (the writer held the lock, so it is dead): stale
  }
}

/**
 * Makes the slots dir (0700) or checks the one there: a real dir of this user that no one else can
 * write. Anyone who could remove a slot file there could have one range handed to two sandboxes.
 */
function ensureSlotsDir(slotsDir: string): void {
  fs.mkdirSync(slotsDir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(slotsDir);
  const uid = process.getuid?.() ?? 0;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    const what = st.isSymbolicLink() ? 'a symlink' : !st.isDirectory() ? 'not a directory' : `owned by uid ${st.uid} with mode ${(st.mode & 0o7777).toString(8)}`;
    throw new HutchError('EPERM', `${slotsDir} is ${what}: id slots need a directory of uid ${uid} that no one else can write; refusing`, { path: slotsDir });
  }
}

/** Runs `fn` holding the slots dir's lock (made on first use). */
async function withSlotsLock<T>(slotsDir: string, fn: () => T): Promise<T> {
  ensureSlotsDir(slotsDir);
  const lock = await FileLock.acquire(path.join(slotsDir, LOCK_NAME), 'exclusive', { timeoutMs: LOCK_TIMEOUT_MS });
  try {
    return fn();
  } finally {
    lock.release();
  }
}

/** Removes a slot file; gone already is fine. */
function removeSlotFile(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw new HutchError('EINTERNAL', `cannot remove ${file}: ${(e as Error).message}`, { path: file, cause: e });
  }
}

/**
 * Claims the lowest free slot for `owner`, after reclaiming the slots of owners whose dir is gone.
 * ESTATE when every slot is taken; EUNSUPPORTED when the subid allocation has room for none.
 */
export async function claimIdSlot(slotsDir: string, owner: IdSlotOwner, files: SubidFiles = DEFAULT_SUBID_FILES): Promise<IdSlot> {
  const max = maxIdSlot(files);
  if (max < 1) {
    throw new HutchError('EUNSUPPORTED', `the ${files.subuid} or ${files.subgid} entry of hutch has room for no private id range: it needs at least ${2 * ID_RANGE_SIZE} ids`);
  }
  const slot = await withSlotsLock(slotsDir, () => {
    const used = idSlotsInUse(slotsDir);
    for (const [n, o] of used) {
      if (o === null || !fs.existsSync(o.dir)) {
        removeSlotFile(path.join(slotsDir, String(n)));
        used.delete(n);
      }
    }
    for (let n = 1; n <= max; n++) {
      if (used.has(n)) continue;
      const file = path.join(slotsDir, String(n));
      let fd: number;
      try {
        fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
      } catch (e) {
        if (errnoCode(e) === 'EEXIST') continue; // made by something that does not take the lock
        throw new HutchError('EINTERNAL', `cannot create ${file}: ${(e as Error).message}`, { path: file, cause: e });
      }
      try {
        fs.writeSync(fd, JSON.stringify(owner));
      } finally {
        fs.closeSync(fd);
      }
      return n;
    }
    throw new HutchError('ESTATE', `no free private id range: all ${max} are in use (slot files in ${slotsDir})`, { id: owner.id, path: slotsDir });
  });
  return { slot, range: idSlotRange(slot, files) };
}

/** Frees slot `slot` if `ownerId` holds it; a slot already free, or someone else's, is left as it is. */
export async function releaseIdSlot(slotsDir: string, slot: number, ownerId: string): Promise<void> {
  if (!fs.existsSync(slotsDir)) return;
  await withSlotsLock(slotsDir, () => {
    const file = path.join(slotsDir, String(slot));
    const owner = readOwner(file);
    if (owner !== null && owner.id === ownerId) removeSlotFile(file);
  });
}

/** Frees every slot `owner` (the same id and dir) holds: for a sandbox whose record never got its slot number. */
export async function releaseIdSlotsOf(slotsDir: string, owner: IdSlotOwner): Promise<number> {
  if (!fs.existsSync(slotsDir)) return 0;
  return withSlotsLock(slotsDir, () => {
    let freed = 0;
    for (const [n, o] of idSlotsInUse(slotsDir)) {
      if (o === null || o.id !== owner.id || o.dir !== owner.dir) continue;
      removeSlotFile(path.join(slotsDir, String(n)));
      freed++;
    }
    return freed;
  });
}
