// The engine: sandbox lifecycle over a platform, with state kept in the SandboxStore.
import { HutchError, errnoCode } from '../errors.js';
import { builtinPlatforms, platformEntry, type Platform, type PlatformCapabilities, type PlatformHandle, type PlatformRegistry, type SandboxConfig } from '../platform/index.js';
import { SandboxStore } from './store.js';
import type { CreateOptions, EngineOptions, SandboxInfo, SandboxUpdate } from './types.js';
import { checkTransition, requireStatus, type SandboxRecord, type SandboxStatus } from './state.js';
import { checkRootfsDir, isRootfsPath } from './options.js';
import { handleOf, observeInit } from './liveness.js';
import type { EngineContext } from './context.js';
import { applyUpdate, brokenRecord, configOf, interruptedStartNote, recordEnd, recordFactory, refreshRecord } from './records.js';
import type { InitEnd } from './exit-status.js';
import { sandboxLogs, type LogOptions } from './logs.js';
import { waitUntilStopped } from './waiting.js';
import { stopSandbox } from './stopping.js';
import { Snapshots } from './checkpoints.js';
import { runInForeground } from './foreground.js';
import { attachNetwork, changePolicy, detachNetwork, networkManager } from './networks.js';
import type { EgressPolicy, NetworkManager } from '../net/index.js';
import { crashPoint } from '../faults.js';
import { openImageService, type ImageService } from './images.js';
import { busyboxRootfs, resolveImage, userIn, type ResolvedRootfs } from './rootfs.js';

export const DEFAULT_ROOT = '/run/hutch';
export const DEFAULT_DATA_ROOT = '/var/lib/hutch';

/** Sandboxes: create, start, stop, delete, list. Process, file and resource calls live in SandboxCalls. */
export class Engine implements EngineContext {
  readonly store: SandboxStore;
  readonly dataRoot: string;
  private readonly registry: PlatformRegistry;
  private readonly platforms = new Map<string, Promise<Platform>>();
  private imageService?: Promise<ImageService>;
  private snapshotService?: Snapshots;
  /** The platform new sandboxes get unless they name one. */
  readonly platformName: string;
  /** The container platform's executor for new sandboxes; each sandbox keeps the one it was made with. */
  readonly executorName: string;
  private readonly selfCommand: string[] | undefined;
  private readonly offload: boolean;

  constructor(opts: EngineOptions = {}) {
    this.selfCommand = opts.selfCommand;
    this.offload = opts.offloadBlockingWork === true;
    this.store = new SandboxStore(opts.root ?? process.env.HUTCH_ROOT ?? DEFAULT_ROOT, { offload: this.offload });
    this.dataRoot = opts.dataRoot ?? process.env.HUTCH_DATA_ROOT ?? DEFAULT_DATA_ROOT;
    this.executorName = opts.executor ?? process.env.HUTCH_EXECUTOR ?? 'runc';
    this.registry = opts.platforms ?? builtinPlatforms;
    this.platformName = opts.platform ?? process.env.HUTCH_PLATFORM ?? 'container';
    platformEntry(this.registry, this.platformName);
  }

  /** The names of the platforms this engine knows, with one line about each. */
  knownPlatforms(): { name: string; summary: string }[] {
    return Object.entries(this.registry).map(([name, e]) => ({ name, summary: e.summary }));
  }

  /** Platform `name` (default: the engine's) with `executor`, loaded on first use. */
  platform(name = this.platformName, executor = this.executorName): Promise<Platform> {
    const entry = platformEntry(this.registry, name);
    const key = `${name}\0${executor}`;
    let p = this.platforms.get(key);
    if (!p) {
      p = entry.load({ stateRoot: this.store.root, dataRoot: this.dataRoot, executor, offload: this.offload });
      this.platforms.set(key, p);
      p.catch(() => this.platforms.delete(key));
    }
    return p;
  }

  /** The platform of an existing sandbox: the one it was made on, whatever the engine's default. */
  platformOf(record: SandboxRecord): Promise<Platform> {
    return this.platform(record.platform ?? record.handle?.platform ?? 'container', record.executor ?? this.executorName);
  }

