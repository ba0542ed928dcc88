// What the agent sees of the sandbox's processes, through /proc, and signal delivery to them.
// As pid 1 of its own pid namespace the sandbox is all of /proc; when the agent is not pid 1 (tests,
// or a host-side run) the sandbox is the agent's own subtree, so it never reaches outside processes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { errnoCode, HutchError } from '../errors.js';
import { MAX_PS_ENTRIES, type ProcessInfo, type SignalTarget, type StatsResult } from './protocol.js';

/** True when the agent is the init of its pid namespace. */
export const isInit = (): boolean => process.pid === 1;

/** Parsed fields of /proc/PID/stat. */
export interface ProcStat { pid: number; comm: string; state: string; ppid: number; pgid: number }

/** True for errors that mean the process exited while we were reading it. */
function vanished(e: unknown): boolean {
  const c = errnoCode(e);
  return c === 'ENOENT' || c === 'ESRCH';
}

/** Reads /proc/PID/stat; null when the process is gone. */
export function readProcStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (e) {
    if (vanished(e)) return null;
    throw e;
  }
  // comm may itself contain spaces and ')', so split at the last ')'.
  const close = text.lastIndexOf(')');
  const rest = text.slice(close + 2).split(' ');
  return {
    pid, comm: text.slice(text.indexOf('(') + 1, close), state: rest[0] ?? '?',
    ppid: Number(rest[1]), pgid: Number(rest[2]),
  };
}

/** Every numeric entry of /proc. */
function allPids(): number[] {
  return fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
}

/** Stats of the sandbox's processes (the agent included), by pid. */
export function sandboxProcesses(): Map<number, ProcStat> {
  const stats = new Map<number, ProcStat>();
  for (const pid of allPids()) {
    const s = readProcStat(pid);
    if (s) stats.set(pid, s);
  }
  if (isInit()) return stats;
  const children = new Map<number, number[]>();
  for (const s of stats.values()) {
    const list = children.get(s.ppid);
    if (list) list.push(s.pid); else children.set(s.ppid, [s.pid]);
  }
  const mine = new Map<number, ProcStat>();
  const todo = [process.pid];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    const s = stats.get(pid);
    if (!s || mine.has(pid)) continue;
    mine.set(pid, s);
    todo.push(...(children.get(pid) ?? []));
  }
  return mine;
}

/** Zombie children of the agent (state Z, ppid = agent). */
export function zombieChildren(): number[] {
  const out: number[] = [];
  for (const pid of allPids()) {
    const s = readProcStat(pid);
    if (s && s.ppid === process.pid && s.state === 'Z') out.push(pid);
  }
  return out;
}

const signalNumbers = os.constants.signals as Record<string, number>;
const signalNames = new Map<number, string>(Object.entries(signalNumbers).map(([n, v]) => [v, n]));

/** A signal name ('SIGTERM', 'TERM') or number (1-64) as a number; EINVAL if unknown. */
export function signalNumber(sig: string | number): number {
  if (typeof sig === 'number') {
    if (Number.isInteger(sig) && sig >= 1 && sig <= 64) return sig;
  } else {
    const n = signalNumbers[sig.startsWith('SIG') ? sig : `SIG${sig}`];
    if (n !== undefined) return n;
  }
  throw new HutchError('EINVAL', `unknown signal ${String(sig).slice(0, 20)}`);
}

/** The name of a signal number ('SIGKILL'), or 'SIG<n>' for one without a name. */
export function signalName(n: number): string {
  return signalNames.get(n) ?? `SIG${n}`;
}

/** Sends `sig` to one process; false when it no longer exists. */
function killOne(pid: number, sig: number): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch (e) {
    if (errnoCode(e) === 'ESRCH') return false;
    throw new HutchError('EPERM', `cannot signal ${pid}: ${(e as Error).message}`, { id: String(pid), cause: e });
  }
}

/** Sends `sig` to every sandbox process except the agent; returns how many there were. */
export function signalAll(sig: number): number {
  const others = [...sandboxProcesses().keys()].filter((p) => p !== process.pid);
  if (isInit()) {
    // kill(-1) from pid 1 reaches every other process of the namespace, including ones we cannot see yet.
    if (others.length > 0) killOne(-1, sig);
    return others.length;
  }
  let n = 0;
  for (const pid of others) if (killOne(pid, sig)) n++;
  return n;
}

