// Tearing down a runsc container without `runsc delete`: that waits until the sandbox process is
// reaped, and on a host whose pid 1 reaps slowly (seen here: ~1.9 s) removal would wait with it.
// hutch kills the sandbox and gofer processes itself (checked to be this container's: their command
// line names its bundle), waits until they and every process of its cgroup have exited (a zombie has),
// and forgets the container by removing runsc's state and lock files. Anything unexpected returns
// false, and the caller falls back to runsc's own kill and delete.
import fs from 'node:fs';
import { cgroupPids, processStartTime, readProcFile, signalIfAlive } from '../../linux/index.js';

/** The host processes runsc recorded for a root container. */
interface RunscProcesses { sandbox: number; gofer: number | null }

function runscProcesses(stateFile: string): RunscProcesses | null {
  try {
    const s = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { goferPid?: unknown; sandbox?: { pid?: unknown } };
    const pid = s.sandbox?.pid;
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 1) return null;
    const gofer = typeof s.goferPid === 'number' && Number.isInteger(s.goferPid) && s.goferPid > 1 ? s.goferPid : null;
    return { sandbox: pid, gofer };
  } catch {
    return null; // no state, or a format this code does not know: runsc's own delete handles it
  }
}

/** True when `pid` runs runsc for the bundle `bundle` (not a reused pid). */
function runsFor(pid: number, bundle: string): boolean {
  const cmdline = readProcFile(pid, 'cmdline');
  if (cmdline === null) return false;
  const words = cmdline.split('\0');
  return words[0]?.startsWith('runsc') === true && (words.includes(`--bundle=${bundle}`) || words.includes(bundle));
}

/**
 * Kills runsc container `id` (whose bundle is `bundle`) and removes runsc's state of it. True when
 * done; false when the caller must use runsc's kill and delete instead.
 */
export async function killAndForgetRunscContainer(stateDir: string, id: string, bundle: string, cgroupsPath: string, timeoutMs = 3000): Promise<boolean> {
  const stateFile = `${stateDir}/${id}_sandbox:${id}.state`;
  const procs = runscProcesses(stateFile);
  if (procs === null) return false;
  const mine = [procs.sandbox, procs.gofer].filter((p): p is number => p !== null && processStartTime(p) !== null);
  if (mine.some((p) => !runsFor(p, bundle))) return false; // someone else's pid now
  for (const p of mine) signalIfAlive(p, 'SIGKILL');
  for (let delay = 1, waited = 0; ; waited += delay, delay = Math.min(delay * 2, 20)) {
    if (mine.every((p) => processStartTime(p) === null) && cgroupPids(cgroupsPath).length === 0) break;
    if (waited >= timeoutMs) return false;
    await new Promise((r) => setTimeout(r, delay));
  }
  for (const f of [stateFile, `${stateDir}/${id}_sandbox:${id}.lock`]) fs.rmSync(f, { force: true });
  return true;
}
