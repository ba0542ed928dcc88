// The container platform: a sandbox is an OCI container (runc by default) whose bundle hutch
// writes itself, with an overlay rootfs, a user namespace and the agent as init.
import type { StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { HutchError, isHutchError } from '../../errors.js';
import { crashPoint } from '../../faults.js';
import { traceMark } from '../../trace.js';
import type { AgentClient } from '../../agent/index.js';
import { AGENT_SOCKET_NAME } from '../../agent/exit-file.js';
import { buildSandboxSpec, DEFAULT_CAPABILITIES, ALL_CAPABILITIES, type SandboxSpecInput } from '../../oci/index.js';
import { freezeState, mountOverlay, unmountTree, umount2, umount2Async, MNT_DETACH, removeCgroup, readCgroupStats, hostIdRange, detectCgroupMode, processStartTime, readOomKills, watchOom, mkdirInRoot } from '../../linux/index.js';
import type { ExecDirectRequest, InitMode, Platform, PlatformCapabilities, PlatformHandle, SandboxConfig, SandboxStats } from '../types.js';
import type { PlatformOptions } from '../registry.js';
import { makeExecutor, readPidFile, type OciExecutor } from './executor.js';
import { containerExitRecord, containerMainLog, layout, observeContainerInit, openHandle, sealHandle, type ContainerState } from './handle.js';
import { initLogTail, waitForAgent } from './agent-wait.js';
import { copyTree, nameServiceFiles } from './host-files.js';
import type { Spec } from '../../oci/index.js';
import { killAndForgetRuncContainer } from './teardown.js';
import { ensureRealMountPoints, mountPoints } from './mount-points.js';
import type { PrivateIds } from './private-ids.js';
import { AGENT_PACKAGES, ensureAgentRuntime, findInitBinary, SANDBOX_AGENT_MAIN, SANDBOX_HUTCH_DIR, SANDBOX_INIT, SANDBOX_LOADER, SANDBOX_NODE, SANDBOX_RUN_DIR } from './runtime.js';
import { releaseExitWatch, startExitWatch, stopExitWatch, type ExitWatch } from './exit-watch.js';
import { boundedInitLog, diskStats, mountDisk, mountRunDir } from './disk.js';

/**
 * Node flags for the agent: small heaps, since every sandbox holds one agent; gc() exposed and no
 * V8 worker threads, so that after a burst of work it can give memory back (~12 MB, not ~22 MB).
 */
const AGENT_NODE_FLAGS = ['--expose-gc', '--max-semi-space-size=1', '--max-old-space-size=64', '--single-threaded', '--stack-size=984'];

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const inRange = (id: number, base: number, size: number) => id >= base && id < base + size;

/**
 * What a platform built on this one changes: gVisor is an OCI container whose executor is runsc,
 * with a spec adapted to what runsc takes.
 */
export interface ContainerVariant {
  name: string;
  capabilities: PlatformCapabilities;
  /** The executor it always uses; absent = the one in the options (runc, crun). */
  executor?: (opts: PlatformOptions, cgroupMode: 'v1' | 'v2' | 'hybrid') => OciExecutor;
  /** Changes the spec before it is written. */
  adaptSpec?(spec: Spec, cfg: SandboxConfig): void;
  /** How the platform realises a sandbox's settings (hardening it does its own way); absent = as given. */
  adaptConfig?(cfg: SandboxConfig): SandboxConfig;
  /** The exit watch's socket goes to the init as its stdin, not as fd 3 (an executor without --preserve-fds: runsc 2022-12). */
  exitWatchOnStdin?: boolean;
  /** Kills the container and removes the executor's state of it faster than its kill and delete; false: use those. */
  killAndForget?(executor: OciExecutor, s: ContainerState, bundle: string): Promise<boolean>;
}

/** The plain container platform: runc or crun. */
export const CONTAINER_VARIANT: ContainerVariant = {
  name: 'container',
  capabilities: { directExec: true, privateIds: true, checkpoint: false },
  killAndForget: async (e, s) => e.name === 'runc' && killAndForgetRuncContainer(e.config.stateDir, s.containerId, s.cgroupsPath),
};

/** Sandboxes as OCI containers. */
export class ContainerPlatform implements Platform {
  readonly name: string;
  readonly capabilities: PlatformCapabilities;
  readonly executor: OciExecutor;

  constructor(private readonly opts: PlatformOptions, private readonly variant: ContainerVariant = CONTAINER_VARIANT) {
    this.name = variant.name;
    this.capabilities = variant.capabilities;
    const mode = detectCgroupMode();
    this.executor = variant.executor ? variant.executor(opts, mode) : makeExecutor(opts.executor, opts.stateRoot, mode);
  }

  /** Builds the agent runtime (node and its libraries) ahead of the first sandbox. */
  async setup(): Promise<Record<string, string>> {
    return { runtime: ensureAgentRuntime(this.opts.dataRoot).dir };
  }

  /** The handle of the sandbox `id` in `dir`: names follow from the id alone. */
  handleFor(id: string, dir: string): PlatformHandle {
    return sealHandle(this.name, dir, this.stateFor(id));
  }

  private stateFor(id: string): ContainerState {
    return { executor: this.executor.name, containerId: id, cgroupsPath: `/hutch-${id}` };
  }

  /**
   * Writes the rootfs (overlay) and config.json of a sandbox; returns its handle. With `priv` (a
   * private id range), its idmapped lower dirs and host ids stand in for the shared ones.
   */
  protected prepare(given: SandboxConfig, priv?: PrivateIds, seedUpper?: string): ContainerState {
    const cfg = this.variant.adaptConfig?.(given) ?? given;
    const l = layout(cfg.dir);
    const ids = priv?.ids ?? hostIdRange();
    const state = this.stateFor(cfg.id);
    if (priv) state.idSlot = priv.slot;
    const cgroupsPath = state.cgroupsPath;
    fs.mkdirSync(l.bundle, { mode: 0o700 });
    mountRunDir(l.run, cfg.hardening.userns ? ids.hostUid : 0, cfg.hardening.userns ? ids.hostGid : 0);
    const base = priv?.lowerDirs[0] ?? cfg.rootfs;
    let rootfsPath = base;
    const lowerDirs = priv?.lowerDirs ?? cfg.lowerDirs ?? [cfg.rootfs];
    if (cfg.hardening.overlay) {
      fs.mkdirSync(l.rootfs, { mode: 0o755 });
      // With a disk limit the upper and work dirs are on a tmpfs of that size (disk.ts).
      const { upper, work } = mountDisk(cfg.dir, cfg.limits) ?? { upper: l.upper, work: l.work };
      if (upper === l.upper) for (const d of [l.upper, l.work]) fs.mkdirSync(d, { mode: 0o755 });
      // A restore: the writable layer as the checkpoint saved it.
      if (seedUpper) copyTree(seedUpper, upper);
      // The merged root takes its owner from the upper dir. A rootfs owned by ids outside the
      // sandbox's range (a dir unpacked by host root) would leave / owned by nobody inside: its root
      // becomes the sandbox's root then, and the mount points runc needs are made in the upper
      // layer (runc, as root inside, could not create them in a dir it does not own).
      const rootStat = fs.statSync(base);
      const owner = !cfg.hardening.userns || inRange(rootStat.uid, ids.hostUid, ids.size) ? rootStat : { uid: ids.hostUid, gid: ids.hostGid };
      fs.chownSync(upper, owner.uid, owner.gid);
      fs.chmodSync(upper, rootStat.mode & 0o7777);
      mountOverlay({ lowerDirs, upperDir: upper, workDir: work, target: l.rootfs });
      rootfsPath = l.rootfs;
      // Checked in the merged view (what runc sees, whiteouts and all); fixes land in the upper.
      ensureRealMountPoints(rootfsPath, mountPoints(cfg.mode === 'agent', true), owner, true);
    } else {
      if (lowerDirs.length > 1) {
        // No writable layer: the image's layers merged read-only.
        fs.mkdirSync(l.rootfs, { mode: 0o755 });
        mountOverlay({ lowerDirs, target: l.rootfs });
        rootfsPath = l.rootfs;
      }
      ensureRealMountPoints(rootfsPath, mountPoints(cfg.mode === 'agent', false), null, false);
    }
    const runtime = cfg.mode === 'agent' ? ensureAgentRuntime(this.opts.dataRoot) : { dir: '', installDir: '' };
    if (cfg.mode === 'direct' && !cfg.command?.length) throw new HutchError('EINVAL', 'no command to run', { id: cfg.id });
    // run --init: catatonit is pid 1 and the command its child (it has no agent to do that).
    const initBinary = cfg.mode === 'direct' && cfg.init ? findInitBinary() : undefined;
    const args = cfg.mode === 'agent'
      ? [SANDBOX_LOADER, '--library-path', `${SANDBOX_HUTCH_DIR}/lib`, SANDBOX_NODE, ...AGENT_NODE_FLAGS, SANDBOX_AGENT_MAIN, '--listen', `${SANDBOX_RUN_DIR}/${AGENT_SOCKET_NAME}`]
      : [...(initBinary ? [SANDBOX_INIT, '--'] : []), ...cfg.command!];
    if (cfg.hardening.overlay) makeWorkingDir(cfg, rootfsPath, cfg.hardening.userns ? { uid: ids.hostUid, gid: ids.hostGid } : { uid: 0, gid: 0 });
    const h = cfg.hardening;
    const input: SandboxSpecInput = {
      args,
      env: cfg.mode === 'agent' ? [DEFAULT_PATH] : cfg.env,
      cwd: cfg.mode === 'agent' ? '/' : cfg.cwd,
      user: cfg.mode === 'agent' ? { uid: 0, gid: 0 } : cfg.user,
      terminal: cfg.mode === 'direct' && cfg.terminal === true,
      hostname: cfg.name,
      rootfsPath,
      readonlyRootfs: !h.overlay,
      // Direct mode has no agent: nothing of hutch's goes into the sandbox.
      mounts: cfg.mode === 'agent' ? [
        { source: runtime.dir, destination: SANDBOX_HUTCH_DIR, readonly: true },
        { source: path.join(runtime.installDir, 'dist/bundle'), destination: `${SANDBOX_HUTCH_DIR}/app/bundle`, readonly: true },
        ...AGENT_PACKAGES.map((p) => ({ source: path.join(runtime.installDir, 'node_modules', p), destination: `${SANDBOX_HUTCH_DIR}/app/node_modules/${p}`, readonly: true })),
        { source: l.run, destination: SANDBOX_RUN_DIR, readonly: false },
      ] : initBinary ? [{ source: initBinary, destination: SANDBOX_INIT, readonly: true }] : [],
      idMap: h.userns ? { hostUid: ids.hostUid, hostGid: ids.hostGid, size: ids.size } : null,
      namespaces: { user: h.userns, pid: true, ipc: true, uts: true, mount: true, network: cfg.network?.netnsPath ?? h.network === 'none', cgroup: true },
      seccomp: h.seccomp,
      ioUring: h.ioUring === true,
      capabilities: h.capabilities === 'all' ? hostBoundingCapabilities() : [...DEFAULT_CAPABILITIES],
      noNewPrivileges: h.noNewPrivileges,
      maskPaths: h.maskPaths,
      limits: cfg.limits,
      cgroupsPath,
      annotations: { 'dev.hutch.sandbox.id': cfg.id, 'dev.hutch.sandbox.name': cfg.name, 'dev.hutch.init': cfg.mode },
    };
    input.mounts = [...(input.mounts ?? []), ...nameServiceFiles(cfg, rootfsPath, cfg.hardening.userns ? { uid: ids.hostUid, gid: ids.hostGid } : { uid: 0, gid: 0 })];
    const spec = buildSandboxSpec(input);
    this.variant.adaptSpec?.(spec, cfg);
    fs.writeFileSync(path.join(l.bundle, 'config.json'), JSON.stringify(spec), { mode: 0o600 });
    crashPoint('create:prepared');
    return state;
  }

  /**
   * prepare() for a sandbox with a private id range: claims the range and mounts its lower dirs
   * first. On error the range stays claimed: destroy frees it once the mounts are gone.
   */
  private async preparePrivate(cfg: SandboxConfig): Promise<ContainerState> {
    const { preparePrivateIds } = await import('./private-ids.js');
    return this.prepare(cfg, await preparePrivateIds(cfg));
  }

  /**
   * Frees a sandbox's private id range, if it has one: by its number, or for a handle without it
   * (the cleanup of a failed or cut-short create) whatever slot the sandbox's id and dir hold.
   */
  private async releaseIdSlot(s: ContainerState, dir: string): Promise<void> {
    if (s.idSlot === undefined && !fs.existsSync(path.join(dir, 'lower'))) return; // never private
    const { releasePrivateIds, releasePrivateIdsOf } = await import('./private-ids.js');
    if (s.idSlot !== undefined) await releasePrivateIds(s.idSlot, s.containerId);
    else await releasePrivateIdsOf(s.containerId, dir);
  }

  /** Makes the container; its init waits for start. */
  async create(cfg: SandboxConfig): Promise<PlatformHandle> {
    const state = cfg.hardening.idRange === 'private' ? await this.preparePrivate(cfg) : this.prepare(cfg);
    const l = layout(cfg.dir);
    // A direct-mode init writes its output there itself: bounded (disk.ts). The agent's is hutch's own.
    const logFile = cfg.mode === 'direct' ? boundedInitLog(cfg.dir) : l.log;
    const log = fs.openSync(logFile, 'a', 0o600);
    let watch: ExitWatch | undefined;
    try {
      watch = cfg.onExit ? startExitWatch(cfg.dir, cfg.onExit) : undefined;
      const onStdin = watch !== undefined && this.variant.exitWatchOnStdin === true;
      const stdio: StdioOptions = !watch ? ['ignore', log, log] : onStdin ? [watch.peer, log, log] : ['ignore', log, log, watch.peer];
      await this.executor.create(cfg.id, l.bundle, { stdio, pidFile: l.pidFile, ...(watch && !onStdin ? { preserveFds: 1 } : {}) });
      if (watch) state.exitWatch = { pid: watch.pid, startTime: watch.startTime };
    } catch (e) {
      if (watch) await stopExitWatch(watch);
      // The slot stays claimed until the engine's cleanup (destroy) has removed the container and
      // its mounts: the executor may have left processes running with the range's ids.
      throw withInitLog(e, logFile);
    } finally {
      if (watch) releaseExitWatch(watch);
      fs.closeSync(log);
    }
    const pid = readPidFile(l.pidFile);
    if (pid !== null) state.initPid = pid;
    return sealHandle(this.name, cfg.dir, state);
  }

  /** Starts the init; in agent mode waits until the agent answers a ping. */
  async start(h: PlatformHandle, mode: InitMode): Promise<void> {
    const s = openHandle(h);
    // A start that a crash interrupted may have started the init already: then only the agent is awaited.
    if (this.initStarted(h) !== true) await this.executor.start(s.containerId, layout(h.dir).bundle);
    crashPoint('start:executor');
    if (mode === 'agent') await waitForAgent(s.containerId, h.dir, s.initPid, 10_000);
  }

  initStarted(h: PlatformHandle): boolean | null {
    return this.executor.initStarted(openHandle(h).containerId);
  }

  observeInit(h: PlatformHandle, startTime?: number) { return observeContainerInit(h, startTime); }
  exitRecord(h: PlatformHandle) { return containerExitRecord(h); }
  mainLogPath(h: PlatformHandle): string { return containerMainLog(h); }

  /** Direct mode: the user's command is the init, run in the foreground with the caller's stdio. */
  async runForeground(cfg: SandboxConfig, stdio: ('inherit' | 'ignore')[], onStarted: (h: PlatformHandle) => void): Promise<{ handle: PlatformHandle; exitCode: number; oomKilled: boolean }> {
    const state = cfg.hardening.idRange === 'private' ? await this.preparePrivate(cfg) : this.prepare(cfg);
    const handle = sealHandle(this.name, cfg.dir, state);
    const l = layout(cfg.dir);
    traceMark('platform: bundle ready');
    // The executor removes the cgroup as the init ends: an OOM kill must be seen while it runs.
    const oom = cfg.limits.memoryBytes !== undefined ? watchOom(state.cgroupsPath) : null;
    try {
      const run = this.executor.runForeground(cfg.id, l.bundle, { stdio, terminal: cfg.terminal === true, pidFile: l.pidFile, logFile: path.join(cfg.dir, 'runc.log') });
      onStarted(handle);
      const exitCode = await run.done;
      return { handle, exitCode, oomKilled: oom?.seen === true };
    } finally {
      oom?.close();
    }
  }

  /** How many processes of the sandbox the OOM killer has killed; null when its cgroup is gone or does not say. */
  async oomKills(h: PlatformHandle): Promise<number | null> {
    return readOomKills(openHandle(h).cgroupsPath);
  }

  /** A new connection to the agent of a running sandbox. */
  async connect(h: PlatformHandle, timeoutMs = 5000): Promise<AgentClient> {
    const { AgentClient } = await import('../../agent/index.js');
    return AgentClient.connectSocket(path.join(layout(h.dir).run, AGENT_SOCKET_NAME), { timeoutMs });
  }

  pause(h: PlatformHandle): Promise<void> { return this.executor.pause(openHandle(h).containerId); }
  resume(h: PlatformHandle): Promise<void> { return this.executor.resume(openHandle(h).containerId); }
  kill(h: PlatformHandle, signal: string, all: boolean): Promise<void> { return this.executor.kill(openHandle(h).containerId, signal, all); }

  /** Cgroup figures of the sandbox, and its writable layer's use when it has a disk limit. */
  async stats(h: PlatformHandle): Promise<SandboxStats> {
    return { ...readCgroupStats(openHandle(h).cgroupsPath), ...diskStats(h.dir) };
  }

  /** The root the bundle names: the overlay mount, or the base dir itself for a read-only single layer. */
  rootfsPath(h: PlatformHandle): string {
    const file = path.join(layout(h.dir).bundle, 'config.json');
    let root: unknown;
    try {
      root = (JSON.parse(fs.readFileSync(file, 'utf8')) as { root?: { path?: unknown } }).root?.path;
    } catch (e) {
      throw new HutchError('ESTATE', `the sandbox in ${h.dir} has no readable bundle (${file}): ${e instanceof Error ? e.message : String(e)}`, { path: h.dir, cause: e });
    }
    if (typeof root !== 'string' || !path.isAbsolute(root)) throw new HutchError('ESTATE', `the sandbox in ${h.dir}: its bundle names no rootfs`, { path: h.dir });
    return root;
  }

  /**
   * Runs a process in the container through the executor (`runc exec`), attached to hutch's stdio.
   * Flags rather than a process.json, so the process gets the container's own capabilities,
   * seccomp profile and no_new_privs.
   */
  execDirect(h: PlatformHandle, req: ExecDirectRequest): { done: Promise<number> } {
    const logFile = path.join(h.dir, `exec-${process.pid}-${Date.now()}.log`);
    const args = ['--cwd', req.cwd, '--user', `${req.user.uid}:${req.user.gid}`, ...req.env.flatMap((e) => ['--env', e]), ...(req.terminal ? ['--tty'] : [])];
    const run = this.executor.exec(openHandle(h).containerId, args, req.args, { stdio: req.stdio, terminal: req.terminal, logFile });
    return { done: run.done.finally(() => fs.rmSync(logFile, { force: true })) };
  }

  /**
   * Kills the container's processes, waits for its init, then deletes it. Not `delete --force`:
   * runc 1.1 sleeps a fixed 100 ms after the SIGKILL it sends, against ~20 ms this way.
   */
  private async deleteContainer(s: ContainerState, dir: string): Promise<void> {
    const id = s.containerId;
    // A frozen task cannot die: thaw a paused sandbox first (removeCgroup thaws what this misses).
    // (runsc pauses inside its sentry, not with the freezer: its state file says so.)
    if (isFrozen(s.cgroupsPath) || this.executor.recordedStatus(id) === 'paused') await this.executor.resume(id).catch(() => undefined);
    if (await this.variant.killAndForget?.(this.executor, s, layout(dir).bundle)) return;
    await this.executor.kill(id, 'SIGKILL', true).catch(() => undefined); // not running: nothing to kill
    const pid = readPidFile(path.join(dir, 'init.pid')) ?? s.initPid;
    for (let delay = 1, waited = 0; pid !== undefined && pid !== null && processStartTime(pid) !== null && waited < 2000; waited += delay, delay = Math.min(delay * 2, 50)) {
      await new Promise((r) => setTimeout(r, delay));
    }
    try {
      await this.executor.delete(id, false);
    } catch {
      try {
        await this.executor.delete(id, true); // still running after all: let the executor finish it
      } catch (e) {
        // An executor killed during create leaves a state dir it cannot load (no state file yet):
        // nothing of it runs but what is in the cgroup, which destroy removes next.
        const dir = path.join(this.executor.config.stateDir, id);
        if (this.executor.name === 'runsc' || ['state.json', 'status'].some((f) => fs.existsSync(path.join(dir, f)))) throw e;
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  }

  /** Null when private id ranges work over base layers stored like `source`, else why not. */
  async privateIdsProblem(source: string): Promise<string | null> {
    const { probeIdmappedLayers } = await import('./private-ids.js');
    return probeIdmappedLayers(source, this.opts.stateRoot);
  }

  /** Kills the container and removes its executor state, mounts and cgroups; idempotent. */
  async destroy(h: PlatformHandle): Promise<void> {
    const s = openHandle(h);
    // First, so that a removal by hand leaves no watch behind to run its command for nothing.
    if (s.exitWatch) await stopExitWatch(s.exitWatch);
    // runc keeps <state dir>/<id> while it knows a container; `run` in the foreground deletes its own.
    if (this.executor.knows(s.containerId)) await this.deleteContainer(s, h.dir);
    // A lazy detach returns at once; a plain umount of an overlay waits on the kernel for ~60 ms.
    // The kernel's teardown still runs when the call returns (~1 s for 100k files): off the loop in
    // a daemon; inline in a CLI call (the worker thread costs a first call ~10 ms).
    const rootfs = layout(h.dir).rootfs;
    const detached = this.opts.offload ? await umount2Async(rootfs, MNT_DETACH) : umount2(rootfs, MNT_DETACH);
    if (detached !== null && detached !== 'EINVAL' && detached !== 'ENOENT') {
      throw new HutchError('EINTERNAL', `cannot unmount the rootfs of sandbox ${s.containerId}: ${detached}`, { id: s.containerId });
    }
    unmountTree(h.dir);
    await this.releaseIdSlot(s, h.dir);
    await removeCgroup(s.cgroupsPath);
  }
}

/**
 * Makes the sandbox's working dir when no layer has it, as runc and docker do: owned by the
 * sandbox's root, 0755, in its writable layer; the path resolved inside the rootfs (see mkdirInRoot).
 */
function makeWorkingDir(cfg: SandboxConfig, rootfs: string, root: { uid: number; gid: number }): void {
  try {
    mkdirInRoot(rootfs, cfg.cwd, { ...root, mode: 0o755 });
  } catch (e) {
    throw isHutchError(e) ? new HutchError(e.code, `sandbox ${cfg.id}: cannot make its working directory: ${e.message}`, { id: cfg.id, cause: e }) : e;
  }
}

/**
 * Every capability hutch itself may hand on (its bounding set): "all" can mean no more than that,
 * and here root lacks CAP_SYS_RESOURCE, so asking runc for it would fail.
 */
export function hostBoundingCapabilities(): string[] {
  const line = /^CapBnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  const mask = BigInt(`0x${line?.[1] ?? '0'}`);
  return ALL_CAPABILITIES.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
}

/** True when the sandbox's cgroup is frozen or freezing; false also when it (or its freezer part) is missing, as after a crash during create. */
function isFrozen(cgroupsPath: string): boolean {
  try {
    return freezeState(cgroupsPath) !== 'thawed';
  } catch (e) {
    if (isHutchError(e, 'ENOTFOUND') || isHutchError(e, 'EUNSUPPORTED')) return false;
    throw e;
  }
}

function withInitLog(e: unknown, log: string): unknown {
  if (isHutchError(e) && /exit code \d+$/.test(e.message)) {
    return new HutchError(e.code, `${e.message}${initLogTail(log)}`, { ...(e.id ? { id: e.id } : {}), cause: e });
  }
  return e;
}
