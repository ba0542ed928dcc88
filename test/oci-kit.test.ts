// Shared helpers for the tests that run real sandboxes with runc: a busybox rootfs owned by a
// host id range, bundles, runs with a timeout, and cleanup that checks nothing is left in the
// cgroup hierarchies. It holds no tests itself (named *.test.ts to live beside the OCI tests).
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, rm, rmdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { errnoCode } from '../src/errors.js';
import { type SandboxSpecInput, type Spec, DEFAULT_CAPABILITIES, specToJson } from '../src/oci/index.js';
import './suite-run.js'; // marks the processes this file starts as this run's (test/suite-run.ts)

const run = promisify(execFile);

/** The first host id of the range the test rootfs is owned by and the sandbox maps to 0. */
export const HOST_ID = 1000000000;
/** How many ids the test sandboxes map. */
export const ID_COUNT = 65536;
const BUSYBOX = '/bin/busybox';

/** Why real runc tests cannot run here, or undefined when they can. */
export async function runcSkipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!existsSync(BUSYBOX)) return `needs ${BUSYBOX} (busybox-static)`;
  try {
    await run('runc', ['--version']);
  } catch (e) {
    return `runc is not usable: ${(e as Error).message}`;
  }
  return undefined;
}

/** What a sandbox printed and how it ended. */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `key=value` lines of `stdout` as a map (the probes print their findings that way). */
export function parseFindings(stdout: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) found.set(line.slice(0, eq), line.slice(eq + 1).trim());
  }
  return found;
}

/** The cgroup directories (one per hierarchy) under which runc puts a relative cgroupsPath. */
function ownCgroupDirs(): string[] {
  const dirs: string[] = [];
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n')) {
    const [, controllers = '', path = '/'] = line.split(':');
    const candidates = controllers === ''
      ? ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']
      : [`/sys/fs/cgroup/${controllers.replace(/^name=/, '')}`, ...controllers.split(',').map((c) => `/sys/fs/cgroup/${c.replace(/^name=/, '')}`)];
    const base = candidates.find((c) => existsSync(c));
    if (base !== undefined) dirs.push(join(base, path));
  }
  return [...new Set(dirs)];
}

/** A temp dir with a busybox rootfs, bundles for each container, and the ids to clean up. */
export class RuncLab {
  private readonly ids: string[] = [];
  private counter = 0;
  /** The cgroup parent of this lab's containers, unique so parallel test files never race on it. */
  readonly cgroupParent: string;

  private constructor(readonly dir: string, readonly rootfs: string, label: string) {
    this.cgroupParent = `hutch-test-${label}-${process.pid}`;
  }

