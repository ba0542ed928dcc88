// Is a sandbox's init still there? The platform says; the engine keeps the start time it saw, so
// that a reused pid is not mistaken for ours.
import type { InitObservation, Platform, PlatformHandle } from '../platform/index.js';
import type { SandboxRecord } from './state.js';

/** The sandbox's handle, or the one it would have (a crash during create lost it). */
export function handleOf(platform: Platform, record: SandboxRecord, dir: string): PlatformHandle {
  return record.handle ?? platform.handleFor(record.id, dir);
}

/** Observes the init of a sandbox through its platform. */
export function observeInit(platform: Platform, record: SandboxRecord, dir: string): InitObservation {
  return platform.observeInit(handleOf(platform, record, dir), record.initStartTime);
}
