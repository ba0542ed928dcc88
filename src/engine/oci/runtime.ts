// hutch as an OCI runtime: a policy and state layer over the executor (runc or crun). hutch
// validates the caller's bundle, keeps its own record per container under the caller's --root,
// gives the executor a private bundle (hutch's profile, pod namespaces), and passes the caller's
// stdio, fds, pid file and console socket straight through, so the container is the caller's.
import fs from 'node:fs';
import path from 'node:path';
import { HutchError, isHutchError } from '../../errors.js';
import { traceMark } from '../../trace.js';
import { detectCgroupMode } from '../../linux/cgroups.js';
import type { FileLock } from '../../linux/filelock.js';
import type { Spec } from '../../oci/index.js';
import { makeExecutor, runAttached, runCaptured, type OciExecutor } from '../../platform/container/oci-passthrough.js';
import { builtinPlatforms, platformEntry } from '../../platform/registry.js';
import type { JoinedNamespace } from './bundle.js';
import { bundleTarget } from './bundle-target.js';
import { writeDirectFile } from './direct.js';
import { OciStore, checkContainerId, type OciRecord } from './store.js';

/** The platform annotation: a platform name (container by default; docs/platforms.md). */
export const PLATFORM_ANNOTATION = 'dev.hutch.platform';

/** How the runtime was called: the caller's --root and the global flags the executor must see too. */
export interface OciRuntimeOptions {
  root: string;
  /** Executor for new containers: runc (default) or crun. */
  executor: string;
  /** The --platform flag, if given. */
  platform?: string;
  /** The caller's --log, --log-format, --debug, --systemd-cgroup, passed on to the executor. */
  executorGlobals: string[];
  /** The caller's --rootless value: passed on to runc only (crun has no such flag). */
  rootless?: string;
}

/** A create or run request with runc's flags. */
export interface CreateRequest {
  id: string;
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  noPivot?: boolean;
  noNewKeyring?: boolean;
  preserveFds?: number;
  /** run only: return once started; keep: do not delete the container when it exits. */
  detach?: boolean;
  keep?: boolean;
  /** restore only: the checkpoint's dir (and runc's work dir, which runsc also takes). */
  imagePath?: string;
  workPath?: string;
}

/** What `state` prints: the OCI state with the caller's bundle. */
export interface OciState {
  ociVersion: string; id: string; pid: number; status: string; bundle: string; rootfs: string;
  created: string; owner: string; annotations?: Record<string, string>;
}

/** The OCI runtime over one state root. */
export class OciRuntime {
  readonly store: OciStore;
  private readonly executors = new Map<string, OciExecutor>();

  constructor(readonly opts: OciRuntimeOptions) {
    this.store = new OciStore(opts.root);
  }

  /** The executor of a container (or of new ones), with its state under `<root>/.executor`. */
  executor(name: string = this.opts.executor): OciExecutor {
    let e = this.executors.get(name);
    if (!e) {
      // crun needs the host's cgroup layout (it is wrapped on hybrid hosts); runc does not.
      const mode = name === 'crun' ? detectCgroupMode() : 'v1';
      e = makeExecutor(name, this.store.executorRoot, mode);
      this.executors.set(name, e);
    }
    return e;
  }

