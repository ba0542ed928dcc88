// The exit watch of a sandbox (run --rm -d): a small host process that runs a command once the
// sandbox's init and every process in it are gone, with no hutch process staying around meanwhile.
//
// How it knows: one end of a socket pair is the watch's stdin; the other goes to the executor's
// create as fd 3 (`--preserve-fds 1`), so the init holds it (in the agent it is close-on-exec:
// the processes the agent starts do not get it). When the init exits (the kernel kills the rest of its
// pid namespace with it), the last copy closes and the watch reads end of file: no polling, and a
// reused pid cannot fool it. Whatever is written into the other end is read and dropped.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { HutchError } from '../../errors.js';
import { processStartTime } from '../../linux/index.js';

/** The watch's script: wait for end of file on stdin, then become the command. */
const WATCH_SCRIPT = 'cat >/dev/null; exec "$@"';

/** A started watch: `peer` goes to the executor as fd 3, then is closed here. */
export interface ExitWatch { peer: Writable; pid: number; startTime: number; child: ChildProcess }

/** Starts the watch of the sandbox in `dir`; its output goes to `dir`/exit-watch.log. */
export function startExitWatch(dir: string, command: string[]): ExitWatch {
  const log = fs.openSync(path.join(dir, 'exit-watch.log'), 'a', 0o600);
  let child: ChildProcess;
  try {
    // Own session and process group (detached), cwd / (never a dir the removal deletes).
    child = spawn('sh', ['-c', WATCH_SCRIPT, 'hutch-exit-watch', ...command], { stdio: ['pipe', log, log], detached: true, cwd: '/' });
  } finally {
    fs.closeSync(log);
  }
  child.unref();
  const pid = child.pid;
  const startTime = pid === undefined ? null : processStartTime(pid);
  if (pid === undefined || startTime === null) throw new HutchError('EEXEC', `the exit watch of the sandbox in ${dir} did not start (sh)`, { path: dir });
  child.on('error', () => undefined); // its end is reported by the watch's log, not to this process
  return { peer: child.stdin!, pid, startTime, child };
}

/** Lets go of this process's copy of the watch's socket: from then on only the sandbox holds it. */
export function releaseExitWatch(w: ExitWatch): void {
  w.peer.destroy();
}

/**
 * Stops a sandbox's watch (its whole process group), unless it has gone or is this very process
 * (the watch's command is the one removing the sandbox); waits (up to 2 s) until it has died.
 */
export async function stopExitWatch(w: { pid: number; startTime: number }): Promise<void> {
  if (w.pid === process.pid || processStartTime(w.pid) !== w.startTime) return;
  try {
    process.kill(-w.pid, 'SIGKILL');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
  // A SIGKILL takes effect when the process next runs: on a busy machine, a moment later.
  for (let delay = 1, waited = 0; processStartTime(w.pid) === w.startTime && waited < 2000; waited += delay, delay = Math.min(delay * 2, 50)) {
    await new Promise((r) => setTimeout(r, delay));
  }
}
