// What of hutch's (and of the tests') is on this machine now: temp dirs, cgroups, mounts, network
// links, state roots, and processes with what ties them to a run. Every process may exit while it is
// read: a vanished one (ENOENT, ESRCH) is skipped, any other error thrown.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../src/errors.js';
import { processVanished, readProcFile } from '../src/linux/index.js';

/** Names of /tmp/hutch-* entries. */
export function hutchTempDirs(): string[] {
  return fs.readdirSync('/tmp').filter((n) => n.startsWith('hutch-')).sort();
}

/** Cgroup dirs named hutch* at the top of every hierarchy (sandboxes' are /hutch-<id>). */
export function hutchCgroups(): string[] {
  const found: string[] = [];
  for (const top of fs.readdirSync('/sys/fs/cgroup')) {
    if (top.startsWith('hutch')) found.push(path.join('/sys/fs/cgroup', top));
    const dir = path.join('/sys/fs/cgroup', top);
    try {
      for (const e of fs.readdirSync(dir)) if (e.startsWith('hutch')) found.push(path.join(dir, e));
    } catch { /* not a dir (a file of a v2 root) */ }
  }
  return found;
}

/** A line of /proc/self/mountinfo, with its mount point unescaped. */
export interface MountLine { point: string; line: string }

/** Mounts whose line mentions hutch. */
export function hutchMounts(): MountLine[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => /hutch/.test(l))
    .map((line) => ({ point: unescapeMountPath(line.split(' ')[4] ?? ''), line }));
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Network links whose name is hutch's. */
export function hutchLinks(): string[] {
  const links = spawnSync('ip', ['-o', 'link'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /hutch|hv[0-9a-f]|htap/.test(l))
    .map((l) => l.split(':')[1]!.trim().split('@')[0]!);
  // hutch's nftables table goes with its last bridge (src/net): counted with the links.
  const tables = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' }).stdout ?? '';
  return /^table inet hutch$/m.test(tables) ? [...links, 'nftables table inet hutch'] : links;
}

/**
 * Dirs that may be state roots: hutch's (with a `sandboxes` dir) in /run and /tmp, and every dir in
 * /run named hutch* (OCI mode keeps one dir per container at the top of its root).
 */
export function stateRootsOnHost(): string[] {
  const roots: string[] = [];
  for (const parent of ['/run', '/tmp']) {
    for (const e of fs.readdirSync(parent, { withFileTypes: true })) {
      const dir = path.join(parent, e.name);
      if (e.isDirectory() && ((parent === '/run' && e.name.startsWith('hutch')) || fs.existsSync(path.join(dir, 'sandboxes')))) roots.push(dir);
    }
  }
  return roots;
}

/** A live process as a leak check sees it. */
export interface ProcessSeen {
  pid: number;
  /** Its command line, arguments joined by spaces. */
  command: string;
  /** Its environment at exec. */
  environ: string[];
  /** Its working dir (the host's view). */
  cwd: string;
  /** The top-level cgroup of each of its cgroup paths ('hutch-<id>' for a sandbox's), '' for the root. */
  cgroups: string[];
}

/**
 * The processes on the machine now (of `pids`, by default all): kernel threads, zombies and those
 * that exit while they are read are left out.
 */
export function processesOnHost(pids: number[] = allPids()): ProcessSeen[] {
  const out: ProcessSeen[] = [];
  for (const pid of pids) {
    const cmdline = readProcFile(pid, 'cmdline');
    const environ = readInspected(pid, () => readProcFile(pid, 'environ'));
    const cgroup = readProcFile(pid, 'cgroup');
    const cwd = readInspected(pid, () => readProcLink(pid, 'cwd'));
    if (!cmdline || environ === null || cgroup === null || cwd === null) continue; // gone, a kernel thread or a zombie
    const cgroups = [...new Set(cgroup.split('\n').filter(Boolean).map((l) => l.slice(l.indexOf(':', l.indexOf(':') + 1) + 1).split('/')[1] ?? ''))];
    out.push({ pid, command: cmdline.split('\0').filter(Boolean).join(' '), environ: environ.split('\0').filter(Boolean), cwd, cgroups });
  }
  return out;
}

/** Every pid in /proc now. */
function allPids(): number[] {
  return fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
}

/**
 * A file of /proc/PID that only a process allowed to ptrace it may read (environ, cwd): '' when this
 * one may not (EACCES: the init of another user namespace), null when the process is gone.
 */
function readInspected(pid: number, read: () => string | null): string | null {
  try {
    return read();
  } catch (e) {
    // readProcFile wraps the system error; readlink's is thrown as it is.
    if (errnoCode(e) === 'EACCES' || errnoCode((e as Error).cause) === 'EACCES') return '';
    throw e;
  }
}

/** readlink of /proc/PID/<name>; null when the process is gone. */
function readProcLink(pid: number, name: string): string | null {
  try {
    return fs.readlinkSync(`/proc/${pid}/${name}`);
  } catch (e) {
    if (processVanished(e)) return null;
    throw e;
  }
}

/** The pids of this process and its ancestors (the test runner, the shell, ...). */
export function selfAndAncestors(): Set<number> {
  const out = new Set<number>();
  for (let pid = process.pid; pid > 1 && !out.has(pid);) {
    out.add(pid);
    const stat = readProcFile(pid, 'stat');
    if (!stat) break;
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return out;
}
