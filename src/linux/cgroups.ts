// cgroups v1, v2 and hybrid: where a runc-style cgroupsPath lives on the host, its stats, and its removal.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HutchError, errnoCode } from '../errors.js';
import { readFileIfExists } from './optional-file.js';
import { readMountinfo, type MountInfo } from './mounts.js';
import { isAtOrBelow } from './paths.js';

export type CgroupMode = 'v1' | 'v2' | 'hybrid';

/** Everything hutch touches in cgroupfs must be below this. */
export const CGROUP_ROOT = '/sys/fs/cgroup';

/** The key runc's `cgroup_paths` uses for the v2 (unified) hierarchy. */
export const UNIFIED_KEY = '';

/** One mounted cgroup hierarchy: v1 (one or more controllers, or a named one) or the v2 unified one. */
export interface CgroupHierarchy {
  /** v1: controller names ("cpu", "cpuacct", "name=systemd"); v2: [""]. */
  keys: string[];
  mountPoint: string;
  /** The cgroup that is mounted there ("/" unless in a cgroup namespace or a bind mount). */
  mountRoot: string;
  /** This process's cgroup in the hierarchy, from /proc/self/cgroup. */
  ownCgroup: string;
}

/** The host's cgroup mode and its hierarchies. */
export interface CgroupLayout { mode: CgroupMode; hierarchies: CgroupHierarchy[] }

/**
 * Works out the layout from a mount table, /proc/cgroups and /proc/<pid>/cgroup: v2 when cgroup2 is mounted at
 * /sys/fs/cgroup (or nothing else is), hybrid when v1 controllers sit beside a cgroup2 mount, else v1.
 */
export function parseCgroupLayout(mounts: MountInfo[], procCgroups: string, selfCgroup: string): CgroupLayout {
  const known = new Set(procCgroups.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split('\t')[0]!));
  const own = new Map<string, string>();
  for (const line of selfCgroup.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (m) own.set(m[1] === '0' ? UNIFIED_KEY : m[2]!.split(',').sort().join(','), m[3]!);
  }
  const hierarchies: CgroupHierarchy[] = [];
  const seenDevices = new Set<string>();
  let v2AtRoot = false;
  for (const m of mounts) {
    if ((m.fsType !== 'cgroup' && m.fsType !== 'cgroup2') || !isAtOrBelow(m.mountPoint, CGROUP_ROOT)) continue;
    if (seenDevices.has(m.device)) continue; // the same hierarchy mounted twice
    seenDevices.add(m.device);
    const keys = m.fsType === 'cgroup2' ? [UNIFIED_KEY]
      : m.superOptions.filter((o) => known.has(o) || o.startsWith('name=')).sort();
    if (keys.length === 0) continue;
    if (m.fsType === 'cgroup2' && m.mountPoint === CGROUP_ROOT) v2AtRoot = true;
    hierarchies.push({ keys, mountPoint: m.mountPoint, mountRoot: m.root, ownCgroup: own.get(keys.join(',')) ?? '/' });
  }
  const hasV1 = hierarchies.some((h) => h.keys[0] !== UNIFIED_KEY);
  const hasV2 = hierarchies.some((h) => h.keys[0] === UNIFIED_KEY);
  if (!hasV1 && !hasV2) throw new HutchError('EUNSUPPORTED', `no cgroup filesystem is mounted under ${CGROUP_ROOT}`, { path: CGROUP_ROOT });
  const mode: CgroupMode = v2AtRoot || !hasV1 ? 'v2' : hasV2 ? 'hybrid' : 'v1';
  // In v2 mode ignore stray v1 mounts; runc does too.
  return { mode, hierarchies: mode === 'v2' ? hierarchies.filter((h) => h.keys[0] === UNIFIED_KEY) : hierarchies };
}

let layout: CgroupLayout | undefined;

/** This host's layout, read once per process. */
function cgroupLayout(): CgroupLayout {
  layout ??= parseCgroupLayout(readMountinfo(), fs.readFileSync('/proc/cgroups', 'utf8'), fs.readFileSync('/proc/self/cgroup', 'utf8'));
  return layout;
}

