// A containerd of the test's own: started from a private config (root, state, sockets under one
// test dir; the CRI plugin off unless a test drives it as the kubelet does, test/e2e/cri.ts),
// driven with `ctr`, stopped after.
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

/** The CRI plugin's settings when a test turns it on: runtime handlers and the pod sandbox image. */
export interface CriPluginConfig {
  /** Runtime handler name → the OCI runtime binary its runc v2 shim runs (state under runtimeRoot/NAME). */
  handlers: Record<string, string>;
  /** The pod sandbox ("pause") image, loaded into the k8s.io namespace before a pod starts. */
  sandboxImage: string;
  /** Pod annotations (keys or `prefix*`) every handler passes on into the containers' specs. */
  podAnnotations?: string[];
}

/** The containerd namespace the CRI plugin keeps its pods and images in. */
export const CRI_NAMESPACE = 'k8s.io';

/** A running private containerd and a `ctr` bound to it. */
export class PrivateContainerd {
  readonly socket: string;
  /** Top-level cgroup name under which every task of this instance goes (`ctr run --cgroup`). */
  readonly cgroupParent = `hutch-e2e-ctr-${randomBytes(3).toString('hex')}`;
  readonly fifoDir: string;
  readonly runtimeRoot: string;
  private daemon?: Daemon;

  constructor(readonly dir: string, readonly cri?: CriPluginConfig) {
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
      this.cri ? 'disabled_plugins = []' : 'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = ${JSON.stringify(this.socket)}`,
      '[ttrpc]',
      `  address = ${JSON.stringify(`${this.socket}.ttrpc`)}`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      ...(this.cri ? this.criSection(this.cri) : []),
      '',
    ].join('\n'));
    this.daemon = new Daemon('containerd', '/usr/bin/containerd', ['--config', config], path.join(this.dir, 'containerd.log'));
    try {
      await this.daemon.waitForLog(/containerd successfully booted/);
    } catch (e) {
      await this.daemon.stop(); // one that never served is stopped here: destroy would ask it for tasks
      this.daemon = undefined;
      throw e;
    }
  }

  /**
   * The CRI plugin's config: a runc v2 shim per handler with its state under runtimeRoot, no CNI
   * (the tests' pods use the host network), the streaming server on a loopback port of its own.
   */
  private criSection(cri: CriPluginConfig): string[] {
    const cfg = '[plugins."io.containerd.grpc.v1.cri"';
    const lines = [
      `${cfg}]`,
      `  sandbox_image = ${JSON.stringify(cri.sandboxImage)}`,
      '  stream_server_address = "127.0.0.1"',
      '  stream_server_port = "0"',
      '  enable_selinux = false',
      // The sandbox's oom_score_adj of -998 needs CAP_SYS_RESOURCE, which root lacks on this host.
      '  restrict_oom_score_adj = true',
      `${cfg}.cni]`,
      `  bin_dir = ${JSON.stringify(path.join(this.dir, 'cni', 'bin'))}`,
      `  conf_dir = ${JSON.stringify(path.join(this.dir, 'cni', 'conf'))}`,
      `${cfg}.containerd]`,
      '  snapshotter = "overlayfs"',
      `  default_runtime_name = ${JSON.stringify(Object.keys(cri.handlers)[0] ?? 'runc')}`,
    ];
    for (const [name, binary] of Object.entries(cri.handlers)) {
      lines.push(
        `${cfg}.containerd.runtimes.${name}]`,
        '  runtime_type = "io.containerd.runc.v2"',
        `  pod_annotations = ${JSON.stringify(cri.podAnnotations ?? [])}`,
        `${cfg}.containerd.runtimes.${name}.options]`,
        `  BinaryName = ${JSON.stringify(binary)}`,
        `  Root = ${JSON.stringify(path.join(this.runtimeRoot, name))}`,
      );
    }
    return lines;
  }

  /** Runs `ctr --address SOCK -n NAMESPACE ARGS` (hutch-test unless told). */
  ctr(args: string[], opts: { timeoutMs?: number; input?: string; namespace?: string } = {}): Promise<Outcome> {
    return runProgram('/usr/bin/ctr', ['--address', this.socket, '-n', opts.namespace ?? CTR_NAMESPACE, ...args], { timeoutMs: opts.timeoutMs ?? 60_000, input: opts.input });
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
  async taskStatus(id: string, namespace?: string): Promise<string> {
    const line = (await this.ctr(['task', 'ls'], { namespace })).stdout.split('\n').find((l) => l.split(/\s+/)[0] === id);
    return line ? line.trim().split(/\s+/)[2] ?? '' : '';
  }

  /**
   * Deletes every task and container, stops containerd, and checks that its shims, mounts and
   * cgroups went with it; returns what was left (and removes that too).
   */
  async destroy(): Promise<string[]> {
    const problems: string[] = [];
    if (this.daemon) {
      try {
        // The CRI plugin's pods are its own to remove (test/e2e/cri.ts); what it left is removed here.
        for (const namespace of this.cri ? [CTR_NAMESPACE, CRI_NAMESPACE] : [CTR_NAMESPACE]) {
          const ctr = (args: string[]) => this.ctr(args, { namespace });
          for (const id of (await ctr(['task', 'ls', '-q'])).stdout.split('\n').filter(Boolean)) {
            await ctr(['task', 'kill', '-s', 'SIGKILL', id]);
            await waitUntil(async () => (await this.taskStatus(id, namespace)) !== 'RUNNING', 5_000);
            const del = await ctr(['task', 'delete', '-f', id]);
            if (del.code !== 0) problems.push(`ctr -n ${namespace} task delete ${id}: ${del.stderr.trim()}`);
          }
          for (const id of (await ctr(['container', 'ls', '-q'])).stdout.split('\n').filter(Boolean)) {
            const del = await ctr(['container', 'delete', id]);
            if (del.code !== 0) problems.push(`ctr -n ${namespace} container delete ${id}: ${del.stderr.trim()}`);
          }
        }
      } catch (e) {
        problems.push(`deleting tasks and containers: ${(e as Error).message}`);
      } finally {
        await this.daemon.stop(); // even when a ctr call failed or timed out
      }
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
