// The platforms hutch knows, by name. An entry only says how to load its platform: the code is
// imported when a sandbox needs it, so verbs that only read state never pay for it.
import { HutchError } from '../errors.js';
import type { Platform } from './types.js';

/** What every platform is given: where hutch keeps state and data, and its process's habits. */
export interface PlatformOptions {
  stateRoot: string;
  dataRoot: string;
  /** The container platform's OCI executor (runc, crun); other platforms ignore it. */
  executor: string;
  /** Slow kernel work of a teardown (an overlay's umount) on a worker thread (EngineOptions.offloadBlockingWork). */
  offload?: boolean;
}

/** One platform's entry: what it is, and how to load it. */
export interface PlatformEntry {
  /** One line for `hutch info` and errors. */
  summary: string;
  load(opts: PlatformOptions): Promise<Platform>;
  /**
   * For OCI runtime mode (a caller's bundle, runc's contract): the runc-compatible executor that
   * runs it on this platform, given the configured one. Absent: the platform cannot run bundles.
   */
  ociExecutor?(configured: string): string;
}

/** Platforms by name. */
export type PlatformRegistry = Readonly<Record<string, PlatformEntry>>;

/** The platforms built into hutch. */
export const builtinPlatforms: PlatformRegistry = {
  container: {
    summary: 'namespaces and cgroups through an OCI executor (runc or crun): the host kernel is shared',
    async load(opts) {
      const { ContainerPlatform } = await import('./container/index.js');
      return new ContainerPlatform(opts);
    },
    ociExecutor: (configured) => configured,
  },
  gvisor: {
    summary: "gVisor's runsc: a kernel in user space (the sentry) serves the sandbox's syscalls; the host kernel sees only the sentry's",
    async load(opts) {
      const { GvisorPlatform } = await import('./gvisor/index.js');
      return new GvisorPlatform(opts);
    },
    // runsc takes runc's command line; it runs a CRI pod's containers in the pod's one sandbox itself.
    ociExecutor: () => 'runsc',
  },
};

/** The entry of platform `name`; EINVAL naming the known ones when there is none. */
export function platformEntry(registry: PlatformRegistry, name: string): PlatformEntry {
  const entry = Object.hasOwn(registry, name) ? registry[name] : undefined;
  if (!entry) throw new HutchError('EINVAL', `unknown platform "${String(name).slice(0, 40)}": use ${Object.keys(registry).join(', ')}`);
  return entry;
}
