// Checkpoint, restore and fork (E2B's pause-with-memory, resume and fork): a running sandbox saved
// by its platform into a snapshot dir, and new sandboxes made from one (docs/gvisor.md).
import { HutchError } from '../errors.js';
import type { Platform, SandboxConfig } from '../platform/index.js';
import type { SandboxStore, SandboxLock } from './store.js';
import { requireStatus, type SandboxRecord } from './state.js';
import { SnapshotStore, type SnapshotInfo, type SnapshotMeta } from './snapshot-store.js';
import type { SandboxInfo } from './types.js';
import { checkLabels, checkName } from './state.js';

/** What checkpoints need of the engine. */
export interface SnapshotContext {
  readonly store: SandboxStore;
  readonly dataRoot: string;
  platform(name: string): Promise<Platform>;
  locked(ref: string, act: (record: SandboxRecord, platform: Platform) => Promise<void | 'removed'>): Promise<SandboxInfo>;
  configOf(r: SandboxRecord): SandboxConfig;
  noteInit(record: SandboxRecord, platform: Platform): void;
  inspect(ref: string): Promise<SandboxInfo>;
  remove(ref: string, force?: boolean): Promise<void>;
}

/** How a checkpoint is taken. */
export interface CheckpointOptions {
  /** Write the snapshot to this dir (new or empty) rather than under the data root. */
  to?: string;
  /** The sandbox goes on running (else it stops, as E2B's pause). */
  leaveRunning?: boolean;
}

/** How a sandbox is restored. */
export interface RestoreOptions { name?: string; labels?: Record<string, string> }

function unsupported(platform: Platform, verb: string, id?: string): HutchError {
  const why = platform.name === 'container'
    ? 'runc checkpoints only through CRIU, which hutch does not drive (and which fails on this kernel); make the sandbox with --platform gvisor'
    : `the ${platform.name} platform cannot checkpoint`;
  return new HutchError('EUNSUPPORTED', `${verb} is not supported on the ${platform.name} platform: ${why}`, id ? { id } : {});
}

/** Checkpoints and restores over an engine. */
export class Snapshots {
  readonly store: SnapshotStore;
  constructor(private readonly engine: SnapshotContext) {
    this.store = new SnapshotStore(engine.dataRoot);
  }

  /** Saves a running (or paused) sandbox; it stops unless `leaveRunning`. */
  async checkpoint(ref: string, opts: CheckpointOptions = {}): Promise<SnapshotInfo> {
    let snap: { id: string; dir: string; made: boolean } | undefined;
    let meta: SnapshotMeta | undefined;
    let resumeError: string | undefined;
    try {
      await this.engine.locked(ref, async (record, platform) => {
        requireStatus(record.id, record.phase, ['running', 'paused'], 'checkpoint');
        if (!platform.capabilities.checkpoint || !platform.checkpoint) throw unsupported(platform, 'checkpoint', record.id);
        if (record.mode !== 'agent') throw new HutchError('EUNSUPPORTED', `sandbox ${record.id} runs its command as init (a foreground run): only a sandbox with an agent is checkpointed`, { id: record.id });
        snap = this.store.allocate(opts.to);
        const result = await platform.checkpoint(record.handle!, snap.dir, opts.leaveRunning === true);
        meta = metaOf(snap.id, record, platform.name);
        if ('running' in result) {
          record.handle = result.running;
          record.phase = 'running';
          this.engine.noteInit(record, platform);
        } else {
          resumeError = result.resumeError;
          record.phase = 'stopped';
          record.finishedAt = new Date().toISOString();
          record.note = `checkpointed to snapshot ${snap.id}${opts.to ? ` (${snap.dir})` : ''}${resumeError ? `; it could not go on: ${resumeError}` : ''}`;
        }
        this.store.commit(snap.dir, meta);
      });
    } catch (e) {
      if (snap && !meta) this.store.discard(snap);
      throw e;
    }
    if (resumeError !== undefined) {
      const saved = opts.to ? snap!.dir : snap!.id;
      throw new HutchError('EEXEC', `sandbox ${ref} was checkpointed to snapshot ${saved} but could not go on after it (it is stopped; hutch restore ${saved} makes it again): ${resumeError}`, { id: ref });
    }
    return this.store.read(opts.to ? snap!.dir : snap!.id);
  }

  /** A new running sandbox from snapshot `ref` (an id or a dir); several from one snapshot are a fork. */
  async restore(ref: string, opts: RestoreOptions = {}): Promise<SandboxInfo> {
    const snap = this.store.read(ref);
    const platform = await this.engine.platform(snap.platform);
    if (!platform.capabilities.checkpoint || !platform.restore) throw unsupported(platform, 'restore');
    if (opts.name !== undefined) checkName(opts.name);
    const labels = checkLabels({ ...(snap.labels ?? {}), ...(opts.labels ?? {}) });
    let lock: SandboxLock | undefined;
    let id: string | undefined;
    try {
      const made = await this.engine.store.allocate(opts.name, (newId, name) => ({
        ...snap.settings, version: 1, id: newId, name, phase: 'creating', platform: snap.platform, createdAt: new Date().toISOString(),
        env: snap.settings.env.map((e) => (e.startsWith('HOSTNAME=') ? `HOSTNAME=${name}` : e)),
        ...(snap.image ? { image: snap.image } : {}), ...(Object.keys(labels).length ? { labels } : {}),
        ...(snap.mainPid !== undefined ? { mainPid: snap.mainPid } : {}),
      }));
      lock = made.lock;
      const record = made.record;
      id = record.id;
      record.handle = await platform.restore(this.engine.configOf(record), snap.dir);
      record.phase = 'running';
      record.startedAt = new Date().toISOString();
      this.engine.noteInit(record, platform);
      this.engine.store.write(record);
    } catch (e) {
      lock?.release();
      lock = undefined;
      if (id) {
        try {
          await this.engine.remove(id, true);
        } catch (cleanup) {
          throw new HutchError(e instanceof HutchError ? e.code : 'EINTERNAL', `${e instanceof Error ? e.message : String(e)}; removing the half-restored sandbox ${id} failed too (hutch rm -f ${id}): ${cleanup instanceof Error ? cleanup.message : String(cleanup)}`, { id, cause: e });
        }
      }
      throw e;
    } finally {
      lock?.release();
    }
    return this.engine.inspect(id);
  }
}

/** What a snapshot records of the sandbox it was taken of. */
function metaOf(id: string, r: SandboxRecord, platform: string): SnapshotMeta {
  const { id: sourceId, name, mode, rootfs, lowerDirs, env, cwd, user, limits, hardening, command, terminal, init } = r;
  return {
    version: 1, id, createdAt: new Date().toISOString(), source: { id: sourceId, name }, platform,
    settings: { mode, rootfs, env, cwd, user, limits, hardening, ...(lowerDirs ? { lowerDirs } : {}), ...(command ? { command } : {}), ...(terminal ? { terminal } : {}), ...(init ? { init } : {}) },
    ...(r.labels ? { labels: r.labels } : {}), ...(r.image ? { image: r.image } : {}), ...(r.mainPid !== undefined ? { mainPid: r.mainPid } : {}),
  };
}
