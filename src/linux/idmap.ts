// The host id range sandboxes' user namespaces map to, and shifting a rootfs's ownership into it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HutchError, errnoCode } from '../errors.js';
import { readFileIfExists } from './optional-file.js';
import { assertCleanAbsolute } from './paths.js';

/** Container ids 0..size-1 appear on the host as hostUid+id / hostGid+id. */
export interface IdRange { hostUid: number; hostGid: number; size: number }

/** A user namespace must map the full 16-bit id space: images use ids up to 65534 (nobody). */
export const ID_RANGE_SIZE = 65536;

/**
 * Used when /etc/subuid or /etc/subgid has no entry for `hutch`. 10^9 is far above any real user (< 65536,
 * systemd's dynamic users end at 65519) and above the ranges useradd hands out for podman/docker
 * (SUB_UID_MIN 100000 .. SUB_UID_MAX 600100000), and below 2^31 so tools that treat ids as signed cope.
 */
export const DEFAULT_HOST_ID_BASE = 1_000_000_000;

/** The user whose /etc/subuid and /etc/subgid entries, if any, give hutch its id range. */
export const SUBID_USER = 'hutch';

/** The first usable `hutch` entry of a subid file, or null when it has none; EINVAL when entries are too small. */
export function subidEntry(file: string): { start: number; count: number } | null {
  const text = readFileIfExists(file);
  if (text === null) return null;
  const entries = text.split('\n').map((l) => l.trim().split(':')).filter((f) => f.length === 3 && f[0] === SUBID_USER);
  if (entries.length === 0) return null;
  for (const [, start, count] of entries) {
    const s = Number(start), c = Number(count);
    if (Number.isSafeInteger(s) && Number.isSafeInteger(c) && s > 0 && c >= ID_RANGE_SIZE && s + ID_RANGE_SIZE <= 0xffffffff) return { start: s, count: c };
  }
  throw new HutchError('EINVAL', `${file}: no entry for ${SUBID_USER} with at least ${ID_RANGE_SIZE} ids`, { path: file });
}

/** Where hostIdRange reads the subordinate id entries (tests point it elsewhere). */
export interface SubidFiles { subuid: string; subgid: string }

/** The host id range for sandboxes: the `hutch` entries of /etc/subuid and /etc/subgid, else 10^9 (each independently). */
export function hostIdRange(files: SubidFiles = { subuid: '/etc/subuid', subgid: '/etc/subgid' }): IdRange {
  return {
    hostUid: subidEntry(files.subuid)?.start ?? DEFAULT_HOST_ID_BASE,
    hostGid: subidEntry(files.subgid)?.start ?? DEFAULT_HOST_ID_BASE,
    size: ID_RANGE_SIZE,
  };
}

/** The shifted id, or null when `id` is already in the host range (a hard link seen twice, or a re-run). */
function shiftId(id: number, base: number, size: number, file: string): number | null {
  if (id >= base && id < base + size) return null;
  if (id < size) return base + id;
  throw new HutchError('EINVAL', `${file} is owned by id ${id}, which the ${size}-id user namespace cannot map`, { path: file });
}

/** chown clears set-uid/set-gid bits on files; this puts them back. (File capabilities are lost too: not restored.) */
const SET_ID_BITS = 0o6000;

/** Shifts one entry; returns true if it changed. */
function shiftEntry(file: string, st: fs.Stats, range: IdRange): boolean {
  const uid = shiftId(st.uid, range.hostUid, range.size, file);
  const gid = shiftId(st.gid, range.hostGid, range.size, file);
  if (uid === null && gid === null) return false;
  try {
    fs.lchownSync(file, uid ?? st.uid, gid ?? st.gid);
    if (st.isFile() && (st.mode & SET_ID_BITS) !== 0) fs.chmodSync(file, st.mode & 0o7777);
  } catch (e) {
    throw new HutchError('EINTERNAL', `cannot change the owner of ${file}: ${(e as Error).message}`, { path: file, cause: e });
  }
  return true;
}

/** The walk runs synchronously (3-4x faster than fs.promises here) but yields to the event loop this often. */
const SLICE_MS = 8;

/**
 * Changes the owner of every entry below `dir` (and `dir` itself) from container id u to host id base+u, for a
 * rootfs unpacked as host root that a user-namespaced sandbox will use. Symlinks are changed themselves
 * (lchown), never followed; another filesystem mounted inside is refused. Returns how many entries changed.
 */
export async function shiftOwnership(dir: string, range: IdRange): Promise<number> {
  assertCleanAbsolute(dir, 'shiftOwnership');
  const rootStat = lstatOrThrow(dir);
  if (!rootStat.isDirectory()) throw new HutchError('EINVAL', `shiftOwnership: ${dir} is not a directory`, { path: dir });
  let changed = shiftEntry(dir, rootStat, range) ? 1 : 0;
  const pending = [dir];
  let sliceStart = Date.now();
  for (let d = pending.pop(); d !== undefined; d = pending.pop()) {
    for (const name of readdirOrThrow(d)) {
      const file = path.join(d, name);
      const st = lstatOrThrow(file);
      if (st.dev !== rootStat.dev) {
        throw new HutchError('EINVAL', `shiftOwnership: ${file} is another filesystem mounted inside ${dir}`, { path: file });
      }
      if (shiftEntry(file, st, range)) changed++;
      if (st.isDirectory()) pending.push(file);
    }
    if (Date.now() - sliceStart >= SLICE_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      sliceStart = Date.now();
    }
  }
  return changed;
}

/** readdir that names the path in its error. */
function readdirOrThrow(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (e) {
    throw new HutchError('EINTERNAL', `cannot list ${dir}: ${(e as Error).message}`, { path: dir, cause: e });
  }
}

/** lstat that names the path in its error. */
function lstatOrThrow(file: string): fs.Stats {
  try {
    return fs.lstatSync(file);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new HutchError('ENOTFOUND', `${file} does not exist`, { path: file, cause: e });
    throw new HutchError('EINTERNAL', `cannot stat ${file}: ${(e as Error).message}`, { path: file, cause: e });
  }
}
