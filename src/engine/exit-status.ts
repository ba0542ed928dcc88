// How a sandbox's main command ended, recorded as docker reports it: an exit code (128+N for a
// signal N), the signal's name, and whether the OOM killer did it; or, when that cannot be known
// (the agent died first), that it is lost and why.
import os from 'node:os';
import type { SandboxRecord } from './state.js';

const SIGNALS = os.constants.signals as Record<string, number>;
const SIGNAL_NAMES = new Map<number, string>(Object.entries(SIGNALS).map(([name, n]) => [n, name]));

/** An exit record as the agent writes it: exactly one of the two is set. */
export interface MainExit { exitCode: number | null; signal: string | null }

/** How the init went away when there is no exit record: stopped by hutch, or on its own. */
export type InitEnd = 'stopped' | 'gone';

/**
 * Agent mode: records the main command's end from the agent's exit record (null when there is none)
 * and the OOM kills the sandbox's cgroup counted (null when unknown). Without a record, a sandbox
 * whose init went away on its own had its agent die: that is recorded, with a note saying so.
 */
export function recordAgentExit(record: SandboxRecord, exit: MainExit | null, oomKills: number | null, end: InitEnd): void {
  const oom = oomKills !== null && oomKills > 0;
  if (exit !== null) {
    const n = exit.signal === null ? undefined : SIGNALS[exit.signal];
    if (exit.signal !== null && n === undefined) {
      record.note = `the exit record names an unknown signal ${JSON.stringify(exit.signal)}: exit status unknown`;
      return;
    }
    setEnd(record, n === undefined ? exit.exitCode! : 128 + n, exit.signal, oom);
    return;
  }
  if (end === 'gone') {
    record.agentDied = true;
    if (oom) record.oomKilled = true;
    const how = oom ? 'was OOM-killed' : 'died (killed or crashed)';
    record.note = record.mainPid !== undefined ? `the agent ${how} before the main command exited: its exit status is lost` : `the agent ${how}`;
  } else if (record.mainPid !== undefined) {
    record.note ??= 'the agent did not answer the stop: the sandbox was killed by signals and its main command\'s exit status is lost';
  }
}

/**
 * Direct mode: records the init's end from the executor's exit status, which gives a signal N as
 * 128+N (the signal's name is read from that, as a shell does); `oomSeen` when the sandbox's cgroup
 * reported an OOM kill while it ran.
 */
export function recordDirectExit(record: SandboxRecord, exitCode: number, oomSeen: boolean): void {
  const signal = exitCode > 128 ? SIGNAL_NAMES.get(exitCode - 128) ?? null : null;
  setEnd(record, exitCode, signal, oomSeen);
}

function setEnd(record: SandboxRecord, exitCode: number, signal: string | null, oom: boolean): void {
  record.exitCode = exitCode;
  if (signal !== null) record.signal = signal;
  // Docker's meaning, narrowed as Kubernetes reads it: the main process itself died of the OOM kill.
  if (oom && signal === 'SIGKILL') record.oomKilled = true;
}

/** The end in a few words for a table: `137, SIGKILL`, `137, OOM killed`, `0`; null when unknown. */
export function describeEnd(info: Pick<SandboxRecord, 'exitCode' | 'signal' | 'oomKilled'>): string | null {
  if (info.exitCode === undefined || info.exitCode === null) return null;
  if (info.oomKilled) return `${info.exitCode}, OOM killed`;
  return info.signal ? `${info.exitCode}, ${info.signal}` : String(info.exitCode);
}
