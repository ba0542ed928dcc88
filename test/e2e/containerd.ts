// A containerd of the test's own: started from a private config (root, state, sockets under one
// test dir; the CRI plugin off, since no kubelet talks to it), driven with `ctr`, stopped after.
// Nothing is enabled as a service. The runc v2 shim is told which runtime binary to use per task
// (`ctr run --runc-binary`), and where its state goes (`--runc-root`), so runc and hutch keep
// their container state in the test dir too.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  Daemon, expectSuccess, killProcessesMentioning, runProgram, sweepCgroupsAndDir, waitUntil, type Outcome,
} from './host.js';

/** The containerd namespace the tests use. */
export const CTR_NAMESPACE = 'hutch-test';

/** A running private containerd and a `ctr` bound to it. */
export class PrivateContainerd {
  readonly socket: string;
  /** Top-level cgroup name under which every task of this instance goes (`ctr run --cgroup`). */
  readonly cgroupParent = `hutch-e2e-ctr-${randomBytes(3).toString('hex')}`;
  readonly fifoDir: string;
  readonly runtimeRoot: string;
  private daemon?: Daemon;

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
    this.socket = path.join(dir, 'containerd.sock');
    this.fifoDir = path.join(dir, 'fifo');
    this.runtimeRoot = path.join(dir, 'runtime-root');
  }

  /** Writes the config and starts containerd; resolves once it serves. */
  async start(): Promise<void> {
    const config = path.join(this.dir, 'config.toml');
    fs.writeFileSync(config, [
      'version = 2',
      `root = ${JSON.stringify(path.join(this.dir, 'root'))}`,
      `state = ${JSON.stringify(path.join(this.dir, 'state'))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = ${JSON.stringify(this.socket)}`,
      '[ttrpc]',
      `  address = ${JSON.stringify(`${this.socket}.ttrpc`)}`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      '',
    ].join('\n'));
    this.daemon = new Daemon('containerd', '/usr/bin/containerd', ['--config', config], path.join(this.dir, 'containerd.log'));
    await this.daemon.waitForLog(/containerd successfully booted/);
  }

  /** Runs `ctr --address SOCK -n hutch-test ARGS`. */
  ctr(args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<Outcome> {
    return runProgram('/usr/bin/ctr', ['--address', this.socket, '-n', CTR_NAMESPACE, ...args], { timeoutMs: opts.timeoutMs ?? 60_000, input: opts.input });
  }

  /** Runs ctr and insists on exit 0; returns stdout. */
  async ok(args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
    return expectSuccess(`ctr ${args.join(' ')}`, await this.ctr(args, opts));
  }

  /** `ctr run` flags for a task run by `runtime` through the runc v2 shim, with its state and cgroup kept private. */
  runFlags(runtime: string, id: string): string[] {
    return ['--runc-binary', runtime, '--runc-root', this.runtimeRoot, '--fifo-dir', this.fifoDir, '--cgroup', `/${this.cgroupParent}/${id}`];
  }

  /** The status ctr reports for task `id` (RUNNING, STOPPED, ...), or '' when there is none. */
  async taskStatus(id: string): Promise<string> {
    const line = (await this.ctr(['task', 'ls'])).stdout.split('\n').find((l) => l.split(/\s+/)[0] === id);
    return line ? line.trim().split(/\s+/)[2] ?? '' : '';
  }

  /**
   * Deletes every task and container, stops containerd, and checks that its shims, mounts and
   * cgroups went with it; returns what was left (and removes that too).
   */
  async destroy(): Promise<string[]> {
    const problems: string[] = [];
    if (this.daemon) {
      for (const id of (await this.ctr(['task', 'ls', '-q'])).stdout.split('\n').filter(Boolean)) {
        await this.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        await waitUntil(async () => (await this.taskStatus(id)) !== 'RUNNING', 5_000);
        const del = await this.ctr(['task', 'delete', '-f', id]);
        if (del.code !== 0) problems.push(`ctr task delete ${id}: ${del.stderr.trim()}`);
      }
      for (const id of (await this.ctr(['container', 'ls', '-q'])).stdout.split('\n').filter(Boolean)) {
        const del = await this.ctr(['container', 'delete', id]);
        if (del.code !== 0) problems.push(`ctr container delete ${id}: ${del.stderr.trim()}`);
      }
      await this.daemon.stop();
    }
    // Shims outlive containerd by design; any still here held a task that was not deleted.
    const shims = killProcessesMentioning(this.socket);
    if (shims.length) problems.push(`shims left: ${shims.join('; ')}`);
    const procs = killProcessesMentioning(this.dir);
    if (procs.length) problems.push(`processes left: ${procs.join('; ')}`);
    problems.push(...await sweepCgroupsAndDir(this.cgroupParent, this.dir));
    return problems;
  }
}