  /** Makes the temp dir and a busybox rootfs owned by HOST_ID. */
  static async create(label: string): Promise<RuncLab> {
    const dir = await mkdtemp(join(tmpdir(), `hutch-test-${label}-`));
    // The sandbox's root is an unprivileged host id: it must be able to walk to the rootfs.
    await chmod(dir, 0o755);
    const lab = new RuncLab(dir, join(dir, 'rootfs'), label);
    try {
      await lab.buildRootfs();
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
    return lab;
  }

  private async buildRootfs(): Promise<void> {
    const bin = join(this.rootfs, 'bin');
    for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc', 'mnt', 'root']) await mkdir(join(this.rootfs, d), { recursive: true });
    await copyFile(BUSYBOX, join(bin, 'busybox'));
    const { stdout } = await run(BUSYBOX, ['--list']);
    for (const applet of stdout.split('\n')) {
      if (applet !== '' && applet !== 'busybox') await symlink('busybox', join(bin, applet));
    }
    await writeFile(join(this.rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
    await writeFile(join(this.rootfs, 'etc/group'), 'root:x:0:\ntty:x:5:\nnobody:x:65534:\n');
    await chmod(join(this.rootfs, 'tmp'), 0o1777);
    await run('chown', ['-R', '-h', `${HOST_ID}:${HOST_ID}`, this.rootfs]);
  }

  /** A fresh container id with the hutch-test- prefix. */
  newId(name: string): string {
    const id = `hutch-test-${name}-${process.pid}-${++this.counter}`;
    this.ids.push(id);
    return id;
  }

  /** A sandbox input for this lab: every namespace, default hardening, small limits. */
  input(id: string, script: string, over: Partial<SandboxSpecInput> = {}): SandboxSpecInput {
    return {
      args: ['/bin/sh', '-c', script],
      env: ['PATH=/bin', 'HOME=/root'],
      cwd: '/',
      user: { uid: 0, gid: 0 },
      terminal: false,
      hostname: 'hutchbox',
      rootfsPath: this.rootfs,
      idMap: { hostUid: HOST_ID, hostGid: HOST_ID, size: ID_COUNT },
      namespaces: { user: true, pid: true, ipc: true, uts: true, mount: true, network: true, cgroup: true },
      seccomp: 'default',
      capabilities: [...DEFAULT_CAPABILITIES],
      noNewPrivileges: true,
      maskPaths: true,
      limits: { memoryBytes: 256 * 1024 * 1024, cpus: 1, pids: 64 },
      cgroupsPath: `${this.cgroupParent}/${id}`,
      ...over,
    };
  }

  /** Writes the bundle for `id` and runs it to the end with `runc run`. */
  async run(id: string, spec: Spec, timeoutMs = 60000): Promise<RunResult> {
    const bundle = join(this.dir, 'bundles', id);
    await mkdir(bundle, { recursive: true });
    await chmod(bundle, 0o755);
    await writeFile(join(bundle, 'config.json'), specToJson(spec));
    return new Promise((resolve, reject) => {
      const child = spawn('runc', ['run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '', stderr = '';
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      const timer = setTimeout(() => {
        reject(new Error(`runc run ${id} took more than ${timeoutMs} ms`));
        child.kill('SIGKILL');
      }, timeoutMs);
      child.on('error', (e) => { clearTimeout(timer); reject(e); });
      child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    });
  }

  /** The cgroup directories of this lab that still exist (should be none after cleanup). */
  leftoverCgroups(): string[] {
    return ownCgroupDirs().map((d) => join(d, this.cgroupParent)).filter((d) => existsSync(d));
  }

  /** Force-deletes every container, removes the lab's cgroup parents and its temp dir. */
  async cleanup(): Promise<void> {
    const failures: string[] = [];
    for (const id of this.ids) {
      try {
        await run('runc', ['delete', '-f', id]);
      } catch (e) {
        // `runc run` deletes a container that ran to the end; only other failures count.
        const stderr = String((e as { stderr?: unknown }).stderr ?? '');
        if (!/does not exist/.test(stderr)) failures.push(`runc delete -f ${id}: ${stderr.trim() || (e as Error).message}`);
      }
    }
    for (const parent of this.leftoverCgroups()) {
      // runc removes each container's cgroup but not the parent it created for it.
      for (const child of await readdir(parent, { withFileTypes: true })) {
        if (child.isDirectory()) failures.push(`cgroup ${join(parent, child.name)} was left behind`);
      }
      try {
        await rmdir(parent);
      } catch (e) {
        if (errnoCode(e) !== 'ENOENT') failures.push(`rmdir ${parent}: ${(e as Error).message}`);
      }
    }
    await rm(this.dir, { recursive: true, force: true });
    if (failures.length > 0) throw new Error(`cleanup failed: ${failures.join('; ')}`);
  }
}

/** Read-only binds that bring the host's node (with its libraries, loader and `node_modules`) into a sandbox. */
export async function nodeRuntimeMounts(nodeModulesDir: string): Promise<NonNullable<SandboxSpecInput['mounts']>> {
  const { stdout } = await run('ldd', [process.execPath]);
  const mounts: NonNullable<SandboxSpecInput['mounts']> = [{ source: process.execPath, destination: '/.hutch/node', readonly: true }];
  for (const line of stdout.split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m?.[1]) mounts.push({ source: m[1], destination: `/.hutch/lib/${basename(m[1])}`, readonly: true });
  }
  mounts.push({ source: nodeModulesDir, destination: '/.hutch/node_modules', readonly: true });
  return mounts;
}

/** The argv that starts node inside a sandbox the way hutch's agent is started. */
export function nodeArgs(script: string): string[] {
  return ['/.hutch/lib/ld-linux-x86-64.so.2', '--library-path', '/.hutch/lib', '/.hutch/node', script];
}

/** The node_modules directory holding `pkg`, or undefined when it is not installed. */
export function nodeModulesHolding(pkg: string, from: string): string | undefined {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'node_modules', pkg, 'package.json'))) return join(dir, 'node_modules');
  }
  return undefined;
}