  /** `create` or `run`: validates the bundle, writes the private one and has the executor make the container. */
  async create(verb: 'create' | 'run' | 'restore', req: CreateRequest): Promise<number> {
    checkContainerId(req.id);
    const callerBundle = path.resolve(req.bundle);
    // Validation, profiles and pods are loaded only here: the other verbs never need them.
    const [{ loadBundleSpec }, { hasHooks, privateSpec, unraisableHardLimits, writePrivateBundle }, { podMembershipOf, withoutPodAnnotations }] = await Promise.all([
      import('../../oci/validate.js'), import('./bundle.js'), import('./pod.js'),
    ]);
    traceMark('oci create: modules loaded');
    const spec = await loadBundleSpec(callerBundle);
    const platform = this.platformOf(spec);
    if (verb === 'restore' && platform.executor !== 'runsc') throw new HutchError('EUNSUPPORTED', `restore is not supported on the ${platform.name} platform: runc restores only through CRIU (criu check fails on this kernel); gvisor containers restore (--platform gvisor)`, { id: req.id });    const pod = podMembershipOf(req.id, spec);
    // A gVisor sandbox has a kernel of its own: there are no host namespaces of the pod to join.
    const join = pod?.role === 'container' && platform.executor !== 'runsc' ? await this.podNamespaces(pod.sandboxId, spec) : [];
    const executorSpec = privateSpec(spec, callerBundle, { join, hardLimits: unraisableHardLimits() });
    if (platform.executor === 'runsc') withoutPodAnnotations(executorSpec);
    traceMark('oci create: spec ready');
    const lock = await this.store.claim(req.id);
    traceMark('oci create: claimed');
    const executor = this.executor(platform.executor);
    const target = await bundleTarget(executor.name, this.store, req.id, callerBundle, hasHooks(spec));
    const record: OciRecord = {
      version: 1, id: req.id, bundle: callerBundle, executor: executor.name, platform: platform.name,
      phase: 'creating', created: new Date().toISOString(), ...(pod ? { pod } : {}),
      ...(target.reported ? { executorBundle: target.reported } : {}),
    };
    let code: number;
    try {
      this.store.write(record, false);
      writePrivateBundle(this.store.bundleDir(req.id), executorSpec);
      const bundleFlags = target.flags();
      if (verb !== 'create') {
        // The executor makes and starts the container in one go; other verbs may act on it meanwhile.
        record.phase = 'ready';
        this.store.write(record);
        lock.release();
      }
      traceMark('oci create: bundle written');
      try {
        code = await runAttached(executor, [verb, ...bundleFlags, ...this.createFlags(verb, req), req.id], {
          extraGlobals: this.globalsFor(executor), extraFds: preservedFdCount(req.preserveFds), ...(target.env ? { env: target.env } : {}),
        });
      } finally {
        await target.release();
      }
      traceMark('oci create: executor done');
      // Still under the lock: a delete waiting for it must find the container whole (and gone, no
      // later write may bring back its record or direct file, nor land in a new container's dir).
      if (verb === 'create' && code === 0) this.markReady(record, executor);
    } catch (e) {
      await this.discard(req.id, executor);
      throw e;
    } finally {
      lock.release();
    }
    if (verb === 'create' || req.detach) {
      if (code !== 0) {
        await this.discard(req.id, executor);
        return code;
      }
      if (verb !== 'create') await this.markDetachedRunReady(record, executor);
      return code;
    }
    // A foreground run: the executor deleted the container when it exited, unless --keep.
    if (!req.keep || (await this.executorState(req.id, executor)) === null) await this.discard(req.id, executor);
    return code;
  }

  /** Records a made container as ready and writes its direct file (the caller holds its lock). */
  private markReady(record: OciRecord, executor: OciExecutor): void {
    record.phase = 'ready';
    // Not synced: after a power cut the container is gone anyway, and a record that lost its
    // `ready` reads as unfinished, which delete removes just the same (fsync: ~1.5 ms on disk).
    this.store.write(record, false);
    writeDirectFile(this.store.dir(record.id), record, executor);
  }

  /**
   * After `run --detach` (made without the lock, so others could act meanwhile): the direct file,
   * under the lock again, if the container is still this one. When a delete removed it while the
   * executor was making it, that delete may have come before the executor knew the id: the
   * executor's container goes too, else it would run on with nothing of hutch's left to reach it.
   */
  private async markDetachedRunReady(record: OciRecord, executor: OciExecutor): Promise<void> {
    let lock: FileLock;
    try {
      lock = await this.store.lock(record.id);
    } catch (e) {
      if (!isHutchError(e, 'ENOTFOUND')) throw e;
      await this.forgetExecutorContainer(record.id, executor);
      return;
    }
    try {
      const now = this.store.read(record.id);
      // Another container of the same id (this one was deleted, and its id taken again) is left alone.
      if (now === null || now === 'broken' || now.created !== record.created || now.bundle !== record.bundle) return;
      this.markReady(record, executor);
    } finally {
      lock.release();
    }
  }

  /** The executor's `delete --force` of a container hutch no longer has; one it does not know is fine. */
  private async forgetExecutorContainer(id: string, executor: OciExecutor): Promise<void> {
    const r = await runCaptured(executor, ['delete', '--force', id]);
    if (r.code !== 0 && !/does not exist/.test(r.stderr)) {
      throw new HutchError('EEXEC', `cannot clean up container ${id}: ${executorMessage(r.stderr)}`, { id });
    }
  }