/** Delivers a signal to a process, a process group, or all; returns how many processes it reached. */
export function deliverSignal(sig: number, target: SignalTarget): number {
  if ('all' in target) return signalAll(sig);
  const procs = sandboxProcesses();
  if ('pid' in target) {
    const id = String(target.pid);
    if (target.pid === process.pid) throw new HutchError('EINVAL', 'refusing to signal the agent itself', { id });
    if (!procs.has(target.pid)) throw new HutchError('ENOTFOUND', `no process ${target.pid} in the sandbox`, { id });
    if (!killOne(target.pid, sig)) throw new HutchError('ENOTFOUND', `process ${target.pid} has exited`, { id });
    return 1;
  }
  const id = String(target.pgid);
  const members = [...procs.values()].filter((p) => p.pgid === target.pgid);
  if (members.some((p) => p.pid === process.pid)) {
    throw new HutchError('EINVAL', `process group ${target.pgid} contains the agent`, { id });
  }
  if (members.length === 0) throw new HutchError('ENOTFOUND', `no process group ${target.pgid} in the sandbox`, { id });
  if (!killOne(-target.pgid, sig)) throw new HutchError('ENOTFOUND', `process group ${target.pgid} has exited`, { id });
  return members.length;
}

const MAX_ARGS = 256, MAX_ARG_CHARS = 4096, MAX_CMDLINE_CHARS = 8192;

function readUid(pid: number): number | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch (e) {
    if (vanished(e)) return null;
    throw e;
  }
  const m = /^Uid:\s+\d+\s+(\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

function readArgv(pid: number): string[] | null {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(`/proc/${pid}/cmdline`);
  } catch (e) {
    if (vanished(e)) return null;
    throw e;
  }
  const parts = raw.toString('utf8', 0, Math.min(raw.length, MAX_CMDLINE_CHARS)).split('\0');
  if (parts[parts.length - 1] === '') parts.pop();
  return parts.slice(0, MAX_ARGS).map((a) => a.slice(0, MAX_ARG_CHARS));
}

/** The sandbox's processes for `ps`, sorted by pid and capped at MAX_PS_ENTRIES. */
export function listProcesses(): { processes: ProcessInfo[]; truncated: boolean } {
  const procs = [...sandboxProcesses().values()].sort((a, b) => a.pid - b.pid);
  const out: ProcessInfo[] = [];
  for (const s of procs.slice(0, MAX_PS_ENTRIES)) {
    const uid = readUid(s.pid);
    const argv = readArgv(s.pid);
    if (uid === null || argv === null) continue; // exited while we looked
    out.push({ pid: s.pid, ppid: s.ppid, pgid: s.pgid, uid, state: s.state.slice(0, 4), comm: s.comm.slice(0, 64), argv });
  }
  return { processes: out, truncated: procs.length > MAX_PS_ENTRIES };
}

/** Reads a small number file; null when it does not exist or says "max". */
function readNumberFile(path: string): number | null {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8').trim();
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return null;
    throw e;
  }
  const n = Number(text);
  return text === 'max' || !Number.isSafeInteger(n) || n < 0 ? null : n;
}

function meminfo(): StatsResult['memory'] {
  const text = fs.readFileSync('/proc/meminfo', 'utf8');
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { totalBytes: kib('MemTotal'), availableBytes: kib('MemAvailable') };
}

/** What the agent can see of the sandbox's load from inside. */
export function sandboxStats(agentStartMs: number): StatsResult {
  const uptime = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  return {
    processes: sandboxProcesses().size,
    uptimeMs: Math.max(0, Math.round(performance.now() - agentStartMs)),
    systemUptimeMs: Math.round(uptime * 1000),
    loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100),
    memory: meminfo(),
    cgroup: {
      memoryCurrentBytes: readNumberFile('/sys/fs/cgroup/memory.current'),
      memoryMaxBytes: readNumberFile('/sys/fs/cgroup/memory.max'),
      pidsCurrent: readNumberFile('/sys/fs/cgroup/pids.current'),
    },
  };
}
