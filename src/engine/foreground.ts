// A one-shot run in the foreground (`hutch run` without -d): the command is the sandbox's init,
// with the caller's stdio; the engine records it while it runs and how it ended.
import { isHutchError } from '../errors.js';
import type { Platform, SandboxConfig } from '../platform/index.js';
import type { SandboxLock, SandboxStore } from './store.js';
import type { SandboxRecord } from './state.js';
import type { CreateOptions } from './types.js';
import { recordDirectExit } from './exit-status.js';
import { crashPoint } from '../faults.js';
import { traceMark } from '../trace.js';
import { attachNetwork } from './networks.js';

/** What a foreground run needs of the engine. */
export interface ForegroundContext {
  readonly store: SandboxStore;
  readonly platformName: string;
  newRecord(o: CreateOptions): Promise<(id: string, name: string) => SandboxRecord>;
  platform(name: string): Promise<Platform>;
  configOf(r: SandboxRecord): SandboxConfig;
  noteInit(record: SandboxRecord, platform: Platform): void;
  abandon(record: SandboxRecord, cause: unknown): Promise<void>;
  destroyLocked(record: SandboxRecord, markDeleting?: boolean): Promise<void>;
}

/** Runs `o` in the foreground with `stdio`; resolves to the command's exit code. The record stays unless `remove`. */
export async function runInForeground(engine: ForegroundContext, o: CreateOptions, stdio: ('inherit' | 'ignore')[], remove: boolean): Promise<{ id: string; exitCode: number }> {
  traceMark('engine: runForeground');
  const initial = await engine.newRecord({ ...o, mode: 'direct' });
  const platform = await engine.platform(o.platform ?? engine.platformName);
  traceMark('engine: platform loaded');
  const { record, lock } = await engine.store.allocate(o.name, initial);
  traceMark('engine: allocated');
  let exitCode: number;
  let oomKilled: boolean;
  try {
    await attachNetwork(engine.store, record);
    const result = await platform.runForeground(engine.configOf(record), stdio, (handle) => {
      record.handle = handle;
      engine.noteInit(record, platform);
      record.phase = 'running';
      record.startedAt = new Date().toISOString();
      engine.store.write(record);
      crashPoint('run:started');
      // Others may look at (ls) or stop (rm -f) a running sandbox while we wait for it.
      lock.release();
    });
    exitCode = result.exitCode;
    oomKilled = result.oomKilled;
    traceMark('engine: command exited');
  } catch (e) {
    lock.release();
    const relock = await engine.store.lock(record.id, 'exclusive');
    await engine.abandon(record, e);
    relock.release();
    throw e;
  }
  let relock: SandboxLock;
  try {
    relock = await engine.store.lock(record.id, 'exclusive');
  } catch (e) {
    if (isHutchError(e, 'ENOTFOUND')) return { id: record.id, exitCode }; // removed meanwhile (rm -f)
    throw e;
  }
  try {
    const now = engine.store.read(record.id);
    if (now === null) return { id: record.id, exitCode };
    now.phase = 'stopped';
    recordDirectExit(now, exitCode, oomKilled);
    now.finishedAt = new Date().toISOString();
    if (remove) {
      await engine.destroyLocked(now, false);
      traceMark('engine: removed');
    } else {
      engine.store.write(now);
    }
  } finally {
    relock.release();
  }
  return { id: record.id, exitCode };
}
