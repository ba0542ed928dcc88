// Is a sandbox's init still there? Pid plus its start time, so that a reused pid is not mistaken for ours.
import fs from 'node:fs';
import path from 'node:path';
import type { SandboxRecord } from './state.js';

/** What the engine can see of an init process. */
export interface InitObservation { known: boolean; alive: boolean; pid?: number; startTime?: number }

/** The start time (field 22 of /proc/PID/stat, clock ticks after boot), or null when the pid is gone. */
export function processStartTime(pid: number): number | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null; // no such process
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  if (state === 'Z' || state === 'X') return null; // a zombie has finished running
  const start = Number(fields[19]);
  return Number.isFinite(start) ? start : null;
}

/** Observes the init of a sandbox from its record (or the pid file the executor wrote). */
export function observeInit(record: SandboxRecord, dir: string): InitObservation {
  let pid = record.handle?.initPid;
  if (pid === undefined) {
    try {
      const n = Number.parseInt(fs.readFileSync(path.join(dir, 'init.pid'), 'utf8'), 10);
      if (Number.isInteger(n) && n > 0) pid = n;
    } catch {
      return { known: false, alive: false }; // no pid file yet: the executor has not made the init
    }
  }
  if (pid === undefined) return { known: false, alive: false };
  const start = processStartTime(pid);
  if (start === null) return { known: true, alive: false, pid };
  if (record.initStartTime !== undefined && record.initStartTime !== start) return { known: true, alive: false, pid };
  return { known: true, alive: true, pid, startTime: start };
}

/** The exit record the agent left in the sandbox's run dir, validated; null if none. */
export function exitRecordOf(dir: string): { exitCode: number | null; signal: string | null } | null {
  const file = path.join(dir, 'run', 'exit.json');
  let text: string;
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    try {
      if (!fs.fstatSync(fd).isFile()) return null;
      const buf = Buffer.alloc(4096);
      const n = fs.readSync(fd, buf, 0, buf.length, 0);
      text = buf.subarray(0, n).toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null; // missing, a link the sandbox planted, or unreadable: no trusted exit record
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null) return null;
    const { exitCode, signal } = v as Record<string, unknown>;
    const code = typeof exitCode === 'number' && Number.isInteger(exitCode) && exitCode >= 0 && exitCode <= 255 ? exitCode : null;
    const sig = typeof signal === 'string' && /^SIG[A-Z0-9]{1,10}$/.test(signal) ? signal : null;
    return { exitCode: code, signal: sig };
  } catch {
    return null; // not JSON: the sandbox wrote garbage; ignore it
  }
}