  private createFlags(verb: 'create' | 'run' | 'restore', req: CreateRequest): string[] {
    const flags: string[] = [];
    if (verb === 'restore') {
      // runsc's restore takes these of runc's (CRIU's tuning flags have no meaning to it).
      if (req.imagePath !== undefined) flags.push('--image-path', path.resolve(req.imagePath));
      if (req.workPath !== undefined) flags.push('--work-path', path.resolve(req.workPath));
      if (req.pidFile !== undefined) flags.push('--pid-file', path.resolve(req.pidFile));
      if (req.consoleSocket !== undefined) flags.push('--console-socket', path.resolve(req.consoleSocket));
      if (req.detach) flags.push('--detach');
      return flags;
    }
    if (req.pidFile !== undefined) flags.push('--pid-file', path.resolve(req.pidFile));
    if (req.consoleSocket !== undefined) flags.push('--console-socket', path.resolve(req.consoleSocket));
    if (req.noPivot) flags.push('--no-pivot');
    if (req.noNewKeyring) flags.push('--no-new-keyring');
    if (req.preserveFds) flags.push('--preserve-fds', String(req.preserveFds));
    if (verb === 'run' && req.detach) flags.push('--detach');
    if (verb === 'run' && req.keep) flags.push('--keep');
    return flags;
  }

  /** Removes every trace of a container whose create failed or whose run ended: executor state, dir. */
  private async discard(id: string, executor: OciExecutor): Promise<void> {
    await this.forgetExecutorContainer(id, executor);
    await this.removeDir(id);
  }

  /** Removes a container's dir, after taking down a caller view that a crash mid-create left mounted. */
  private async removeDir(id: string): Promise<void> {
    if (fs.existsSync(this.store.callerViewDir(id))) (await import('./caller-view.js')).releaseCallerView(this.store.dir(id));
    this.store.remove(id);
  }

  /** The platform a bundle asks for (its annotation, else --platform, else container) and the executor that runs it there. */
  private platformOf(spec: Spec): { name: string; executor: string } {
    const name = spec.annotations?.[PLATFORM_ANNOTATION] ?? this.opts.platform ?? 'container';
    const entry = platformEntry(builtinPlatforms, name);
    if (!entry.ociExecutor) throw new HutchError('EUNSUPPORTED', `the ${name} platform cannot run OCI bundles`);
    return { name, executor: entry.ociExecutor(this.opts.executor) };
  }

  /**
   * The namespaces of a pod's sandbox container that a container of the pod joins: those its spec
   * asks for without a path (containerd's CRI and podman set the paths themselves).
   */
  private async podNamespaces(sandboxId: string, spec: Spec): Promise<JoinedNamespace[]> {
    const { POD_SHARED_NAMESPACES, isPodSandbox } = await import('./pod.js');
    const wanted = POD_SHARED_NAMESPACES.filter((ns) => spec.linux?.namespaces?.some((n) => n.type === ns.type && n.path === undefined));
    if (wanted.length === 0) return [];
    const record = this.podSandbox(sandboxId, isPodSandbox);
    if (!record) throw new HutchError('ENOTFOUND', `pod sandbox ${sandboxId} does not exist`, { id: sandboxId });
    const state = await this.executorState(record.id, this.executor(record.executor));
    if (!state || state.pid <= 0 || state.status === 'stopped') {
      throw new HutchError('ESTATE', `pod sandbox ${sandboxId} is not running`, { id: record.id });
    }
    return wanted.map((ns) => ({ type: ns.type, path: `/proc/${state.pid}/ns/${ns.file}` }));
  }

  private podSandbox(sandboxId: string, isPodSandbox: (r: OciRecord, sandboxId: string) => boolean): OciRecord | undefined {
    const direct = /^[\w+,.-]+$/.test(sandboxId) && !sandboxId.startsWith('.') ? this.store.read(sandboxId) : null;
    if (direct !== null && direct !== 'broken' && isPodSandbox(direct, sandboxId)) return direct;
    for (const id of this.store.ids()) {
      const r = this.store.read(id);
      if (r !== null && r !== 'broken' && isPodSandbox(r, sandboxId)) return r;
    }
    return undefined;
  }

  /** The executor's state of `id`, or null when it does not know the container. */
  async executorState(id: string, executor: OciExecutor): Promise<OciState | null> {
    const r = await runCaptured(executor, ['state', id]);
    if (r.code === 0) return JSON.parse(r.stdout) as OciState;
    if (/does not exist/.test(r.stderr)) return null;
    throw new HutchError('EEXEC', executorMessage(r.stderr), { id });
  }

