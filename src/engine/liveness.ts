// Is a sandbox's init still there? Pid plus its start time, so that a reused pid is not mistaken for ours.
import fs from 'node:fs';
import path from 'node:path';
import type { SandboxRecord } from './state.js';
import { isHutchError } from '../errors.js';
import { processStartTime } from '../linux/index.js';
// The exit record is the agent's format: read with the agent's own strict reader.
import { EXIT_FILE_NAME, readExitFile } from '../agent/exit-file.js';

/** What the engine can see of an init process. */
export interface InitObservation { known: boolean; alive: boolean; pid?: number; startTime?: number }

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

/** The exit record the agent left in the sandbox's run dir, validated (it is sandbox input); null if none or invalid. */
export function exitRecordOf(dir: string): { exitCode: number | null; signal: string | null } | null {
  try {
    return readExitFile(path.join(dir, 'run', EXIT_FILE_NAME));
  } catch (e) {
    if (isHutchError(e, 'ENOTFOUND') || isHutchError(e, 'EPROTO')) return null; // none, or garbage the sandbox wrote
    throw e;
  }
}
