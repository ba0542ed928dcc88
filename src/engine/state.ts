// The sandbox model: its persistent record and the state machine ready → running ⇄ paused → stopped.
import { HutchError } from '../errors.js';
import type { PlatformHandle, SandboxSettings } from '../platform/index.js';
import type { EgressPolicy, PortMapping } from '../net/index.js';

/** A sandbox on a network of the network layer: what it asked for and, once attached, where it is. */
export interface SandboxNetworkRecord {
  name: string;
  ports?: PortMapping[];
  policy?: EgressPolicy;
  address?: string;
  netnsPath?: string;
  resolvConf?: string;
  hosts?: string;
}

/** The states a user sees. */
export type SandboxStatus = 'ready' | 'running' | 'paused' | 'stopped';

/** Transitional phases recorded while an operation is under way; a crash leaves them behind. */
export type SandboxPhase = SandboxStatus | 'creating' | 'deleting';

/** What hutch keeps on disk about a sandbox (state.json): its settings and what became of it. */
export interface SandboxRecord extends SandboxSettings {
  version: 1;
  phase: SandboxPhase;
  /** The platform it runs on (absent: container, as records before there were others). */
  platform?: string;
  /** The container platform's OCI executor the sandbox was made with (runc, crun). */
  executor?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  handle?: PlatformHandle;
  /** Agent mode: the pid (inside the sandbox) of the main command. */
  mainPid?: number;
  /** The init's host pid, as the platform saw it at start (ls shows it). */
  initPid?: number;
  /** Start time (clock ticks since boot) of the init pid, so a reused pid is not taken for ours. */
  initStartTime?: number;
  /** How the main command (agent mode) or the init (direct mode) ended: its code, 128+N for a signal N. */
  exitCode?: number | null;
  /** The signal that ended it (SIGKILL...), when one did. */
  signal?: string;
  /** It was killed by the kernel's OOM killer (the sandbox's cgroup counted an OOM kill). */
  oomKilled?: boolean;
  /** The agent (the init) went away without an exit record: killed or crashed; `note` says more. */
  agentDied?: boolean;
  /** The image the sandbox was made from (its layers are `lowerDirs`). */
  image?: { ref: string; id: string };
  /** The user's labels (key → value). */
  labels?: Record<string, string>;
  /** Why the sandbox is stopped when it did not end normally (interrupted create, agent died...). */
  note?: string;
  /** Removed by its exit watch when its init is gone (run --rm -d). */
  autoRemove?: boolean;
  /** On a network (bridge or a named one); absent for none and host (hardening.network). */
  network?: SandboxNetworkRecord;
  /** With phase `deleting`: the state it was in, shown again when a crash stopped the delete before its init was killed. */
  deletingFrom?: SandboxStatus;
}

const TRANSITIONS: Record<SandboxStatus, SandboxStatus[]> = {
  ready: ['running', 'stopped'],
  running: ['paused', 'stopped'],
  paused: ['running', 'stopped'],
  stopped: [],
};

/** Throws unless `from` → `to` is a valid transition; the error names both states. */
export function checkTransition(id: string, from: SandboxPhase, to: SandboxStatus, verb: string): void {
  if (from === 'creating' || from === 'deleting') {
    throw new HutchError('ESTATE', `cannot ${verb} sandbox ${id}: it is ${from} (another hutch is working on it)`, { id });
  }
  if (!TRANSITIONS[from].includes(to)) {
    throw new HutchError('ESTATE', `cannot ${verb} sandbox ${id}: it is ${from}, and ${from} → ${to} is not a valid transition`, { id });
  }
}

/** Throws unless the sandbox is in one of `allowed` (for operations that do not change state). */
export function requireStatus(id: string, phase: SandboxPhase, allowed: SandboxStatus[], verb: string): void {
  if (!(allowed as string[]).includes(phase)) {
    throw new HutchError('ESTATE', `cannot ${verb} sandbox ${id}: it is ${phase} (needs ${allowed.join(' or ')})`, { id });
  }
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/** Validates a sandbox name (also used as its hostname). */
export function checkName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new HutchError('EINVAL', `invalid sandbox name "${name.slice(0, 80)}": use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit`);
  }
}

const LABEL_KEY_RE = /^[a-zA-Z0-9][a-zA-Z0-9._/-]{0,252}$/;
const MAX_LABELS = 64;
const MAX_LABEL_VALUE = 4096;

/** Validates labels: at most 64, keys of letters, digits and `._/-`, values up to 4 KiB. */
export function checkLabels(labels: Record<string, string>): Record<string, string> {
  const entries = Object.entries(labels);
  if (entries.length > MAX_LABELS) throw new HutchError('EINVAL', `too many labels (${entries.length}): at most ${MAX_LABELS}`);
  for (const [k, v] of entries) {
    if (!LABEL_KEY_RE.test(k)) throw new HutchError('EINVAL', `invalid label key "${k.slice(0, 80)}": use up to 253 letters, digits, '.', '_', '/' or '-'`);
    if (typeof v !== 'string' || v.length > MAX_LABEL_VALUE || v.includes('\0')) throw new HutchError('EINVAL', `invalid value of label ${k}: a string of at most ${MAX_LABEL_VALUE} characters`);
  }
  return { ...labels };
}