  /** `state ID`: the executor's state with the caller's bundle; a container the executor lost is stopped. */
  async state(id: string): Promise<OciState> {
    const record = this.store.get(id);
    const executor = this.executor(record === 'broken' ? undefined : record.executor);
    const s = await this.executorState(id, executor);
    if (record === 'broken') return { ...(s ?? lostState(id, '')), bundle: '' };
    if (s === null) return lostState(id, record.bundle, record.created);
    return { ...s, bundle: record.bundle };
  }

  /** `list`: every container under the root, from one executor call per executor. */
  async list(): Promise<OciState[]> {
    const ids = this.store.ids();
    const byExecutor = new Map<string, Map<string, OciState>>();
    const out: OciState[] = [];
    for (const id of ids) {
      const record = this.store.read(id);
      if (record === null) continue;
      const name = record === 'broken' ? this.opts.executor : record.executor;
      if (!byExecutor.has(name)) byExecutor.set(name, await this.executorList(this.executor(name)));
      const s = byExecutor.get(name)!.get(id);
      const bundle = record === 'broken' ? '' : record.bundle;
      // runsc's list has no created, rootfs or owner: runc's fields are filled in from the record.
      const base = lostState(id, bundle, record === 'broken' ? undefined : record.created);
      out.push(s ? { ...base, ...s, bundle } : base);
    }
    return out;
  }

  private async executorList(executor: OciExecutor): Promise<Map<string, OciState>> {
    const r = await runCaptured(executor, ['list', '--format', 'json']);
    if (r.code !== 0) throw new HutchError('EEXEC', executorMessage(r.stderr));
    const list = (JSON.parse(r.stdout || 'null') as OciState[] | null) ?? [];
    return new Map(list.map((s) => [s.id, s]));
  }

  /**
   * Runs an executor verb on a known container with the caller's stdio and flags as given
   * (start, kill, exec, ps, pause, resume, events, update); resolves to its exit status.
   */
  async passThrough(id: string, verbArgs: string[], extraFds = 0): Promise<number> {
    const record = this.store.get(id);
    const executor = this.executor(record === 'broken' ? undefined : record.executor);
    if (executor.name === 'runsc' && verbArgs[0] === 'kill') {
      // runsc says "sandbox is not running" where runc says "container not running", the words
      // containerd's shim takes for a kill that has nothing left to do.
      const s = await this.executorState(id, executor);
      if (s === null || s.status === 'stopped') throw new HutchError('ESTATE', 'container not running', { id });
    }
    return runAttached(executor, verbArgs, { extraGlobals: this.globalsFor(executor), extraFds });
  }

  /**
   * `checkpoint`: runsc's, for a gvisor container (the container stops; runsc 2022-12's own
   * --leave-running blocks until the container exits, so it is refused); CRIU's otherwise: refused.
   */
  async checkpoint(id: string, opts: { imagePath?: string; workPath?: string; leaveRunning: boolean }, criuProblem: () => string | null): Promise<number> {
    const record = this.store.get(id);
    const executor = this.executor(record === 'broken' ? undefined : record.executor);
    if (executor.name !== 'runsc') throw new HutchError('EUNSUPPORTED', `checkpoint is not supported on this platform: ${criuProblem() ?? 'hutch does not checkpoint containers yet'}`, { id });
    if (opts.leaveRunning) throw new HutchError('EUNSUPPORTED', 'checkpoint --leave-running is not supported on the gvisor platform (runsc 2022-12 blocks until the container exits): checkpoint, then restore', { id });
    if (opts.imagePath === undefined) throw new HutchError('EINVAL', 'checkpoint needs --image-path DIR', { id });
    const args = ['checkpoint', '--image-path', path.resolve(opts.imagePath), ...(opts.workPath ? ['--work-path', path.resolve(opts.workPath)] : []), id];
    return runAttached(executor, args, { extraGlobals: this.globalsFor(executor) });
  }

  /** The caller's global flags as `executor` takes them: --rootless goes to runc only, whichever made the container. */
  private globalsFor(executor: OciExecutor): string[] {
    const rootless = this.opts.rootless;
    return rootless !== undefined && executor.name === 'runc' ? [...this.opts.executorGlobals, '--rootless', rootless] : this.opts.executorGlobals;
  }

