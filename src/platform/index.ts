// Isolation platforms behind one interface. Only types and data here: a platform's code is loaded
// when a sandbox needs it (loadContainerPlatform), so verbs that only read state never pay for it.
export * from './types.js';
import type { Platform } from './types.js';

/** Options of the container platform. */
export interface ContainerPlatformOptions {
  stateRoot: string; dataRoot: string; executor: string;
  /** Slow kernel work of a teardown (an overlay's umount) on a worker thread (EngineOptions.offloadBlockingWork). */
  offload?: boolean;
}

/** Loads the container platform (OCI executor) for these options. */
export async function loadContainerPlatform(opts: ContainerPlatformOptions): Promise<Platform & { prepareRuntime(): string }> {
  const { ContainerPlatform } = await import('./container/index.js');
  return new ContainerPlatform(opts);
}
