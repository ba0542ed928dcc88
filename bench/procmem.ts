// Memory figures from /proc: PSS of process trees (smaps_rollup), the process table, and /proc/meminfo.
import fs from 'node:fs';
import path from 'node:path';
import { cgroupDirs } from '../src/linux/index.js';

/** The smaps_rollup fields the memory benchmark reports, in bytes. */
export interface ProcMem { rss: number; pss: number; pssAnon: number; pssFile: number; uss: number }

/** A zero ProcMem to sum into. */
export function zeroMem(): ProcMem {
  return { rss: 0, pss: 0, pssAnon: 0, pssFile: 0, uss: 0 };
}

/** Adds `b` into `a`. */
export function addMem(a: ProcMem, b: ProcMem): void {
  a.rss += b.rss; a.pss += b.pss; a.pssAnon += b.pssAnon; a.pssFile += b.pssFile; a.uss += b.uss;
}

/** One process's memory from /proc/PID/smaps_rollup; null when it is gone. */
export function procMem(pid: number): ProcMem | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {
    return null; // exited meanwhile
  }
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { rss: kb('Rss'), pss: kb('Pss'), pssAnon: kb('Pss_Anon'), pssFile: kb('Pss_File'), uss: kb('Private_Clean') + kb('Private_Dirty') };
}

/** One row of the process table. */
export interface ProcEntry { pid: number; ppid: number; comm: string; cmdline: string }

/** Every process on the machine (those that vanish while we read are skipped). */
export function processTable(): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      // comm may hold spaces and parentheses: fields resume after the last ')'.
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      out.push({ pid: Number(name), ppid, comm, cmdline });
    } catch {
      continue; // exited while we read it
    }
  }
  return out;
}

/** `pid` and all its descendants, from a process table. */
export function treeOf(pid: number, table: ProcEntry[]): ProcEntry[] {
  const children = new Map<number, ProcEntry[]>();
  for (const p of table) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const self = table.find((p) => p.pid === pid);
  const out: ProcEntry[] = self ? [self] : [];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!.pid) ?? []));
  return out;
}

/** Summed memory of a set of processes. */
export function memOf(pids: number[]): ProcMem {
  const total = zeroMem();
  for (const pid of pids) {
    const m = procMem(pid);
    if (m) addMem(total, m);
  }
  return total;
}

/** /proc/meminfo in bytes. */
export function meminfo(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of fs.readFileSync('/proc/meminfo', 'utf8').split('\n')) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)( kB)?/.exec(line);
    if (m) out[m[1]!] = Number(m[2]) * (m[3] ? 1024 : 1);
  }
  return out;
}

/** The meminfo lines that show kernel-side and system-wide cost, as deltas between two readings. */
export const MEMINFO_KEYS = ['MemAvailable', 'AnonPages', 'Shmem', 'Slab', 'SUnreclaim', 'KernelStack', 'PageTables', 'Cached'];

/** A cgroup's v1 memory breakdown (hybrid/v1 hosts) or v2 memory.stat; absent figures are left out. */
export function cgroupMemory(cgroupsPath: string): { usage: number; rss?: number; cache?: number; kernel?: number } {
  const dirs = cgroupDirs(cgroupsPath);
  const v1 = dirs['memory'];
  const read = (f: string) => fs.readFileSync(f, 'utf8');
  const stat = (text: string, key: string) => {
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  if (v1 !== undefined) {
    const text = read(path.join(v1, 'memory.stat'));
    const out: { usage: number; rss?: number; cache?: number; kernel?: number } = { usage: Number(read(path.join(v1, 'memory.usage_in_bytes'))) };
    const rss = stat(text, 'total_rss'), cache = stat(text, 'total_cache');
    if (rss !== undefined) out.rss = rss;
    if (cache !== undefined) out.cache = cache;
    try {
      out.kernel = Number(read(path.join(v1, 'memory.kmem.usage_in_bytes')));
    } catch {
      // kmem accounting files are gone on newer kernels (v1 charges kernel memory into usage)
    }
    return out;
  }
  const dir = dirs[''];
  if (dir === undefined) throw new Error(`no memory cgroup for ${cgroupsPath}`);
  const text = read(path.join(dir, 'memory.stat'));
  const out: { usage: number; rss?: number; cache?: number; kernel?: number } = { usage: Number(read(path.join(dir, 'memory.current'))) };
  const anon = stat(text, 'anon'), file = stat(text, 'file'), kernel = stat(text, 'kernel');
  if (anon !== undefined) out.rss = anon;
  if (file !== undefined) out.cache = file;
  if (kernel !== undefined) out.kernel = kernel;
  return out;
}

/** Bytes as MiB with one decimal. */
export function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}
