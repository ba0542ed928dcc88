// A dockerd of the test's own, for test/e2e-docker.test.ts and bench/docker.ts: Debian's Docker 20.10
// with every piece of its state in one test dir (daemon.json, --data-root, --exec-root with the
// containerd it starts and supervises, its socket, pid file and trust key), no networking of its own
// (no iptables, no bridge), the cgroupfs driver under a cgroup parent of its own, and the OCI runtimes
// under test added by name (`--add-runtime NAME=PATH`). Driven with Debian's CLI, /usr/bin/docker
// (/usr/local/bin/docker may be another CLI), whose config dir is in the test dir too.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  Daemon, expectSuccess, killProcessesMentioning, runProgram, sweepCgroupsAndDir, waitUntil, type Outcome,
} from './host.js';

/** The pid in a pid file, or undefined when there is none. */
function readPid(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Whether process `pid` is still there (a zombie counts as gone: its parent, dockerd, is gone too). */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** Debian's docker CLI (20.10, the daemon's own API version). */
export const DOCKER_CLI = '/usr/bin/docker';
/** Debian's dockerd. */
export const DOCKERD = '/usr/sbin/dockerd';

/** The name a runtime under test has in dockerd (`runc` is dockerd's own default and may not be added). */
export const dockerRuntimeName = (name: string): string => `e2e-${name}`;

/** Why dockerd cannot be used here, or undefined when it can. */
export function dockerMissing(): string | undefined {
  for (const f of [DOCKERD, DOCKER_CLI]) if (!fs.existsSync(f)) return `${f} is not installed (scripts/setup.sh installs docker.io)`;
  return undefined;
}

/** A running private dockerd and a docker CLI bound to it. */
export class PrivateDocker {
  readonly socket: string;
  /** Top-level cgroup name under which dockerd puts every container (`--cgroup-parent`). */
  readonly cgroupParent = `hutch-e2e-docker-${randomBytes(3).toString('hex')}`;
  readonly execRoot: string;
  private daemon?: Daemon;

  /** `runtimes`: name in dockerd → the OCI runtime binary (dockerd's runc v2 shim runs it). */
  constructor(readonly dir: string, readonly runtimes: Record<string, string>) {
    fs.mkdirSync(dir, { recursive: true });
    this.socket = path.join(dir, 'docker.sock');
    this.execRoot = path.join(dir, 'exec');
  }

  /** Where the runtimes keep their state: the shim's `--root` for dockerd's containerd namespace. */
  get runtimeRoot(): string {
    return path.join(this.execRoot, 'runtime-runc', 'moby');
  }

  /** Writes daemon.json and starts dockerd; resolves once its API listens. */
  async start(): Promise<void> {
    const config = path.join(this.dir, 'daemon.json');
    fs.writeFileSync(config, JSON.stringify({
      // 20.10 writes a trust key, /etc/docker/key.json unless told otherwise.
      'deprecated-key-path': path.join(this.dir, 'key.json'),
      runtimes: Object.fromEntries(Object.entries(this.runtimes).map(([name, p]) => [name, { path: p }])),
    }, null, 2));
    this.daemon = new Daemon('dockerd', DOCKERD, [
      '--config-file', config,
      '--data-root', path.join(this.dir, 'data'),
      '--exec-root', this.execRoot,
      '--pidfile', path.join(this.dir, 'docker.pid'),
      '-H', `unix://${this.socket}`,
      // No networking of its own: no iptables rules, no docker0, no forwarding; containers use --network none.
      '--iptables=false', '--ip6tables=false', '--bridge=none', '--ip-masq=false', '--ip-forward=false', '--userland-proxy=false',
      // No systemd to ask for cgroups on this host.
      '--exec-opt', 'native.cgroupdriver=cgroupfs', '--cgroup-parent', `/${this.cgroupParent}`,
      '--storage-driver', process.env.HUTCH_E2E_DOCKER_STORAGE_DRIVER ?? 'overlay2',
      '--shutdown-timeout', '5',
      '--log-level', 'info',
    ], path.join(this.dir, 'dockerd.log'));
    try {
      await this.daemon.waitForLog(/API listen on /, 30_000);
    } catch (e) {
      await this.daemon.stop(); // one that never served is stopped here: destroy would ask it for containers
      this.daemon = undefined;
      throw e;
    }
  }

  /** The environment of every CLI call: this daemon, a CLI config dir of the test's own. */
  get env(): NodeJS.ProcessEnv {
    return { ...process.env, DOCKER_HOST: `unix://${this.socket}`, DOCKER_CONFIG: path.join(this.dir, 'cli') };
  }

  /** Runs `docker ARGS` to completion. */
  docker(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<Outcome> {
    return runProgram(DOCKER_CLI, args, { env: this.env, input: opts.input, timeoutMs: opts.timeoutMs ?? 60_000, cwd: this.dir });
  }

  /** Runs docker and insists on exit 0; returns stdout. */
  async ok(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    return expectSuccess(`docker ${args.join(' ')}`, await this.docker(args, opts));
  }

  /** The cgroup dir of container `id` in the v1 hierarchy of `controller`. */
  containerCgroup(controller: string, id: string): string {
    return path.join('/sys/fs/cgroup', controller, this.cgroupParent, id);
  }

  /**
   * Removes every container and image, stops dockerd (which stops its containerd), and checks that
   * its shims, mounts and cgroups went with it; returns what was left (and removes that too).
   */
  async destroy(): Promise<string[]> {
    const problems: string[] = [];
    // The containerd dockerd started for itself (its pid file in the exec root) must go with dockerd.
    const containerdPid = readPid(path.join(this.execRoot, 'containerd', 'containerd.pid'));
    if (this.daemon) {
      try {
        const ids = (await this.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
        const rm = ids.length ? await this.docker(['rm', '-f', ...ids]) : undefined;
        if (rm && rm.code !== 0) problems.push(`docker rm -f: ${rm.stderr.trim()}`);
      } catch (e) {
        problems.push(`removing containers: ${(e as Error).message}`); // a call failed or timed out: stop it all the same
      } finally {
        await this.daemon.stop(15_000);
      }
    }
    if (containerdPid !== undefined && await waitUntil(() => !alive(containerdPid), 5_000) === false) {
      problems.push(`dockerd's containerd (pid ${containerdPid}) outlived dockerd`);
    }
    // dockerd's containerd and the shims mention the exec root; any still here outlived dockerd.
    const procs = killProcessesMentioning(this.dir);
    if (procs.length) problems.push(`processes left: ${procs.join('; ')}`);
    problems.push(...await sweepCgroupsAndDir(this.cgroupParent, this.dir));
    return problems;
  }
}