  /** What platform `name` (default: the engine's) can do. */
  async capabilities(name = this.platformName): Promise<PlatformCapabilities> {
    return (await this.platform(name)).capabilities;
  }

  /** Null when sandboxes on `name` can have private id ranges here (probed on the busybox rootfs), else why not. */
  async privateIdsProblem(name = this.platformName): Promise<string | null> {
    const platform = await this.platform(name);
    if (!platform.capabilities.privateIds || !platform.privateIdsProblem) return `the ${name} platform has no private id ranges`;
    return platform.privateIdsProblem(await busyboxRootfs(this.dataRoot));
  }

  /** Builds what sandboxes need ahead of time: the busybox rootfs and what the platform needs (its agent runtime). */
  async setup(name = this.platformName): Promise<{ rootfs: string; runtime: string }> {
    const rootfs = await this.resolveRootfs('busybox');
    const made = await (await this.platform(name)).setup();
    return { rootfs, runtime: made['runtime'] ?? '' };
  }

  /** Checkpoint, restore and the snapshots of this data root. */
  snapshots(): Snapshots {
    return (this.snapshotService ??= new Snapshots(this));
  }

  /** The image store, with the sandboxes' view of what is in use (loaded on first use). */
  async images(): Promise<ImageService> {
    // A snapshot holds its image's layers as a sandbox does: a restore needs them.
    const holders = () => [
      ...this.store.ids().map((id) => this.store.read(id)).filter((x): x is SandboxRecord => x !== null),
      ...this.snapshots().store.metas().map((m) => ({ id: `snapshot ${m.id}`, ...(m.image ? { image: m.image } : {}), ...(m.settings.lowerDirs ? { lowerDirs: m.settings.lowerDirs } : {}) })),
    ];
    this.imageService ??= openImageService(this.dataRoot, holders);
    return this.imageService;
  }

  /** Resolves what a sandbox is made from: busybox, a rootfs dir, or an image (pulled per `pull`). */
  async resolveSandboxRootfs(o: Pick<CreateOptions, 'rootfs' | 'pull' | 'pullProgress'>): Promise<ResolvedRootfs> {
    if (o.rootfs === 'busybox' || isRootfsPath(o.rootfs)) return { rootfs: await this.resolveRootfs(o.rootfs) };
    return resolveImage(await this.images(), o.rootfs, o.pull ?? 'missing', o.pullProgress);
  }

  /** Resolves `busybox` to the embedded rootfs (building it if needed) or checks a rootfs dir. */
  async resolveRootfs(rootfs: string): Promise<string> {
    return rootfs === 'busybox' ? busyboxRootfs(this.dataRoot) : checkRootfsDir(rootfs);
  }

  /** Checks options and builds the maker of a sandbox's first record (for the engine's helpers). */
  async newRecord(o: CreateOptions): Promise<(id: string, name: string) => SandboxRecord> {
    const resolved = await this.resolveSandboxRootfs(o);
    // The caller's user, else the image's User: looked up only when it applies (as docker's -u overrides a broken one).
    const spec = o.user === undefined ? resolved.image?.config.User || undefined : o.user;
    const platform = o.platform ?? this.platformName;
    const { capabilities } = await this.platform(platform);
    if (o.hardening?.idRange === 'private' && !capabilities.privateIds) {
      throw new HutchError('EUNSUPPORTED', `the ${platform} platform cannot give a sandbox a private id range: use the shared one (--id-range shared)`);
    }
    return recordFactory({ ...o, ...(typeof spec === 'string' ? { user: await userIn(resolved, spec) } : {}) }, resolved, platform, this.executorName);
  }

  /** What the platform gets to make the sandbox of `r`. */
  configOf(r: SandboxRecord): SandboxConfig {
    const cfg = configOf(r, this.store.dir(r.id));
    // Auto-removal is a plain `hutch rm` (never -f) run when the init is gone: a stopped sandbox goes.
    if (r.autoRemove) cfg.onExit = [...this.selfCommand!, '--root', this.store.root, 'rm', r.id];
    return cfg;
  }

