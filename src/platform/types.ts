// What the engine hands a platform, and what a platform reports back.
import type { AgentClient } from '../agent/index.js';

/** Hardening switches; every one is on by default and can be turned off by an option. */
export interface Hardening {
  userns: boolean;
  seccomp: 'default' | 'strict' | 'off';
  /** io_uring allowed by the seccomp profile (absent = denied: seccomp cannot see its operations). */
  ioUring?: boolean;
  capabilities: 'default' | 'all';
  noNewPrivileges: boolean;
  maskPaths: boolean;
  /** 'none' = a new network namespace with loopback only; 'host' = the host's network. */
  network: 'none' | 'host';
  /** A writable overlay layer over a read-only base; off = the base itself, read-only. */
  overlay: boolean;
  /**
   * With userns: 'private' gives the sandbox a host id range of its own (its base layers seen
   * through idmapped mounts); absent or 'shared' = the one range all sandboxes share.
   */
  idRange?: 'shared' | 'private';
}

/** The default hardening profile. */
export const DEFAULT_HARDENING: Hardening = {
  userns: true, seccomp: 'default', capabilities: 'default', noNewPrivileges: true, maskPaths: true, network: 'none', overlay: true,
};

/**
 * Resource limits; undefined = no limit (pids defaults to 1024 in the engine). `diskBytes` and
 * `diskInodes` bound the writable layer (a tmpfs of that size holds its upper dir; docs/security.md).
 */
export interface Limits { memoryBytes?: number; cpus?: number; pids?: number; diskBytes?: number; diskInodes?: number }

/** How a sandbox's init runs: the agent (long-lived, exec/files/ps) or the user's command itself (one-shot). */
export type InitMode = 'agent' | 'direct';

/** What a sandbox is made of: kept in the engine's record, handed to the platform. */
export interface SandboxSettings {
  id: string;
  name: string;
  mode: InitMode;
  /** Base rootfs dir (read-only lower layer); for an image, its topmost layer dir. */
  rootfs: string;
  /** An image's unpacked layer dirs, topmost first (overlayfs lower dirs); absent = just `rootfs`. */
  lowerDirs?: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number };
  limits: Limits;
  hardening: Hardening;
  /** The main command: run by the agent on start, or the init itself in direct mode. */
  command?: string[];
  terminal?: boolean;
  /**
   * Direct mode: a small init (catatonit, as podman's --init) is pid 1 and runs the command as its
   * child, so that zombies are reaped and signals reach a command that has no handlers of its own.
   */
  init?: boolean;
}

/**
 * A network the network layer (src/net) made for the sandbox: the netns to join (its veth and
 * address are in it already) and the host files to bind at /etc/resolv.conf and /etc/hosts.
 */
export interface SandboxNetwork { netnsPath: string; resolvConf: string; hosts: string }

/** Everything a platform needs to make one sandbox. */
export interface SandboxConfig extends SandboxSettings {
  /** Absent: a netns with loopback only (hardening.network none) or the host's. */
  network?: SandboxNetwork;
  /** The sandbox's private host dir, made and removed by the engine. */
  dir: string;
  /**
   * A host command to run once the sandbox's init and every process of it are gone (run --rm -d:
   * the engine's remover). The platform starts a watch for it at create; destroy stops the watch.
   */
  onExit?: string[];
}

/**
 * Where a created sandbox's host-side pieces are, stored in the engine's record: the platform's
 * name, the sandbox's host dir, and the platform's own state, which only that platform reads.
 */
export interface PlatformHandle {
  platform: string;
  dir: string;
  state: Record<string, unknown>;
}

/** What can be seen of a sandbox's init from the host. */
export interface InitObservation { known: boolean; alive: boolean; pid?: number; startTime?: number }

/** How the agent recorded its main command's end (sandbox input, validated). */
export interface ExitRecord { exitCode: number | null; signal: string | null }

/** What a platform can do beyond the contract's core; the engine asks before it calls. */
export interface PlatformCapabilities {
  /** A command run through the platform without the agent (execDirect): exec into a foreground run. */
  directExec: boolean;
  /** Sandboxes with a host id range of their own (idRange 'private'). */
  privateIds: boolean;
  /** Checkpoint and restore of a running sandbox, memory included. */
  checkpoint: boolean;
}

/** How a sandbox is after its checkpoint was saved: going on (its new handle), or stopped (and why, when it was to go on). */
export type CheckpointResult = { running: PlatformHandle } | { stopped: true; resumeError?: string };

