// Processes seen through /proc and signal 0: is a pid there, and is it still the process we knew
// (its start time, so that a reused pid is not taken for ours)?
import fs from 'node:fs';

/** The start time (field 22 of /proc/PID/stat, clock ticks after boot), or null when the pid is gone or a zombie. */
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

/** True when process `pid` exists (signal 0 reaches it, or it exists but is not ours to signal). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