/** The host's cgroup mode: v1, v2 (unified at /sys/fs/cgroup) or hybrid (v1 controllers plus an empty-ish v2 at unified/); cached. */
export function detectCgroupMode(): CgroupMode {
  return cgroupLayout().mode;
}

/** The controllers hutch can limit with: v1 hierarchies' controllers, or v2's cgroup.controllers; plus the unified ones in hybrid. */
export function cgroupControllers(): { v1: string[]; v2: string[] } {
  const { hierarchies } = cgroupLayout();
  const v1 = hierarchies.flatMap((h) => h.keys).filter((k) => k !== UNIFIED_KEY).sort();
  const unified = hierarchies.find((h) => h.keys[0] === UNIFIED_KEY);
  const v2 = unified ? readFileIfExists(path.join(unified.mountPoint, 'cgroup.controllers'))?.trim().split(/\s+/).filter(Boolean) ?? [] : [];
  return { v1, v2 };
}

const PATH_COMPONENT = /^[A-Za-z0-9_.+@-]+$/;

/** Throws EINVAL unless `p` is a runc-style cgroupsPath we accept: `a/b` or `/a/b`, no `..`, no systemd `slice:prefix:name` form. */
function assertCgroupsPath(p: string): void {
  const parts = (p.startsWith('/') ? p.slice(1) : p).split('/');
  const ok = p.length > 0 && p.length < 4096 && parts.every((c) => PATH_COMPONENT.test(c) && c !== '.' && c !== '..');
  if (!ok) {
    const why = p.includes(':') ? ' (the systemd slice:prefix:name form is not supported)' : '';
    throw new HutchError('EINVAL', `bad cgroupsPath ${JSON.stringify(p)}${why}`, { path: p });
  }
}

/** The host dir of `cgroupsPath` in one hierarchy; relative paths go below this process's own cgroup, as runc does. */
function hierarchyDir(h: CgroupHierarchy, cgroupsPath: string, allowRoot = false): string {
  let base = '/';
  if (!cgroupsPath.startsWith('/')) {
    const root = h.mountRoot === '/' ? '' : h.mountRoot;
    base = h.ownCgroup.startsWith(root + '/') ? h.ownCgroup.slice(root.length) : '/';
  }
  const dir = path.join(h.mountPoint, base, cgroupsPath);
  // Never the hierarchy's root cgroup (except to list it), never outside cgroupfs.
  if ((dir === h.mountPoint && !allowRoot) || !isAtOrBelow(dir, h.mountPoint) || !isAtOrBelow(dir, CGROUP_ROOT)) {
    throw new HutchError('EPERM', `cgroupsPath ${cgroupsPath} resolves to ${dir}, outside ${h.mountPoint}`, { path: cgroupsPath });
  }
  return dir;
}

/**
 * The host dirs of a runc-style cgroupsPath, keyed like runc's `cgroup_paths`: by v1 controller ("memory",
 * "name=systemd"; co-mounted controllers share a dir) and "" for the v2 dir (v2, and hybrid's unified/).
 * A relative path (`hutch/abc`) is below this process's own cgroup, as runc resolves it: pass an absolute one
 * (`/hutch/abc`) when another process (a later `hutch` call cleaning orphans) must find the same dirs.
 */
export function cgroupDirs(cgroupsPath: string): Record<string, string> {
  return cgroupDirsIn(cgroupLayout(), cgroupsPath);
}

/** cgroupDirs for a given layout (see parseCgroupLayout). */
export function cgroupDirsIn(l: CgroupLayout, cgroupsPath: string): Record<string, string> {
  assertCgroupsPath(cgroupsPath);
  const dirs: Record<string, string> = {};
  for (const h of l.hierarchies) {
    const dir = hierarchyDir(h, cgroupsPath);
    for (const k of h.keys) dirs[k] = dir;
  }
  return dirs;
}

/** Each distinct dir of cgroupDirs once. */
function distinctDirs(cgroupsPath: string): string[] {
  return [...new Set(Object.values(cgroupDirs(cgroupsPath)))];
}