/** Resource usage read from the sandbox's cgroups. */
export interface SandboxStats {
  cpuUsageNs: number | null;
  memoryBytes: number | null;
  memoryLimitBytes: number | null;
  pids: number | null;
  pidsLimit: number | null;
  oomKills?: number | null;
  /** The writable layer's use and limits (statfs of its filesystem); null without a disk limit. */
  diskBytes?: number | null;
  diskLimitBytes?: number | null;
  diskInodes?: number | null;
  diskInodesLimit?: number | null;
  /** On a network: packets its egress policy dropped (filled in by the engine from src/net's counters). */
  networkDroppedPackets?: number | null;
}

/** One isolation platform (containers, gVisor, microVMs): docs/platforms.md. */
export interface Platform {
  readonly name: string;
  readonly capabilities: PlatformCapabilities;
  /** Builds what its sandboxes need ahead of time (the agent runtime); returns what it made, by name. */
  setup(): Promise<Record<string, string>>;
  /** The handle a sandbox in `dir` has or would have: lets cleanup work after a crash lost it. */
  handleFor(id: string, dir: string): PlatformHandle;
  /** Makes the sandbox's rootfs and bundle and the executor's container; the init waits for start. */
  create(cfg: SandboxConfig): Promise<PlatformHandle>;
  /** Starts the init (unless it was already started); in agent mode resolves when the agent answers. */
  start(h: PlatformHandle, mode: InitMode): Promise<void>;
  /** Whether the init of a made sandbox was started (null: unknown): a crash between start and its record leaves it started. */
  initStarted(h: PlatformHandle): boolean | null;
  /**
   * The init as seen now; `startTime` is the one recorded at start (a different one means the pid
   * was reused: not ours). Cheap and synchronous: ls calls it for every sandbox.
   */
  observeInit(h: PlatformHandle, startTime?: number): InitObservation;
  /** The agent's record of how its main command ended; null when there is none (or it is garbage). */
  exitRecord(h: PlatformHandle): ExitRecord | null;
  /** The host file holding the main command's output (rotated to `<file>.1`); null when the platform keeps none on the host. */
  mainLogPath(h: PlatformHandle): string | null;
  /** Direct mode in the foreground: create, run and wait with the caller's stdio; `oomKilled` when an OOM kill was seen. */
  runForeground(cfg: SandboxConfig, stdio: ('inherit' | 'ignore')[], onStarted: (h: PlatformHandle) => void): Promise<{ handle: PlatformHandle; exitCode: number; oomKilled: boolean }>;
  /** How many processes of the sandbox the OOM killer has killed; null when unknown (cgroup gone). */
  oomKills(h: PlatformHandle): Promise<number | null>;
  /** A new connection to the sandbox's agent. */
  connect(h: PlatformHandle, timeoutMs?: number): Promise<AgentClient>;
  pause(h: PlatformHandle): Promise<void>;
  resume(h: PlatformHandle): Promise<void>;
  /** Sends a signal to the init (all = every process in the sandbox). */
  kill(h: PlatformHandle, signal: string, all: boolean): Promise<void>;
  stats(h: PlatformHandle): Promise<SandboxStats>;
  /** With capabilities.directExec: runs a command without the agent (for direct-mode sandboxes). */
  execDirect?(h: PlatformHandle, cfg: ExecDirectRequest): { done: Promise<number> };
  /** The host path of the sandbox's root filesystem (its writable layer over the base) while it exists. */
  rootfsPath(h: PlatformHandle): string;
  /** Removes everything the sandbox had on the host; idempotent, safe after a crash. */
  destroy(h: PlatformHandle): Promise<void>;
  /**
   * With capabilities.checkpoint: saves the running sandbox (its processes' memory and its writable
   * layer) into the empty dir `dir`. The sandbox stops, unless `leaveRunning`: then it goes on with
   * a new handle; when going on fails, the checkpoint still stands and the sandbox is stopped.
   */
  checkpoint?(h: PlatformHandle, dir: string, leaveRunning: boolean): Promise<CheckpointResult>;
  /** With capabilities.checkpoint: a new running sandbox from what checkpoint saved in `dir` (several from one: a fork). */
  restore?(cfg: SandboxConfig, dir: string): Promise<PlatformHandle>;
  /** With capabilities.privateIds: null when private id ranges work over base layers stored like `source`, else why not. */
  privateIdsProblem?(source: string): Promise<string | null>;
}

/** A command run through the executor rather than the agent. */
export interface ExecDirectRequest {
  args: string[]; env: string[]; cwd: string; user: { uid: number; gid: number }; terminal: boolean;
  stdio: ('inherit' | 'ignore')[];
}
