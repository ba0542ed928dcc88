// The container platform's part of a sandbox's handle, and the files it keeps in the sandbox's dir:
// the init's pid file, and the agent's run dir (its socket, exit record and main log).
import fs from 'node:fs';
import path from 'node:path';
import { HutchError, isHutchError } from '../../errors.js';
import { processStartTime } from '../../linux/index.js';
// The exit record is the agent's format: read with the agent's own strict reader.
import { EXIT_FILE_NAME, readExitFile } from '../../agent/exit-file.js';
import { MAIN_LOG_NAME } from '../../agent/main-log.js';
import type { ExitRecord, InitObservation, PlatformHandle } from '../types.js';

/** What the container platform keeps in a handle's opaque state. */
export interface ContainerState {
  /** The OCI executor that made the container (runc, crun, runsc). */
  executor: string;
  /** The executor's container id (hutch's sandbox id). */
  containerId: string;
  cgroupsPath: string;
  initPid?: number;
  /** A sandbox with a private id range: its slot (host ids base + slot * 65536 on), freed on destroy. */
  idSlot?: number;
  /** The host process that runs SandboxConfig.onExit (pid and start time), stopped by destroy. */
  exitWatch?: { pid: number; startTime: number };
}

/** A handle of platform `platform` carrying `state`. */
export function sealHandle(platform: string, dir: string, state: ContainerState): PlatformHandle {
  return { platform, dir, state: { ...state } };
}

/** The container state of a handle, checked: it was read back from a state file. */
export function openHandle(h: PlatformHandle): ContainerState {
  const s = h.state as Partial<ContainerState> | undefined;
  if (!s || typeof s.containerId !== 'string' || typeof s.cgroupsPath !== 'string' || typeof s.executor !== 'string') {
    throw new HutchError('ESTATE', `the handle of the sandbox in ${h.dir} is not a container platform's`, { path: h.dir });
  }
  return s as ContainerState;
}

/** The files and dirs of one sandbox under its state dir. */
export function layout(dir: string) {
  return {
    bundle: path.join(dir, 'bundle'),
    rootfs: path.join(dir, 'rootfs'),
    upper: path.join(dir, 'upper'),
    work: path.join(dir, 'work'),
    run: path.join(dir, 'run'),
    pidFile: path.join(dir, 'init.pid'),
    log: path.join(dir, 'init.log'),
  };
}

/** The init from the handle's pid (or the pid file the executor wrote), with its start time, so that a reused pid is not taken for ours. */
export function observeContainerInit(h: PlatformHandle, recordedStart?: number): InitObservation {
  let pid = (h.state as Partial<ContainerState>).initPid;
  if (pid === undefined) {
    try {
      const n = Number.parseInt(fs.readFileSync(layout(h.dir).pidFile, 'utf8'), 10);
      if (Number.isInteger(n) && n > 0) pid = n;
    } catch {
      return { known: false, alive: false }; // no pid file yet: the executor has not made the init
    }
  }
  if (pid === undefined) return { known: false, alive: false };
  const start = processStartTime(pid);
  if (start === null) return { known: true, alive: false, pid };
  if (recordedStart !== undefined && recordedStart !== start) return { known: true, alive: false, pid };
  return { known: true, alive: true, pid, startTime: start };
}

/** The exit record the agent left in the run dir, validated (it is sandbox input); null if none or invalid. */
export function containerExitRecord(h: PlatformHandle): ExitRecord | null {
  try {
    return readExitFile(path.join(layout(h.dir).run, EXIT_FILE_NAME));
  } catch (e) {
    if (isHutchError(e, 'ENOTFOUND') || isHutchError(e, 'EPROTO')) return null; // none, or garbage the sandbox wrote
    throw e;
  }
}

/** The main command's log, which the agent writes into the run dir. */
export function containerMainLog(h: PlatformHandle): string {
  return path.join(layout(h.dir).run, MAIN_LOG_NAME);
}
