// OOM kills of a cgroup: counted from its memory controller (v2 memory.events, v1 memory.oom_control),
// and watched while a process that removes the cgroup when it ends (`runc run`) runs in it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, HutchError } from '../errors.js';
import { cgroupDirs, detectCgroupMode, UNIFIED_KEY } from './cgroups.js';
import { EFD_CLOEXEC, eventfd } from './ffi.js';
import { readFileIfExists } from './optional-file.js';

/** The memory controller's dir of a cgroup: v1's memory hierarchy (v1, hybrid) or the v2 dir. */
function memoryDir(cgroupsPath: string): { dir: string; v2: boolean } | null {
  const dirs = cgroupDirs(cgroupsPath);
  if (detectCgroupMode() === 'v2') return dirs[UNIFIED_KEY] === undefined ? null : { dir: dirs[UNIFIED_KEY], v2: true };
  return dirs['memory'] === undefined ? null : { dir: dirs['memory'], v2: false };
}

function counter(text: string | null, key: string): number | null {
  const m = text === null ? null : new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

/**
 * How many processes of the cgroup the OOM killer has killed (v2 memory.events oom_kill; v1
 * memory.oom_control oom_kill, kernel 4.13+); null when the cgroup, its memory controller or the
 * counter is not there.
 */
export function readOomKills(cgroupsPath: string): number | null {
  const mem = memoryDir(cgroupsPath);
  if (mem === null) return null;
  return counter(readFileIfExists(path.join(mem.dir, mem.v2 ? 'memory.events' : 'memory.oom_control')), 'oom_kill');
}

/** A watch on a cgroup's OOM events; `seen` once one happened. */
export interface OomWatch {
  readonly seen: boolean;
  /** Stops watching (the cgroup may be gone by then). */
  close(): void;
}

/**
 * Makes the memory dir of `cgroupsPath` (the executor takes it over) and watches it for OOM events
 * until closed, so that an OOM kill is known after the executor has removed the cgroup. v2: inotify
 * on memory.events; v1: an eventfd on memory.oom_control (cgroup.event_control). Null when the
 * host has no memory controller for it.
 */
export function watchOom(cgroupsPath: string): OomWatch | null {
  const mem = memoryDir(cgroupsPath);
  if (mem === null) return null;
  try {
    fs.mkdirSync(mem.dir, { recursive: true });
  } catch (e) {
    throw new HutchError('EINTERNAL', `cannot make cgroup dir ${mem.dir}: ${(e as Error).message}`, { path: mem.dir, cause: e });
  }
  return mem.v2 ? watchV2(mem.dir) : watchV1(mem.dir);
}

function watchV2(dir: string): OomWatch | null {
  const file = path.join(dir, 'memory.events');
  if (!fs.existsSync(file)) return null; // memory not enabled in the parent's subtree_control
  let seen = false;
  const look = () => {
    const text = readFileIfExists(file);
    if ((counter(text, 'oom') ?? 0) > 0 || (counter(text, 'oom_kill') ?? 0) > 0) seen = true;
  };
  // The kernel notifies a change of memory.events (cgroup_file_notify): no polling.
  const watcher = fs.watch(file, { persistent: false }, look);
  watcher.on('error', () => undefined); // the cgroup went away: nothing more to see
  look();
  return { get seen() { return seen; }, close: () => watcher.close() };
}

/**
 * v1: the kernel signals the eventfd on each OOM of the cgroup, and once more when the cgroup is
 * removed; a notice that arrives while the dir still exists is an OOM. The blocking read waits on
 * a thread of libuv's pool; close() wakes it by writing to the eventfd itself.
 */
/** What close() adds to the eventfd's counter: far above any count of notices. */
const CLOSE_MARK = 1n << 40n;

function watchV1(dir: string): OomWatch | null {
  const efd = eventfd(EFD_CLOEXEC);
  let ofd: number | undefined;
  try {
    ofd = fs.openSync(path.join(dir, 'memory.oom_control'), 'r');
    fs.writeFileSync(path.join(dir, 'cgroup.event_control'), `${efd} ${ofd}`);
  } catch (e) {
    fs.closeSync(efd);
    if (errnoCode(e) === 'ENOENT') return null;
    throw new HutchError('EINTERNAL', `cannot watch ${dir} for OOM: ${(e as Error).message}`, { path: dir, cause: e });
  } finally {
    if (ofd !== undefined) fs.closeSync(ofd);
  }
  let seen = false, closing = false, reading = true;
  const buf = Buffer.alloc(8);
  fs.read(efd, buf, 0, 8, null, (err, n) => {
    reading = false;
    if (!err && n === 8) {
      const value = buf.readBigUInt64LE();
      const notices = value >= CLOSE_MARK ? value - CLOSE_MARK : value;
      if (notices >= 1n && (fs.existsSync(dir) || notices >= 2n)) seen = true;
    }
    fs.closeSync(efd);
  });
  return {
    get seen() { return seen; },
    close: () => {
      if (closing) return;
      closing = true;
      if (reading) {
        const mark = Buffer.alloc(8);
        mark.writeBigUInt64LE(CLOSE_MARK);
        fs.writeSync(efd, mark);
      }
    },
  };
}