/** A file's text; ENOTFOUND when the cgroup is gone, EUNSUPPORTED when only the file is (controller not enabled). */
function readRequired(file: string, cgroupsPath: string): string {
  const text = readFileIfExists(file);
  if (text !== null) return text;
  if (!fs.existsSync(path.dirname(file))) throw new HutchError('ENOTFOUND', `cgroup ${cgroupsPath} does not exist`, { path: cgroupsPath });
  throw new HutchError('EUNSUPPORTED', `cgroup ${cgroupsPath}: no ${path.basename(file)} (controller not enabled?)`, { path: file });
}

/** Values at or above this are "no limit" (v1 writes PAGE_COUNTER_MAX pages as 9223372036854771712). */
const UNLIMITED = 1n << 62n;

/** Parses a cgroup number; "max" and v1's huge "unlimited" values become null. */
function parseLimit(text: string, file: string): number | null {
  const t = text.trim();
  if (t === 'max') return null;
  if (!/^\d+$/.test(t)) throw new HutchError('EINTERNAL', `unexpected value ${JSON.stringify(t)} in ${file}`, { path: file });
  return BigInt(t) >= UNLIMITED ? null : Number(t);
}

/** Parses a plain counter. */
function parseCount(text: string, file: string): number {
  const n = parseLimit(text, file);
  if (n === null) throw new HutchError('EINTERNAL', `unexpected value ${JSON.stringify(text.trim())} in ${file}`, { path: file });
  return n;
}

/** The value of `key` in a flat-keyed file like memory.events or cpu.stat, or undefined. */
function keyedValue(text: string | null, key: string): number | undefined {
  const m = text === null ? null : new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Resource usage of one cgroup; optional fields are absent when the kernel does not provide them. */
export interface CgroupStats {
  cpuUsageNs: number;
  memoryBytes: number;
  memoryLimitBytes: number | null;
  /** Peak memory: v1 memory.max_usage_in_bytes, v2 memory.peak (kernel 5.19+). */
  memoryMaxBytes?: number;
  pids: number;
  pidsLimit: number | null;
  oomKills?: number;
}

/** The dir of `key`'s controller, or EUNSUPPORTED when that controller is not mounted. */
function controllerDir(dirs: Record<string, string>, key: string, cgroupsPath: string): string {
  const dir = dirs[key];
  if (dir === undefined) throw new HutchError('EUNSUPPORTED', `the ${key} cgroup controller is not mounted`, { path: cgroupsPath });
  return dir;
}

type FileAt = (key: string, file: string) => string;

/** v2: cpu.stat usage_usec, memory.current/max/peak, memory.events oom_kill. */
function readV2Stats(at: FileAt, req: (file: string) => string): CgroupStats {
  const cpuStat = at(UNIFIED_KEY, 'cpu.stat');
  const usec = keyedValue(req(cpuStat), 'usage_usec');
  if (usec === undefined) throw new HutchError('EINTERNAL', `no usage_usec in ${cpuStat}`, { path: cpuStat });
  const current = at(UNIFIED_KEY, 'memory.current'), max = at(UNIFIED_KEY, 'memory.max');
  const peak = at(UNIFIED_KEY, 'memory.peak');
  const s: CgroupStats = {
    cpuUsageNs: usec * 1000,
    memoryBytes: parseCount(req(current), current),
    memoryLimitBytes: parseLimit(req(max), max),
    pids: 0, pidsLimit: null,
  };
  const peakText = readFileIfExists(peak); // kernel 5.19+
  if (peakText !== null) s.memoryMaxBytes = parseCount(peakText, peak);
  const oom = keyedValue(readFileIfExists(at(UNIFIED_KEY, 'memory.events')), 'oom_kill');
  if (oom !== undefined) s.oomKills = oom;
  return s;
}

/** v1: cpuacct.usage, memory.usage_in_bytes/limit_in_bytes/max_usage_in_bytes, memory.oom_control oom_kill. */
function readV1Stats(at: FileAt, req: (file: string) => string): CgroupStats {
  const usage = at('cpuacct', 'cpuacct.usage'), mem = at('memory', 'memory.usage_in_bytes');
  const limit = at('memory', 'memory.limit_in_bytes'), peak = at('memory', 'memory.max_usage_in_bytes');
  const s: CgroupStats = {
    cpuUsageNs: parseCount(req(usage), usage),
    memoryBytes: parseCount(req(mem), mem),
    memoryLimitBytes: parseLimit(req(limit), limit),
    memoryMaxBytes: parseCount(req(peak), peak),
    pids: 0, pidsLimit: null,
  };
  // oom_kill appeared in memory.oom_control with kernel 4.13.
  const oom = keyedValue(readFileIfExists(at('memory', 'memory.oom_control')), 'oom_kill');
  if (oom !== undefined) s.oomKills = oom;
  return s;
}

/** Reads cpu, memory and pids usage and limits of a cgroup, from v1 controllers (v1, hybrid) or the v2 dir. */
export function readCgroupStats(cgroupsPath: string): CgroupStats {
  const dirs = cgroupDirs(cgroupsPath);
  const at: FileAt = (key, file) => path.join(controllerDir(dirs, key, cgroupsPath), file);
  const req = (file: string) => readRequired(file, cgroupsPath);
  const v2 = detectCgroupMode() === 'v2';
  const stats = v2 ? readV2Stats(at, req) : readV1Stats(at, req);
  const current = at(v2 ? UNIFIED_KEY : 'pids', 'pids.current'), max = at(v2 ? UNIFIED_KEY : 'pids', 'pids.max');
  stats.pids = parseCount(req(current), current);
  stats.pidsLimit = parseLimit(req(max), max);
  return stats;
}

/** Names of the cgroups directly below `dir`; [] when it does not exist. */
function childCgroups(dir: string): string[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw new HutchError('EINTERNAL', `cannot list ${dir}: ${(e as Error).message}`, { path: dir, cause: e });
  }
}

