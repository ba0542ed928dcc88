// What the engine's callers give and get: its options, a new sandbox's options, an update, and a
// sandbox as list and inspect show it.
import type { Hardening, InitMode, Limits, PlatformRegistry } from '../platform/index.js';
import type { SandboxRecord, SandboxStatus } from './state.js';
import type { PullPolicy, PullProgress } from './rootfs.js';
import type { EgressPolicy, PortMapping } from '../net/index.js';

/** Where the engine keeps things, and which platform and executor it uses. */
export interface EngineOptions {
  root?: string; dataRoot?: string; executor?: string;
  /** The platform new sandboxes get unless they name one (default: $HUTCH_PLATFORM, else container). */
  platform?: string;
  /** The platforms it knows (default: the built-in ones); tests add a fake one. */
  platforms?: PlatformRegistry;
  /** How to run the hutch CLI (node and its entry): the remover of auto-removed sandboxes runs it. */
  selfCommand?: string[];
  /**
   * Long kernel and disk work (removing a big writable layer, an overlay's teardown) goes off the
   * event loop: for a process that serves many clients (hutchd). A CLI call does it inline, faster.
   */
  offloadBlockingWork?: boolean;
}

/** What a new sandbox is made from. */
export interface CreateOptions {
  /** `busybox` (the embedded default), a rootfs dir (a path: `/…` or `./…`), or an image reference. */
  rootfs: string;
  /** For an image: pull it first when missing (default), always, or never. */
  pull?: PullPolicy;
  /** Shown while an image is pulled. */
  pullProgress?: PullProgress;
  /** Replaces the image's Entrypoint ([] = none). */
  entrypoint?: string[];
  labels?: Record<string, string>;
  name?: string;
  env?: string[];
  cwd?: string;
  /** Ids, or a spec as `-u` takes it (NAME, UID, NAME:GROUP, UID:GID…) looked up in the rootfs's /etc/passwd and /etc/group. */
  user?: string | { uid: number; gid: number };
  limits?: Limits;
  hardening?: Partial<Hardening>;
  /** The main command: run by the agent on start, or the init itself in direct mode. */
  command?: string[];
  terminal?: boolean;
  /** Direct mode: catatonit as pid 1, reaping and forwarding signals (run --init). */
  init?: boolean;
  /** Removed when its init exits (run --rm -d); needs EngineOptions.selfCommand. */
  autoRemove?: boolean;
  mode?: InitMode;
  /** The platform it runs on (default: the engine's). */
  platform?: string;
  /** none (loopback only), host, bridge (the default network) or a named network; default none (or hardening.network). */
  network?: string;
  /** Host ports published to the sandbox (bridge and named networks). */
  ports?: PortMapping[];
  /** Its egress policy (bridge and named networks; default: allow, but not the host's networks). */
  policy?: EgressPolicy;
}

/** What `update` changes: env entries merged over the sandbox's, its working dir, labels (null removes). */
export interface SandboxUpdate {
  env?: string[];
  cwd?: string;
  labels?: Record<string, string | null>;
  /** Applies only while the sandbox has these labels (else ESTATE): a claim that two processes race for. */
  ifLabels?: Record<string, string>;
}

/** What `list` and `inspect` return: the record with its observed status. */
export interface SandboxInfo extends SandboxRecord { status: SandboxStatus | 'creating' | 'deleting' }
