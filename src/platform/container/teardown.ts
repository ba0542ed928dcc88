// Tearing down a runc container without spawning runc twice: `runc kill` and `runc delete` cost
// ~6 ms of process start each, most of a sandbox's removal. hutch kills the container's init itself
// (its pid namespace dies with it), checked against the start time runc recorded, and forgets the
// container by removing runc's state dir once the init and every process of its cgroup are gone.
// Anything unexpected (another executor, a state file that does not parse, a process left in the
// cgroup) returns false, and the caller falls back to runc's own kill and delete.
import fs from 'node:fs';
import path from 'node:path';
import { cgroupPids, processStartTime, signalIfAlive } from '../../linux/index.js';

/** What runc's state.json says of a container's init. */
interface RuncInit { pid: number; start: number }

/** The init pid and start time runc recorded for container `id`; null when they cannot be read. */
function runcInit(stateDir: string, id: string): RuncInit | null {
  try {
    const state = JSON.parse(fs.readFileSync(path.join(stateDir, id, 'state.json'), 'utf8')) as { init_process_pid?: unknown; init_process_start?: unknown };
    const pid = state.init_process_pid;
    const start = state.init_process_start;
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 1 || typeof start !== 'number') return null;
    return { pid, start };
  } catch {
    return null; // no state, or a format this code does not know: runc's own delete handles it
  }
}

/**
 * Kills runc container `id` (a thawed one: a frozen task cannot die) and removes runc's state of it.
 * True when done; false when the caller must use runc's kill and delete instead.
 */
export async function killAndForgetRuncContainer(stateDir: string, id: string, cgroupsPath: string, timeoutMs = 2000): Promise<boolean> {
  const init = runcInit(stateDir, id);
  if (init === null) return false;
  const start = processStartTime(init.pid);
  if (start !== null) {
    if (start !== init.start) return false; // the pid is someone else's now
    signalIfAlive(init.pid, 'SIGKILL'); // it may exit on its own meanwhile
  }
  for (let delay = 1, waited = 0; ; waited += delay, delay = Math.min(delay * 2, 20)) {
    if (processStartTime(init.pid) !== init.start && cgroupPids(cgroupsPath).length === 0) break;
    if (waited >= timeoutMs) return false;
    await new Promise((r) => setTimeout(r, delay));
  }
  fs.rmSync(path.join(stateDir, id), { recursive: true, force: true });
  return true;
}