/** `dir` and every cgroup below it, parents before children; [] when it does not exist. */
function cgroupTree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return [dir, ...childCgroups(dir).flatMap((name) => cgroupTree(path.join(dir, name)))];
}

/** Pids listed in cgroup.procs of the given dirs (and the cgroups below them), without duplicates. */
function pidsInTrees(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const dir of dirs) {
    for (const cg of cgroupTree(dir)) {
      for (const line of (readFileIfExists(path.join(cg, 'cgroup.procs')) ?? '').split('\n')) {
        const pid = Number(line);
        if (line !== '' && pid > 0) pids.add(pid); // 0: a process outside our pid namespace
      }
    }
  }
  return [...pids].sort((a, b) => a - b);
}

/** The pids of the processes in a cgroup and the cgroups below it, in every hierarchy; [] when it does not exist. */
export function cgroupPids(cgroupsPath: string): number[] {
  return pidsInTrees(distinctDirs(cgroupsPath));
}

export type FreezeState = 'thawed' | 'freezing' | 'frozen';

/** Whether a cgroup is frozen: from the v1 freezer when mounted (runc uses it in hybrid), else v2 cgroup.freeze/events. */
export function freezeState(cgroupsPath: string): FreezeState {
  const dirs = cgroupDirs(cgroupsPath);
  const freezer = dirs['freezer'];
  if (freezer !== undefined) {
    const file = path.join(freezer, 'freezer.state');
    const state = readRequired(file, cgroupsPath).trim();
    if (state === 'THAWED' || state === 'FREEZING' || state === 'FROZEN') return state.toLowerCase() as FreezeState;
    throw new HutchError('EINTERNAL', `unexpected freezer state ${JSON.stringify(state)} in ${file}`, { path: file });
  }
  const unified = controllerDir(dirs, UNIFIED_KEY, cgroupsPath);
  if (readRequired(path.join(unified, 'cgroup.freeze'), cgroupsPath).trim() === '0') return 'thawed';
  return keyedValue(readRequired(path.join(unified, 'cgroup.events'), cgroupsPath), 'frozen') === 1 ? 'frozen' : 'freezing';
}

