// A platform for the engine's tests that needs no root and no executor: a sandbox's init is hutch's
// own agent run as a plain host process (no isolation at all), so the engine's state machine, its
// crash handling and its calls through the agent are tested on their own. What it stands in for
// (namespaces, cgroups, an executor) is tested by the real-runc and runsc suites.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HutchError } from '../src/errors.js';
import { processStartTime } from '../src/linux/index.js';
import { AgentClient } from '../src/agent/index.js';
import { readExitFile } from '../src/agent/exit-file.js';
import type { ExitRecord, InitMode, InitObservation, Platform, PlatformHandle, PlatformRegistry, SandboxConfig, SandboxStats } from '../src/platform/index.js';

const AGENT_MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/agent/main.js');

/** What the tests can make the fake do, and what it saw. */
export interface FakeControls {
  calls: string[];
  /** Throws from create (after making its files) when set. */
  failCreate?: boolean;
  /** Throws from destroy when set. */
  failDestroy?: boolean;
}

const pidFile = (h: PlatformHandle) => path.join(h.dir, 'fake-init.pid');
const runDir = (dir: string) => path.join(dir, 'run');

/** The fake platform, sharing `controls` with the test. */
export class FakePlatform implements Platform {
  readonly name = 'fake';
  readonly capabilities = { directExec: false, privateIds: false, checkpoint: false };
  constructor(private readonly controls: FakeControls) {}

  async setup() { return { runtime: '' }; }
  handleFor(_id: string, dir: string): PlatformHandle { return { platform: 'fake', dir, state: {} }; }

  async create(cfg: SandboxConfig): Promise<PlatformHandle> {
    this.controls.calls.push(`create ${cfg.id}`);
    fs.mkdirSync(runDir(cfg.dir), { mode: 0o700 });
    if (this.controls.failCreate) throw new HutchError('EEXEC', `fake create of ${cfg.id} failed`, { id: cfg.id });
    return { platform: 'fake', dir: cfg.dir, state: { id: cfg.id, rootfs: cfg.rootfs } };
  }

  async start(h: PlatformHandle, mode: InitMode): Promise<void> {
    this.controls.calls.push(`start ${String(h.state['id'])}`);
    if (mode !== 'agent') throw new HutchError('EUNSUPPORTED', 'the fake platform runs agents only');
    const sock = path.join(runDir(h.dir), 'agent.sock');
    // As the container platform: a start that a crash interrupted only waits for the agent.
    if (!this.initStarted(h)) {
      const child = spawn(process.execPath, [AGENT_MAIN, '--listen', sock], { detached: true, stdio: 'ignore' });
      child.unref();
      fs.writeFileSync(pidFile(h), String(child.pid));
    }
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
      try {
        const c = await AgentClient.connectSocket(sock, { timeoutMs: 1000 });
        await c.ping();
        c.close();
        return;
      } catch {
        // not listening yet
      }
    }
    throw new HutchError('ETIMEDOUT', 'the fake agent did not answer');
  }

  initStarted(h: PlatformHandle): boolean | null { return fs.existsSync(pidFile(h)); }

  private pid(h: PlatformHandle): number | null {
    try {
      return Number.parseInt(fs.readFileSync(pidFile(h), 'utf8'), 10);
    } catch {
      return null;
    }
  }

  observeInit(h: PlatformHandle, startTime?: number): InitObservation {
    const pid = this.pid(h);
    if (pid === null) return { known: false, alive: false };
    const start = processStartTime(pid);
    if (start === null || (startTime !== undefined && start !== startTime)) return { known: true, alive: false, pid };
    return { known: true, alive: true, pid, startTime: start };
  }

  exitRecord(h: PlatformHandle): ExitRecord | null {
    try {
      return readExitFile(path.join(runDir(h.dir), 'exit.json'));
    } catch {
      return null;
    }
  }

  mainLogPath(h: PlatformHandle): string { return path.join(runDir(h.dir), 'main.log'); }
  async runForeground(): Promise<never> { throw new HutchError('EUNSUPPORTED', 'the fake platform runs agents only'); }
  async oomKills(): Promise<number | null> { return null; }
  connect(h: PlatformHandle, timeoutMs = 5000): Promise<AgentClient> { return AgentClient.connectSocket(path.join(runDir(h.dir), 'agent.sock'), { timeoutMs }); }
  private signalGroup(h: PlatformHandle, signal: string): void {
    const pid = this.pid(h);
    if (pid === null) return;
    try {
      process.kill(-pid, signal as NodeJS.Signals);
    } catch {
      // gone already
    }
  }
  async pause(h: PlatformHandle) { this.controls.calls.push('pause'); this.signalGroup(h, 'SIGSTOP'); }
  async resume(h: PlatformHandle) { this.controls.calls.push('resume'); this.signalGroup(h, 'SIGCONT'); }
  async kill(h: PlatformHandle, signal: string) { this.signalGroup(h, signal); }
  async stats(): Promise<SandboxStats> { return { cpuUsageNs: null, memoryBytes: null, memoryLimitBytes: null, pids: null, pidsLimit: null }; }
  rootfsPath(h: PlatformHandle): string { return String(h.state['rootfs']); }

  async destroy(h: PlatformHandle): Promise<void> {
    this.controls.calls.push(`destroy ${path.basename(h.dir)}`);
    if (this.controls.failDestroy) throw new HutchError('EBUSY', 'fake destroy failed');
    const pid = this.pid(h);
    this.signalGroup(h, 'SIGCONT');
    this.signalGroup(h, 'SIGKILL');
    for (let i = 0; pid !== null && processStartTime(pid) !== null && i < 200; i++) await new Promise((r) => setTimeout(r, 10));
  }
}

/** A registry with only the fake platform, and the controls it shares with the test. */
export function fakeRegistry(): { registry: PlatformRegistry; controls: FakeControls } {
  const controls: FakeControls = { calls: [] };
  return { controls, registry: { fake: { summary: 'the tests\' fake: the agent as a plain host process', load: async () => new FakePlatform(controls) } } };
}
