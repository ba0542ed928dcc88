// Processes seen through /proc and signal 0: is a pid there, and is it still the process we knew
// (its start time, so that a reused pid is not taken for ours)? Any process may exit while it is
// being read: ENOENT (its /proc dir is gone) and ESRCH (gone between open and read) mean just that;
// any other error is a real one and is thrown.
import fs from 'node:fs';
import { errnoCode, HutchError } from '../errors.js';

/** True for an error that means the process exited while it was being looked at (ENOENT, ESRCH). */
export function processVanished(e: unknown): boolean {
  const code = errnoCode(e);
  return code === 'ENOENT' || code === 'ESRCH';
}

/** Reads `/proc/PID/<file>`; null when the process is gone. Other errors are EINTERNAL, naming the file. */
export function readProcFile(pid: number, file: string): string | null {
  const where = `/proc/${pid}/${file}`;
  try {
    return fs.readFileSync(where, 'utf8');
  } catch (e) {
    if (processVanished(e)) return null;
    throw new HutchError('EINTERNAL', `cannot read ${where}: ${(e as Error).message}`, { path: where, cause: e });
  }
}

/** The start time (field 22 of /proc/PID/stat, clock ticks after boot), or null when the pid is gone or a zombie. */
export function processStartTime(pid: number): number | null {
  const stat = readProcFile(pid, 'stat');
  // A process reaped between open and read may also give an empty file.
  if (stat === null || stat === '') return null;
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  if (state === 'Z' || state === 'X') return null; // a zombie has finished running
  const start = Number(fields[19]);
  return Number.isFinite(start) ? start : null;
}

/** True when process `pid` exists (signal 0 reaches it, or it exists but is not ours to signal). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sends `signal` to `pid`; false when the process is gone already (ESRCH), other errors thrown. */
export function signalIfAlive(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (e) {
    if (errnoCode(e) === 'ESRCH') return false;
    throw new HutchError('EINTERNAL', `cannot send ${signal} to process ${pid}: ${(e as Error).message}`, { id: String(pid), cause: e });
  }
}
