// podman for the e2e tests, with every piece of its state in one test dir so that the machine's own
// podman state is never touched: a private containers.conf (CONTAINERS_CONF replaces the system
// files), storage root and run root, libpod tmp dir (file locks, not /dev/shm), network config dir,
// and a cgroup parent of its own. Every call names its OCI runtime with --runtime PATH.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  cgroupTrees, expectSuccess, killProcessesMentioning, runProgram, sweepCgroupsAndDir, type Outcome,
} from './host.js';

/** Overlay on the root filesystem works for root here; vfs is the fallback where it does not. */
const STORAGE_DRIVER = process.env.HUTCH_E2E_STORAGE_DRIVER ?? 'overlay';

/** A podman with private state under `dir`. */
export class PrivatePodman {
  readonly confPath: string;
  /** Top-level cgroup name under which podman puts every container and pod of this instance. */
  readonly cgroupParent: string;
  private readonly globalFlags: string[];

  constructor(readonly dir: string, extraRuntimes: Record<string, string> = {}) {
    fs.mkdirSync(dir, { recursive: true });
    this.cgroupParent = `hutch-e2e-podman-${randomBytes(3).toString('hex')}`;
    this.confPath = path.join(dir, 'containers.conf');
    const runtimes = Object.entries(extraRuntimes).map(([name, p]) => `${name} = [${JSON.stringify(p)}]`);
    fs.writeFileSync(this.confPath, [
      '[containers]',
      // root here lacks CAP_SYS_RESOURCE: podman's default rlimits (nofile 1048576) cannot be set.
      'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]',
      '[engine]',
      // No systemd to ask for cgroups or to log events to.
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      // File locks in tmp_dir instead of a shared-memory segment that would outlive the test.
      'lock_type = "file"',
      `tmp_dir = ${JSON.stringify(path.join(dir, 'libpod-tmp'))}`,
      `runtime_supports_json = ["runc", "crun", "hutch"]`,
      '[engine.runtimes]',
      ...runtimes,
      '[network]',
      'network_backend = "netavark"',
      `network_config_dir = ${JSON.stringify(path.join(dir, 'networks'))}`,
      '',
    ].join('\n'));
    this.globalFlags = ['--root', path.join(dir, 'storage'), '--runroot', path.join(dir, 'run'), '--storage-driver', STORAGE_DRIVER];
  }

  /** The environment every podman call runs with. */
  get env(): NodeJS.ProcessEnv {
    return { ...process.env, CONTAINERS_CONF: this.confPath };
  }

  /** The full argv of `podman [private flags] [--runtime RUNTIME] ARGS`. */
  argv(args: string[], runtime?: string): string[] {
    return [...this.globalFlags, ...(runtime ? ['--runtime', runtime] : []), ...args];
  }

  /** Runs podman to completion. */
  run(args: string[], opts: { runtime?: string; input?: string; timeoutMs?: number } = {}): Promise<Outcome> {
    // cwd in the test's dir: conmon leaves an `oom` file in its working dir after an OOM kill.
    return runProgram('podman', this.argv(args, opts.runtime), { env: this.env, input: opts.input, timeoutMs: opts.timeoutMs ?? 60_000, cwd: this.dir });
  }

  /** Runs podman and insists on exit 0; returns stdout. */
  async ok(args: string[], opts: { runtime?: string; input?: string; timeoutMs?: number } = {}): Promise<string> {
    return expectSuccess(`podman ${args.join(' ')}`, await this.run(args, opts));
  }

  /** Flags every container and pod of a test gets: loopback-only network, our cgroup parent. */
  get isolation(): string[] {
    return ['--network', 'none', '--cgroup-parent', `/${this.cgroupParent}`];
  }

  /** The cgroup dirs of pod `podId` (podman puts a pod at PARENT/POD_ID in every hierarchy). */
  podCgroups(podId: string): string[] {
    return cgroupTrees(this.cgroupParent).map((t) => path.join(t, podId)).filter((d) => fs.existsSync(d));
  }

  /** Pids still in any cgroup of pod `podId`. */
  podCgroupProcesses(podId: string): number[] {
    const pids: number[] = [];
    const visit = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) visit(path.join(d, e.name));
      try { pids.push(...fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number)); } catch { /* gone */ }
    };
    for (const d of this.podCgroups(podId)) visit(d);
    return [...new Set(pids)];
  }

  /** Removes the (empty) cgroup dirs of pod `podId`, children first. */
  removePodCgroups(podId: string): void {
    for (const d of this.podCgroups(podId)) {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) { try { fs.rmdirSync(path.join(d, e.name)); } catch { /* reported by destroy */ } }
      try { fs.rmdirSync(d); } catch { /* reported by destroy */ }
    }
  }

  /**
   * Removes every container, pod and image, then the storage (`system reset`), unmounting what is
   * left; returns what could not be cleaned (empty when the machine is as it was).
   */
  async destroy(runtimes: string[]): Promise<string[]> {
    const problems: string[] = [];
    try {
      for (const rt of runtimes) {
        const ids = (await this.run(['ps', '-aq'], { runtime: rt })).stdout.split('\n').filter(Boolean);
        const rm = ids.length ? await this.run(['rm', '-f', '-t', '0', ...ids], { runtime: rt }) : undefined;
        if (rm && rm.code !== 0) problems.push(`podman rm -f (${rt}): ${rm.stderr.trim()}`);
        const pods = (await this.run(['pod', 'ps', '-q'], { runtime: rt })).stdout.split('\n').filter(Boolean);
        const podRm = pods.length ? await this.run(['pod', 'rm', '-f', '-t', '0', ...pods], { runtime: rt }) : undefined;
        if (podRm && podRm.code !== 0) problems.push(`podman pod rm -f (${rt}): ${podRm.stderr.trim()}`);
      }
      const reset = await this.run(['system', 'reset', '-f'], { timeoutMs: 60_000 });
      if (reset.code !== 0) problems.push(`podman system reset: ${reset.stderr.trim()}`);
    } catch (e) {
      problems.push(`removing containers and storage: ${(e as Error).message}`); // a podman call failed or timed out: sweep all the same
    }
    // What should be gone by now is reported, then removed anyway so that one failure does not leak.
    const procs = killProcessesMentioning(this.dir);
    if (procs.length) problems.push(`processes left: ${procs.join('; ')}`);
    // podman keeps conmon in PARENT/conmon; any other child is a container's or a pod's.
    const children = cgroupTrees(this.cgroupParent).flatMap((t) => fs.readdirSync(t, { withFileTypes: true })
      .filter((e) => e.isDirectory() && e.name !== 'conmon').map((e) => `${path.basename(path.dirname(t))}:${e.name}`));
    if (children.length) problems.push(`container cgroups left under ${this.cgroupParent}: ${children.join(' ')}`);
    problems.push(...await sweepCgroupsAndDir(this.cgroupParent, this.dir));
    return problems;
  }
}
