// What this host can do, for `hutch info`: each feature says whether it is there and, if not, why.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isHutchError } from '../errors.js';
import { readFileIfExists } from './optional-file.js';
import { cgroupControllers, detectCgroupMode, type CgroupMode } from './cgroups.js';

/** One host feature: available or not, and a one-line detail (what was found, or why not). */
export interface Feature { available: boolean; detail: string }

/** An external tool: where it is and its version when available. */
export interface ToolFeature extends Feature { path?: string; version?: string }

/** Everything `hutch info` shows about the host. */
export interface HostProbe {
  kernel: string;
  cgroups: Feature & { mode: CgroupMode | null; controllers: string[]; unifiedControllers: string[] };
  userNamespaces: Feature;
  seccomp: Feature;
  overlayfs: Feature;
  runc: ToolFeature;
  crun: ToolFeature;
  criu: ToolFeature;
  qemu: ToolFeature;
  firecracker: ToolFeature;
  kvm: Feature;
  tun: Feature;
  fuse: Feature;
}

/** Dirs searched after $PATH: root's tools live in sbin dirs that a user's PATH may lack. */
const EXTRA_BIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** The absolute path of an executable named `name` in $PATH (or the usual bin dirs), or null. */
export function findExecutable(name: string): string | null {
  const dirs = [...(process.env['PATH'] ?? '').split(':').filter((d) => path.isAbsolute(d)), ...EXTRA_BIN_DIRS];
  for (const dir of dirs) {
    const file = path.join(dir, name);
    try {
      if (fs.statSync(file).isFile()) {
        fs.accessSync(file, fs.constants.X_OK);
        return file;
      }
    } catch {
      // Not here (or not executable): look in the next dir.
    }
  }
  return null;
}

const TOOL_TIMEOUT_MS = 3000;

/** Runs a short command; resolves with its exit code and output, never rejects (the caller reports failures). */
async function run(file: string, args: string[]): Promise<{ code: number | null; out: string; error?: string }> {
  // Loaded here, not at the top: child_process costs the CLI's every start ~1 ms and only `hutch info` needs it.
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    execFile(file, args, { timeout: TOOL_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err === null) resolve({ code: 0, out: stdout + stderr });
      else resolve({ code: typeof err.code === 'number' ? err.code : null, out: stdout + stderr, error: err.message.split('\n')[0]! });
    });
  });
}

/** Finds a tool and asks for its version (`--version`). */
async function probeTool(name: string, versionArgs = ['--version']): Promise<ToolFeature> {
  const file = findExecutable(name);
  if (file === null) return { available: false, detail: `${name} not found in PATH` };
  const r = await run(file, versionArgs);
  if (r.code !== 0) return { available: false, path: file, detail: `${file} ${versionArgs.join(' ')} failed: ${r.error ?? r.out.trim()}` };
  const firstLine = r.out.trim().split('\n')[0] ?? '';
  const version = /\d+\.\d+(\.\d+)?[^\s,]*/.exec(firstLine)?.[0];
  return version === undefined
    ? { available: true, path: file, detail: `${file}: ${firstLine}` }
    : { available: true, path: file, version, detail: `${file} ${version}` };
}


/** A character device's presence and access; never opened (a /dev/kvm guest is not launched here). */
function probeDevice(file: string): Feature {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return { available: false, detail: `${file} does not exist` };
  }
  if (!st.isCharacterDevice()) return { available: false, detail: `${file} is not a character device` };
  const major = Number((BigInt(st.rdev) >> 8n) & 0xfffn), minor = Number((BigInt(st.rdev) & 0xffn) | ((BigInt(st.rdev) >> 12n) & 0xfff00n));
  try {
    fs.accessSync(file, fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return { available: false, detail: `${file} (${major}:${minor}) is not readable and writable by this user` };
  }
  return { available: true, detail: `${file} (${major}:${minor})` };
}

/** User namespaces: allowed by sysctl, and creating one actually works (`unshare -U true`). */
async function probeUserNamespaces(): Promise<Feature> {
  const max = readFileIfExists('/proc/sys/user/max_user_namespaces')?.trim();
  if (max === undefined) return { available: false, detail: 'kernel without user namespaces (/proc/sys/user/max_user_namespaces missing)' };
  if (Number(max) <= 0) return { available: false, detail: 'user.max_user_namespaces is 0' };
  const unshare = findExecutable('unshare');
  if (unshare === null) return { available: false, detail: 'unshare(1) not found to test user namespaces' };
  const r = await run(unshare, ['-U', 'true']);
  return r.code === 0
    ? { available: true, detail: `max_user_namespaces=${max}; unshare -U works` }
    : { available: false, detail: `unshare -U failed: ${r.error ?? r.out.trim()}` };
}

/** seccomp filters: the kernel lists the filter actions it supports. */
function probeSeccomp(): Feature {
  const actions = readFileIfExists('/proc/sys/kernel/seccomp/actions_avail')?.trim();
  return actions === undefined
    ? { available: false, detail: 'kernel without seccomp filters (/proc/sys/kernel/seccomp/actions_avail missing)' }
    : { available: true, detail: `actions: ${actions}` };
}

/** overlayfs registered with the kernel (a module not yet loaded is not listed). */
function probeOverlayfs(): Feature {
  const listed = (readFileIfExists('/proc/filesystems') ?? '').split('\n').some((l) => l.split('\t')[1] === 'overlay');
  return listed
    ? { available: true, detail: 'overlay in /proc/filesystems' }
    : { available: false, detail: 'overlay not in /proc/filesystems (modprobe overlay?)' };
}

/** cgroup mode and the controllers available. */
function probeCgroups(): HostProbe['cgroups'] {
  try {
    const mode = detectCgroupMode();
    const { v1, v2 } = cgroupControllers();
    const controllers = mode === 'v2' ? v2 : v1;
    const detail = mode === 'hybrid' ? `hybrid: v1 ${v1.join(' ')}; v2 ${v2.join(' ') || '(none)'}` : `${mode}: ${controllers.join(' ')}`;
    return { available: true, detail, mode, controllers, unifiedControllers: v2 };
  } catch (e) {
    if (!isHutchError(e)) throw e;
    return { available: false, detail: e.message, mode: null, controllers: [], unifiedControllers: [] };
  }
}

/** Probes the host; the slow parts (version commands, the unshare test) run concurrently. */
export async function probeHost(): Promise<HostProbe> {
  const [userNamespaces, runc, crun, criu, qemu, firecracker] = await Promise.all([
    probeUserNamespaces(),
    probeTool('runc'),
    probeTool('crun'),
    probeTool('criu'),
    probeTool('qemu-system-x86_64'),
    probeTool('firecracker'),
  ]);
  return {
    kernel: os.release(),
    cgroups: probeCgroups(),
    userNamespaces,
    seccomp: probeSeccomp(),
    overlayfs: probeOverlayfs(),
    runc, crun, criu, qemu, firecracker,
    kvm: probeDevice('/dev/kvm'),
    tun: probeDevice('/dev/net/tun'),
    fuse: probeDevice('/dev/fuse'),
  };
}