/** Writes `value` to a cgroup control file; false when the cgroup is gone. */
function writeControl(file: string, value: string): boolean {
  try {
    fs.writeFileSync(file, value);
    return true;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return false;
    throw new HutchError('EINTERNAL', `cannot write ${value} to ${file}: ${(e as Error).message}`, { path: file, cause: e });
  }
}

/** SIGKILLs `pid`; a process that already exited is fine. */
function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (e) {
    if (errnoCode(e) !== 'ESRCH') throw new HutchError('EINTERNAL', `cannot kill pid ${pid}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * One round of killing: cgroup.kill where the kernel has it (v2 dirs, 5.14+: atomic, no fork race); otherwise
 * freeze the v1 freezer cgroup so no pid can exit and be reused or fork while we signal, SIGKILL, then thaw
 * (a frozen v1 task does not die until thawed).
 */
async function killRound(dirs: Record<string, string>, all: string[]): Promise<void> {
  const unified = dirs[UNIFIED_KEY];
  if (unified !== undefined && fs.existsSync(path.join(unified, 'cgroup.kill'))) writeControl(path.join(unified, 'cgroup.kill'), '1');
  const freezer = dirs['freezer'];
  const stateFile = freezer === undefined ? undefined : path.join(freezer, 'freezer.state');
  if (stateFile !== undefined && writeControl(stateFile, 'FROZEN')) {
    for (let i = 0; i < 20 && readFileIfExists(stateFile)?.trim() === 'FREEZING'; i++) await sleep(5);
  }
  for (const pid of pidsInTrees(all)) killPid(pid);
  if (freezer !== undefined) for (const cg of cgroupTree(freezer)) writeControl(path.join(cg, 'freezer.state'), 'THAWED');
}

/** Options for removeCgroup: how long to wait for the processes to die and the dirs to go. */
export interface RemoveCgroupOptions { timeoutMs?: number }

/**
 * Kills every process left in a cgroup (SIGKILL, waiting for them to go, bounded), then removes its dir in
 * every hierarchy, sub-cgroups first. Idempotent: a cgroup that does not exist is already removed.
 */
export async function removeCgroup(cgroupsPath: string, opts: RemoveCgroupOptions = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  const dirs = cgroupDirs(cgroupsPath);
  const all = [...new Set(Object.values(dirs))];
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    const left = pidsInTrees(all);
    if (left.length === 0) break;
    if (Date.now() > deadline) {
      throw new HutchError('ETIMEDOUT', `cgroup ${cgroupsPath}: processes ${left.join(' ')} did not die`, { path: cgroupsPath });
    }
    await killRound(dirs, all);
    await sleep(delay);
  }
  for (const dir of all) {
    for (const cg of cgroupTree(dir).reverse()) {
      for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
        try {
          fs.rmdirSync(cg);
          break;
        } catch (e) {
          const code = errnoCode(e);
          if (code === 'ENOENT') break;
          // EBUSY: the last exiting task has not left the cgroup yet.
          if (code !== 'EBUSY' || Date.now() > deadline) {
            throw new HutchError(code === 'EBUSY' ? 'ETIMEDOUT' : 'EINTERNAL', `cannot remove cgroup dir ${cg}: ${(e as Error).message}`, { path: cg, cause: e });
          }
          await sleep(delay);
        }
      }
    }
  }
}

/**
 * Names of the cgroups directly below `parentPath` in any hierarchy: sandboxes, live or orphaned. `parentPath`
 * is a cgroupsPath like `/hutch`, or `/` for the top level (where `/hutch-<id>` paths live).
 */
export function listCgroupChildren(parentPath: string): string[] {
  if (parentPath !== '/') assertCgroupsPath(parentPath);
  const dirs = new Set(cgroupLayout().hierarchies.map((h) => hierarchyDir(h, parentPath, true)));
  return [...new Set([...dirs].flatMap(childCgroups))].sort();
}