  /**
   * The executor's `features` document (null when it has no such verb: crun 1.8), its version
   * line, and the runtime-spec version it implements (the `spec:` line of its `--version`).
   */
  async executorFeatures(): Promise<{ features: Record<string, unknown> | null; version: string; specVersion?: string }> {
    const executor = this.executor();
    const versionCall = await runCaptured(executor, ['--version']);
    if (versionCall.code !== 0) throw new HutchError('EEXEC', `${executor.name} --version: ${executorMessage(versionCall.stderr)}`);
    const lines = versionCall.stdout.split('\n');
    const version = lines[0] || executor.name;
    const specVersion = lines.map((l) => /^spec: (\S+)$/.exec(l.trim())?.[1]).find((v) => v !== undefined);
    const r = await runCaptured(executor, ['features']);
    const features = r.code === 0 ? JSON.parse(r.stdout) as Record<string, unknown> : null;
    return { features, version, ...(specVersion ? { specVersion } : {}) };
  }

  /** `delete [--force] ID`; deleting a pod's sandbox deletes the pod's other containers first. */
  async delete(id: string, force: boolean): Promise<void> {
    let lock: FileLock;
    try {
      lock = await this.store.lock(id);
    } catch (e) {
      // As runc: `delete --force` of a container that does not exist succeeds (dockerd's shim asks
      // for one after every delete).
      if (force && isHutchError(e, 'ENOTFOUND')) return;
      throw e;
    }
    try {
      const record = this.store.get(id);
      const executor = this.executor(record === 'broken' ? undefined : record.executor);
      if (record !== 'broken' && record.pod?.role === 'sandbox') {
        if (!force) await this.checkStopped(id, executor);
        for (const member of this.podMembers(record)) await this.deleteMember(member);
      }
      await this.deleteOne(id, executor, force, record === 'broken' || record.phase !== 'ready');
    } finally {
      lock.release();
    }
  }

  private async checkStopped(id: string, executor: OciExecutor): Promise<void> {
    const s = await this.executorState(id, executor);
    if (s && (s.status === 'running' || s.status === 'paused')) {
      throw new HutchError('ESTATE', `cannot delete container ${id} that is not stopped: ${s.status}`, { id });
    }
  }

  private podMembers(sandbox: OciRecord): OciRecord[] {
    const members: OciRecord[] = [];
    for (const other of this.store.ids()) {
      const r = this.store.read(other);
      if (r === null || r === 'broken' || r.pod?.role !== 'container') continue;
      if (r.pod.sandboxId === sandbox.id || r.pod.sandboxId === sandbox.pod!.sandboxId) members.push(r);
    }
    return members;
  }

  private async deleteMember(member: OciRecord): Promise<void> {
    const lock = await this.store.lock(member.id);
    try {
      await this.deleteOne(member.id, this.executor(member.executor), true, true);
    } finally {
      lock.release();
    }
  }

  // A record that is broken or never got past creating was cut short: it goes with or without --force.
  private async deleteOne(id: string, executor: OciExecutor, force: boolean, unfinished: boolean): Promise<void> {
    const r = await runCaptured(executor, force || unfinished ? ['delete', '--force', id] : ['delete', id], this.globalsFor(executor));
    if (r.stdout) process.stdout.write(r.stdout);
    if (r.code !== 0 && !/container does not exist/.test(r.stderr)) {
      throw new HutchError(/not stopped/.test(r.stderr) ? 'ESTATE' : 'EEXEC', executorMessage(r.stderr), { id });
    }
    await this.removeDir(id);
  }
}

/** The state of a container hutch knows but its executor does not (its init is gone). */
function lostState(id: string, bundle: string, created = new Date(0).toISOString()): OciState {
  return { ociVersion: '1.0.2-dev', id, pid: 0, status: 'stopped', bundle, rootfs: '', created, owner: '' };
}

/** How many fds after stdio the executor inherits: --preserve-fds plus systemd's LISTEN_FDS. */
function preservedFdCount(preserveFds = 0): number {
  const listen = Number.parseInt(process.env.LISTEN_FDS ?? '0', 10);
  return preserveFds + (Number.isInteger(listen) && listen > 0 ? listen : 0);
}

/** The message of the executor's last error line (logrus text or plain), for hutch's own error. */
export function executorMessage(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const last = lines[lines.length - 1] ?? 'the executor failed';
  const m = /msg="((?:[^"\\]|\\.)*)"/.exec(last);
  return m ? m[1]!.replace(/\\"/g, '"').replace(/\\n$/, '').trim() : last;
}
