// The gvisor platform: a sandbox is an OCI container run by gVisor's runsc, whose sentry (a kernel
// in user space) serves the sandbox's syscalls; the host kernel sees only the sentry's. The bundle,
// the agent and the rootfs are the container platform's (docs/gvisor.md).
import fs from 'node:fs';
import path from 'node:path';
import { HutchError } from '../../errors.js';
import { cgroupPids } from '../../linux/index.js';
import { ContainerPlatform, type ContainerVariant } from '../container/platform.js';
import { copyTree } from '../container/host-files.js';
import { joinsNetns, makeExecutor, readPidFile } from '../container/executor.js';
import { layout, openHandle, sealHandle, type ContainerState } from '../container/handle.js';
import { waitForAgent } from '../container/agent-wait.js';
import type { PlatformOptions } from '../registry.js';
import type { CheckpointResult, PlatformHandle, SandboxConfig } from '../types.js';
import { adaptSpecForGvisor, configForGvisor } from './spec.js';
import { killAndForgetRunscContainer } from './teardown.js';
import { CHECKPOINT_IMAGE_DIR, CHECKPOINT_UPPER_DIR, quiesceAgent, upperDirOf, wakeAgent } from './checkpoint.js';

export { probeGvisor, type GvisorProbe } from './probe.js';

const GVISOR_VARIANT: ContainerVariant = {
  name: 'gvisor',
  capabilities: { directExec: false, privateIds: false, checkpoint: true },
  executor: (opts) => makeExecutor('runsc', opts.stateRoot, 'v1'),
  adaptSpec: adaptSpecForGvisor,
  adaptConfig: configForGvisor,
  exitWatchOnStdin: true,
  killAndForget: (e, s, bundle) => killAndForgetRunscContainer(e.config.stateDir, s.containerId, bundle, s.cgroupsPath),
};

/** Sandboxes in gVisor. */
export class GvisorPlatform extends ContainerPlatform {
  constructor(opts: PlatformOptions) {
    super(opts, GVISOR_VARIANT);
  }

  /** As the container platform's, but for a terminal: runsc 2022-12 gives a foreground run one only through a console socket. */
  override async runForeground(cfg: SandboxConfig, stdio: ('inherit' | 'ignore')[], onStarted: (h: PlatformHandle) => void): Promise<{ handle: PlatformHandle; exitCode: number; oomKilled: boolean }> {
    if (cfg.terminal) {
      throw new HutchError('EUNSUPPORTED', `sandbox ${cfg.id}: the gvisor platform gives a foreground run no terminal yet: use hutch run -d and hutch exec -t`, { id: cfg.id });
    }
    return super.runForeground(cfg, stdio, onStarted);
  }

  /** runsc checkpoint, after the agent let go of its host socket; the writable layer is copied once the sandbox is gone. */
  async checkpoint(h: PlatformHandle, dir: string, leaveRunning: boolean): Promise<CheckpointResult> {
    const s = openHandle(h);
    const id = s.containerId;
    // On a network the sentry uses the host's sockets (docs/network.md), which runsc cannot save.
    if (joinsNetns(layout(h.dir).bundle)) {
      throw new HutchError('EUNSUPPORTED', `sandbox ${id} is on a network: gVisor's host network mode, which it uses there, cannot be checkpointed (a sandbox on --network none can)`, { id });
    }
    // A paused sandbox's checkpoint leaves runsc unable to delete it: it goes on first.
    if (this.executor.recordedStatus(id) === 'paused') await this.executor.resume(id);
    await quiesceAgent(id, h.dir, await this.connect(h));
    const image = path.join(dir, CHECKPOINT_IMAGE_DIR);
    fs.mkdirSync(image, { mode: 0o700 });
    await this.executor.checkpoint(id, image);
    await this.waitGone(s);
    fs.mkdirSync(path.join(dir, CHECKPOINT_UPPER_DIR), { mode: 0o755 });
    copyTree(upperDirOf(h.dir), path.join(dir, CHECKPOINT_UPPER_DIR));
    if (!leaveRunning) return { stopped: true };
    // Same id, same bundle and rootfs: runsc forgets the stopped container and restores it. The
    // image is saved by now: a restore that fails leaves the sandbox stopped, not the image lost.
    try {
      if (!(await killAndForgetRunscContainer(this.executor.config.stateDir, id, layout(h.dir).bundle, s.cgroupsPath))) await this.executor.delete(id, true);
      return { running: await this.restoreInto({ ...s }, h.dir, image) };
    } catch (e) {
      return { stopped: true, resumeError: e instanceof Error ? e.message : String(e) };
    }
  }

  /** A new sandbox from a checkpoint: its bundle as create makes it, over a copy of the saved writable layer. */
  async restore(cfg: SandboxConfig, dir: string): Promise<PlatformHandle> {
    if (cfg.mode !== 'agent') throw new HutchError('EINVAL', `sandbox ${cfg.id}: only a sandbox with an agent is restored`, { id: cfg.id });
    const state = this.prepare(cfg, undefined, path.join(dir, CHECKPOINT_UPPER_DIR));
    return this.restoreInto(state, cfg.dir, path.join(dir, CHECKPOINT_IMAGE_DIR));
  }

  private async restoreInto(state: ContainerState, dir: string, image: string): Promise<PlatformHandle> {
    const l = layout(dir);
    const log = fs.openSync(l.log, 'a', 0o600);
    try {
      await this.executor.restore(state.containerId, l.bundle, image, { stdio: ['ignore', log, log], pidFile: l.pidFile });
    } finally {
      fs.closeSync(log);
    }
    const pid = readPidFile(l.pidFile);
    if (pid !== null) state.initPid = pid;
    await wakeAgent(this.executor, state.containerId);
    await waitForAgent(state.containerId, dir, state.initPid, 10_000);
    return sealHandle(this.name, dir, state);
  }

  /** Waits until every process of the sandbox (sentry, gofer) is gone: the writable layer is then still. */
  private async waitGone(s: ContainerState): Promise<void> {
    for (let delay = 1, waited = 0; cgroupPids(s.cgroupsPath).length > 0; waited += delay, delay = Math.min(delay * 2, 20)) {
      if (waited > 5000) throw new HutchError('ETIMEDOUT', `sandbox ${s.containerId}: its processes did not end after the checkpoint`, { id: s.containerId });
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