  /** Brings a record in line with reality (see refreshRecord). */
  async refresh(record: SandboxRecord, lockFree = true): Promise<void> {
    if (record.phase === 'stopped') return; // nothing more can happen to it
    const platform = await this.platformOf(record);
    if (refreshRecord(record, () => observeInit(platform, record, this.store.dir(record.id)), lockFree)) await this.recordEnd(record, 'gone');
    // A ready sandbox whose init was started, with nobody holding its lock: the hutch starting it died.
    if (record.phase === 'ready' && lockFree && record.handle && platform.initStarted(record.handle)) {
      record.note = interruptedStartNote(record.id);
    }
  }

  /** Records how a sandbox whose init is gone ended (exit code, signal, OOM kill, or its agent died). */
  async recordEnd(record: SandboxRecord, end: InitEnd): Promise<void> {
    const platform = await this.platformOf(record);
    const handle = handleOf(platform, record, this.store.dir(record.id));
    const oomKills = record.handle ? await platform.oomKills(record.handle) : null;
    recordEnd(record, () => platform.exitRecord(handle), oomKills, end);
  }

  /** Notes the init's pid and start time as the platform sees them now (a reused pid is then not ours). */
  noteInit(record: SandboxRecord, platform: Platform): void {
    // Not against the start time recorded before: a restore in place has a new init.
    const obs = platform.observeInit(handleOf(platform, record, this.store.dir(record.id)));
    if (obs.pid !== undefined) record.initPid = obs.pid;
    if (obs.startTime !== undefined) record.initStartTime = obs.startTime;
  }

  /** Creates a sandbox in state `ready` (agent mode: its init waits for start). */
  async create(o: CreateOptions): Promise<SandboxInfo> {
    if ((o.mode ?? 'agent') !== 'agent') throw new HutchError('EINVAL', 'create makes agent sandboxes; direct mode is for run');
    if (o.autoRemove && !this.selfCommand) throw new HutchError('EINVAL', 'auto-removal needs the engine to know how to run hutch (EngineOptions.selfCommand)');
    const initial = await this.newRecord(o);
    const platform = await this.platform(o.platform ?? this.platformName);
    const { record, lock } = await this.store.allocate(o.name, initial);
    try {
      crashPoint('create:allocated');
      await attachNetwork(this.store, record);
      crashPoint('create:network');
      record.handle = await platform.create(this.configOf(record));
      crashPoint('create:executor');
      record.phase = 'ready';
      this.store.write(record);
      return this.withStatus(record);
    } catch (e) {
      await this.abandon(record, e);
      throw e;
    } finally {
      lock.release();
    }
  }

  /** Undoes a failed create: everything the platform made goes, and so does the record. */
  async abandon(record: SandboxRecord, cause: unknown): Promise<void> {
    try {
      const platform = await this.platformOf(record);
      await platform.destroy(handleOf(platform, record, this.store.dir(record.id)));
      await detachNetwork(record);
      await this.store.remove(record.id, record.name);
    } catch (cleanupError) {
      // Keep the record so that `hutch rm -f` can finish the job; say why on it.
      record.phase = 'stopped';
      record.note = `create failed (${cause instanceof Error ? cause.message : String(cause)}); cleanup failed: ${cleanupError instanceof Error ? cleanupError.message : String(cleanupError)}`;
      this.store.write(record);
    }
  }

  /** Starts a ready sandbox: the agent comes up, then the main command (if any) is started. */
  async start(ref: string): Promise<SandboxInfo> {
    let started: SandboxRecord | undefined;
    const info = await this.locked(ref, async (record, platform) => {
      const id = record.id;
      if (record.phase === 'stopped') {
        // A sandbox runs once (its init is gone and cannot come back): say what to do instead.
        throw new HutchError('ESTATE', `cannot start sandbox ${id}: it is stopped, and a stopped sandbox cannot run again; remove it (hutch rm ${ref}) and make a new one (hutch run, or hutch create and start)`, { id });
      }
      checkTransition(id, record.phase, 'running', 'start');
      await platform.start(record.handle!, record.mode);
      crashPoint('start:started');
      record.phase = 'running';
      record.startedAt = new Date().toISOString();
      if (record.note === interruptedStartNote(id)) delete record.note;
      this.noteInit(record, platform);
      this.store.write(record);
      if (record.mode === 'agent' && record.command) await this.startMain(record, platform);
      started = record;
    });
    return started ? this.withStatus(started) : info;
  }

