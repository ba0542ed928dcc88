// How a stopped sandbox ended, as the API shows it: in its view and in the data of its 'stopped' event.
import type { SandboxInfo } from '../engine/index.js';

/** The end of a sandbox's main command; each field absent while running or when unknown. */
export interface SandboxEnd {
  finishedAt?: string;
  /** Its exit code; 128+N for a signal N. */
  exitCode?: number;
  /** The signal that ended it (SIGKILL...). */
  signal?: string;
  /** It was killed by the OOM killer. */
  oomKilled?: boolean;
  /** The agent died (killed or crashed) without an exit record; the note says more. */
  agentDied?: boolean;
}

/** The end fields of a sandbox's record. */
export function endOf(info: SandboxInfo): SandboxEnd {
  return {
    ...(info.finishedAt ? { finishedAt: info.finishedAt } : {}), ...(typeof info.exitCode === 'number' ? { exitCode: info.exitCode } : {}),
    ...(info.signal ? { signal: info.signal } : {}), ...(info.oomKilled ? { oomKilled: true } : {}), ...(info.agentDied ? { agentDied: true } : {}),
  };
}
