// What the engine's helpers (stopping, waiting, logs, calls) need of it: a narrow view, so that
// they do not import the engine and the engine can import them.
import type { Platform } from '../platform/index.js';
import type { SandboxStore } from './store.js';
import type { SandboxRecord } from './state.js';
import type { InitEnd } from './exit-status.js';
import type { SandboxInfo } from './types.js';

/** The engine as its helpers see it. */
export interface EngineContext {
  readonly store: SandboxStore;
  /** The record of `id`; ESTATE when it has none. */
  mustRead(id: string): SandboxRecord;
  /** Brings a record in line with what is observed (lockFree: nobody holds its lock). */
  refresh(record: SandboxRecord, lockFree?: boolean): Promise<void>;
  /** One sandbox with its observed status. */
  inspect(ref: string): Promise<SandboxInfo>;
  /** Records how a sandbox whose init is gone ended. */
  recordEnd(record: SandboxRecord, end: InitEnd): Promise<void>;
  /** The platform an existing sandbox runs on. */
  platformOf(record: SandboxRecord): Promise<Platform>;
}