  /**
   * The lock → read → refresh → act → write sequence of a verb that changes a sandbox: `act` gets
   * the refreshed record and its platform under the exclusive lock; the record is written after it
   * unless it says 'removed'. `orBroken` stands a broken record in for a missing one (rm).
   */
  async locked(ref: string, act: (record: SandboxRecord, platform: Platform) => Promise<void | 'removed'>, orBroken = false): Promise<SandboxInfo> {
    const id = this.store.resolve(ref);
    const lock = await this.store.lock(id, 'exclusive');
    try {
      const record = orBroken ? this.store.read(id) ?? brokenRecord(id) : this.mustRead(id);
      await this.refresh(record);
      if ((await act(record, await this.platformOf(record))) !== 'removed') this.store.write(record);
      return this.withStatus(record);
    } finally {
      lock.release();
    }
  }

  /** Starts the main command through the agent; if it cannot start, the sandbox is stopped. */
  private async startMain(record: SandboxRecord, platform: Platform): Promise<void> {
    const client = await platform.connect(record.handle!);
    try {
      const env = Object.fromEntries(record.env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
      const proc = await client.exec({ argv: record.command!, env, cwd: record.cwd, uid: record.user.uid, gid: record.user.gid, stdin: false, main: true });
      record.mainPid = proc.pid;
      this.store.write(record);
    } catch (e) {
      record.note = `main command failed to start: ${e instanceof Error ? e.message : String(e)}`;
      await stopSandbox(this, record, 0);
      this.store.write(record);
      throw e;
    } finally {
      client.close();
    }
  }

  /** Waits until the sandbox's init is gone; returns the final record. */
  waitStopped(ref: string, signal?: AbortSignal): Promise<SandboxInfo> {
    return waitUntilStopped(this, ref, signal);
  }

  /**
   * Direct mode in the foreground (`hutch run` without an agent): the command is the sandbox's
   * init, with the caller's stdio; resolves to its exit code. The record stays unless `remove`.
   */
  runForeground(o: CreateOptions, stdio: ('inherit' | 'ignore')[], remove: boolean): Promise<{ id: string; exitCode: number }> {
    return runInForeground(this, o, stdio, remove);
  }

  /** Stops a sandbox: SIGTERM to every process, SIGKILL after `graceMs`. */
  async stop(ref: string, graceMs = 10_000): Promise<SandboxInfo> {
    return this.locked(ref, async (record) => {
      if (record.phase === 'stopped') return;
      checkTransition(record.id, record.phase, 'stopped', 'stop');
      await stopSandbox(this, record, graceMs);
    });
  }

  /** Pauses (freezes) a running sandbox. */
  async pause(ref: string): Promise<SandboxInfo> {
    return this.transition(ref, 'paused', 'pause', async (p, h) => p.pause(h));
  }

  /** Resumes a paused sandbox. */
  async resume(ref: string): Promise<SandboxInfo> {
    return this.transition(ref, 'running', 'resume', async (p, h) => p.resume(h));
  }

  private async transition(ref: string, to: SandboxStatus, verb: string, act: (p: Platform, h: PlatformHandle) => Promise<void>): Promise<SandboxInfo> {
    return this.locked(ref, async (record, platform) => {
      checkTransition(record.id, record.phase, to, verb);
      await act(platform, record.handle!);
      record.phase = to;
    });
  }

  /** Removes sandboxes; running or paused ones only with `force` (they are killed first). */
  async remove(ref: string, force = false): Promise<void> {
    await this.locked(ref, async (record) => {
      if (record.phase !== 'stopped' && !force) {
        throw new HutchError('ESTATE', `cannot remove sandbox ${record.id}: it is ${record.phase}; stop it first or use rm -f`, { id: record.id });
      }
      await this.destroyLocked(record);
      return 'removed';
    }, true);
  }

  /**
   * Removes everything of a sandbox. `markDeleting` records the phase first, so that a crash midway
   * shows as an interrupted delete; a finished one-shot run skips it (a crash then leaves a record
   * whose init is gone, which shows as stopped and `rm -f` removes just the same).
   */
  async destroyLocked(record: SandboxRecord, markDeleting = true): Promise<void> {
    if (markDeleting) {
      if (record.phase !== 'creating' && record.phase !== 'deleting') record.deletingFrom = record.phase;
      record.phase = 'deleting';
      try {
        this.store.write(record);
      } catch (e) {
        // A full disk (often this sandbox's own doing) must not stop the removal that frees it: the
        // phase only tells a later `ls` that a crash interrupted a delete.
        if (errnoCode(e) !== 'ENOSPC' && errnoCode(e) !== 'EDQUOT') throw e;
      }
      crashPoint('delete:deleting');
    }
    const platform = await this.platformOf(record);
    await platform.destroy(handleOf(platform, record, this.store.dir(record.id)));
    await detachNetwork(record);
    crashPoint('delete:destroyed');
    await this.store.remove(record.id, record.name);
  }

  /**
   * Changes what later execs of a sandbox get (env merged over its own, working dir) and its labels
   * (a value sets, null removes). A warm pool's sandbox becomes its claimer's this way.
   */
  async update(ref: string, patch: SandboxUpdate): Promise<SandboxInfo> {
    return this.locked(ref, async (record) => applyUpdate(record, patch));
  }

  /** Replaces the egress policy of a sandbox on a network; it holds from the next packet. */
  async setNetworkPolicy(ref: string, policy: EgressPolicy): Promise<SandboxInfo> {
    return this.locked(ref, async (record) => {
      if (!record.network) throw new HutchError('ESTATE', `sandbox ${record.id} is on no network (none or host): it has no egress policy`, { id: record.id });
      requireStatus(record.id, record.phase, ['ready', 'running', 'paused'], 'change the policy of');
      await changePolicy(record, policy);
    });
  }

  /** The network layer: networks to create, list and remove (docs/network.md). */
  networks(): Promise<NetworkManager> {
    return networkManager();
  }

  /** Writes the main command's output (`hutch logs`) to `out`; see sandboxLogs. */
  logs(ref: string, out: (chunk: Buffer) => void, opts: LogOptions = {}): Promise<void> {
    return sandboxLogs(this, ref, out, opts);
  }

  /** The record of `id`; an error if it vanished. */
  mustRead(id: string): SandboxRecord {
    const r = this.store.read(id);
    if (r === null) throw new HutchError('ESTATE', `sandbox ${id} has no valid state record (interrupted create?): remove it with rm -f`, { id });
    return r;
  }

  /** Every sandbox with its observed status; never blocks on a busy sandbox. */
  async list(): Promise<SandboxInfo[]> {
    const out: SandboxInfo[] = [];
    for (const id of this.store.ids()) {
      const lock = this.store.tryLock(id, 'shared');
      try {
        const record = this.store.read(id) ?? (lock ? brokenRecord(id) : null);
        if (record === null) continue; // being made right now: no record yet
        await this.refresh(record, lock !== null);
        out.push(this.withStatus(record));
      } finally {
        lock?.release();
      }
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** One sandbox with its observed status. */
  async inspect(ref: string): Promise<SandboxInfo> {
    const id = this.store.resolve(ref);
    const lock = this.store.tryLock(id, 'shared');
    try {
      const record = this.store.read(id) ?? brokenRecord(id);
      await this.refresh(record, lock !== null);
      return this.withStatus(record);
    } finally {
      lock?.release();
    }
  }

  private withStatus(record: SandboxRecord): SandboxInfo {
    return { ...record, platform: record.platform ?? record.handle?.platform ?? 'container', status: record.phase };
  }
}
