// Writes the config.json of a sandbox bundle from hutch's own, smaller description of it,
// and the plain `runc spec`-like template for `hutch spec`.
import { HutchError } from '../errors.js';
import {
  ALL_CAPABILITIES, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, PROFILE_ANNOTATION,
  defaultSeccompProfile,
} from './hardening.js';
import type { LinuxNamespace, LinuxResources, Mount, POSIXRlimit, Spec } from './types.js';

/** The runtime-spec version hutch writes (the one runc 1.1 implements). */
export const OCI_VERSION = '1.0.2-dev';

/** What hutch needs to say about a sandbox to get its config.json. */
export interface SandboxSpecInput {
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number; additionalGids?: number[] };
  terminal: boolean;
  hostname: string;
  rootfsPath: string;
  readonlyRootfs?: boolean;
  /** Extra bind mounts (the agent runtime, volumes), added after the default mounts. */
  mounts?: { source: string; destination: string; readonly: boolean; type?: 'bind' }[];
  /** Container ids 0..size-1 map to host ids hostUid.. / hostGid..; null = no user namespace. */
  idMap: { hostUid: number; hostGid: number; size: number } | null;
  /** network: true = a new network namespace (loopback only); a path = join that one (made by src/net); false = the host's. */
  namespaces: { user: boolean; pid: boolean; ipc: boolean; uts: boolean; mount: boolean; network: boolean | string; cgroup: boolean };
  seccomp: 'default' | 'strict' | 'off';
  /** Allows io_uring in the seccomp profile (off by default: seccomp cannot filter what it runs). */
  ioUring?: boolean;
  /** The bounding, effective and permitted sets; inheritable and ambient stay empty. */
  capabilities: string[];
  noNewPrivileges: boolean;
  /** Masked and read-only /proc and /sys paths, on or off. */
  maskPaths: boolean;
  limits: { memoryBytes?: number; cpus?: number; pids?: number };
  cgroupsPath: string;
  annotations?: Record<string, string>;
  rlimits?: POSIXRlimit[];
}

/** The default rlimits: 1024 open files (the host's hard limit may be low, so ask for little). */
export const DEFAULT_RLIMITS: readonly POSIXRlimit[] = [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }];

const CPU_PERIOD_US = 100000;
const MAX_ID = 0xffffffff;
// devpts' gid= option names a group in the mounting user namespace; tty is gid 5 by convention.
const TTY_GID = 5;

function invalid(field: string, reason: string, path?: string): HutchError {
  return new HutchError('EINVAL', `sandbox spec: ${field}: ${reason}`, path === undefined ? {} : { path });
}

function isId(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= MAX_ID;
}

function checkAbsolute(field: string, p: unknown): void {
  if (typeof p !== 'string' || !p.startsWith('/')) throw invalid(field, 'must be an absolute path', typeof p === 'string' ? p : undefined);
  if (p.includes('\0')) throw invalid(field, 'must not contain NUL', p);
}

function checkInput(input: SandboxSpecInput): void {
  if (!Array.isArray(input.args) || input.args.length === 0) throw invalid('args', 'must have at least one element');
  input.args.forEach((a, i) => {
    if (typeof a !== 'string') throw invalid(`args[${i}]`, 'must be a string');
    if (i === 0 && a === '') throw invalid('args[0]', 'must be a non-empty string');
  });
  input.env.forEach((e, i) => {
    if (typeof e !== 'string' || e.indexOf('=') <= 0) throw invalid(`env[${i}]`, 'must be NAME=value');
  });
  checkAbsolute('cwd', input.cwd);
  if (typeof input.rootfsPath !== 'string' || input.rootfsPath === '') throw invalid('rootfsPath', 'must be a non-empty path');
  const ids = [input.user.uid, input.user.gid, ...(input.user.additionalGids ?? [])];
  if (!ids.every(isId)) throw invalid('user', 'uid, gid and additionalGids must be integers in 0..4294967295');
  if (input.hostname.length > 64) throw invalid('hostname', 'must be at most 64 characters');
  const ns = input.namespaces;
  if (!ns.mount) throw invalid('namespaces.mount', 'a sandbox needs its own mount namespace');
  if (ns.user !== (input.idMap !== null)) throw invalid('idMap', 'must be given exactly when namespaces.user is true');
  // proc, mqueue and sethostname need the namespace to be owned by the sandbox's user namespace.
  if (ns.user && !ns.pid) throw invalid('namespaces.pid', 'must be true with a user namespace (/proc cannot be mounted otherwise)');
  if (input.hostname !== '' && !ns.uts) throw invalid('hostname', 'needs namespaces.uts');
  if (input.idMap) {
    const { hostUid, hostGid, size } = input.idMap;
    if (!isId(hostUid) || !isId(hostGid)) throw invalid('idMap', 'hostUid and hostGid must be integers in 0..4294967295');
    if (!Number.isInteger(size) || size < 1 || hostUid + size - 1 > MAX_ID || hostGid + size - 1 > MAX_ID) {
      throw invalid('idMap.size', `must be an integer ≥ 1 that keeps the range within 32 bits, got ${size}`);
    }
    for (const id of ids) if (id >= size) throw invalid('user', `id ${id} is not mapped (idMap.size is ${size})`);
  }
  for (const cap of input.capabilities) {
    if (!ALL_CAPABILITIES.includes(cap)) throw invalid('capabilities', `unknown capability "${cap}"`);
  }
  const { memoryBytes, cpus, pids } = input.limits;
  if (memoryBytes !== undefined && (!Number.isSafeInteger(memoryBytes) || memoryBytes <= 0)) throw invalid('limits.memoryBytes', 'must be a positive integer');
  if (cpus !== undefined && (!Number.isFinite(cpus) || cpus <= 0)) throw invalid('limits.cpus', 'must be a positive number');
  if (pids !== undefined && (!Number.isSafeInteger(pids) || pids <= 0)) throw invalid('limits.pids', 'must be a positive integer');
  (input.mounts ?? []).forEach((m, i) => {
    checkAbsolute(`mounts[${i}].source`, m.source);
    checkAbsolute(`mounts[${i}].destination`, m.destination);
    if (m.type !== undefined && m.type !== 'bind') throw invalid(`mounts[${i}].type`, 'only "bind" is supported');
  });
}

/** The /proc, /dev, /sys... mounts every sandbox gets, adjusted to its namespaces. */
export function defaultMounts(input: Pick<SandboxSpecInput, 'idMap' | 'namespaces'>): Mount[] {
  const { namespaces: ns, idMap } = input;
  const devptsOptions = ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'];
  if (idMap === null || idMap.size > TTY_GID) devptsOptions.push(`gid=${TTY_GID}`);
  const mounts: Mount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: devptsOptions },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
  ];
  // An mqueue mount belongs to an IPC namespace; under a user namespace it must be ours.
  if (!ns.user || ns.ipc) {
    mounts.push({ destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] });
  }
  // sysfs can only be mounted by a user namespace that owns the network namespace; otherwise
  // bind the host's /sys read-only (what rootless runc does).
  if (ns.user && ns.network !== true) {
    mounts.push({ destination: '/sys', type: 'none', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro', 'rro'] });
  } else {
    mounts.push({ destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] });
  }
  mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] });
  return mounts;
}

function namespaceList(ns: SandboxSpecInput['namespaces']): LinuxNamespace[] {
  const list: LinuxNamespace[] = [];
  if (ns.pid) list.push({ type: 'pid' });
  if (typeof ns.network === 'string') list.push({ type: 'network', path: ns.network });
  else if (ns.network) list.push({ type: 'network' });
  if (ns.ipc) list.push({ type: 'ipc' });
  if (ns.uts) list.push({ type: 'uts' });
  if (ns.mount) list.push({ type: 'mount' });
  if (ns.cgroup) list.push({ type: 'cgroup' });
  if (ns.user) list.push({ type: 'user' });
  return list;
}

function resourcesFor(limits: SandboxSpecInput['limits']): LinuxResources {
  // Deny every device; runc still allows its built-in safe set (null, zero, tty, ...).
  const resources: LinuxResources = { devices: [{ allow: false, access: 'rwm' }] };
  if (limits.memoryBytes !== undefined) resources.memory = { limit: limits.memoryBytes };
  if (limits.cpus !== undefined) {
    resources.cpu = { quota: Math.max(1000, Math.round(limits.cpus * CPU_PERIOD_US)), period: CPU_PERIOD_US };
  }
  if (limits.pids !== undefined) resources.pids = { limit: limits.pids };
  return resources;
}

/** The config.json of a hutch sandbox; throws HutchError('EINVAL') on inconsistent input. */
export function buildSandboxSpec(input: SandboxSpecInput): Spec {
  checkInput(input);
  const caps = [...new Set(input.capabilities)];
  const user: { uid: number; gid: number; additionalGids?: number[] } = { uid: input.user.uid, gid: input.user.gid };
  if (input.user.additionalGids && input.user.additionalGids.length > 0) user.additionalGids = [...input.user.additionalGids];
  const extraMounts: Mount[] = (input.mounts ?? []).map((m) => ({
    destination: m.destination,
    type: 'bind',
    source: m.source,
    options: m.readonly ? ['rbind', 'ro', 'rro', 'nosuid', 'nodev'] : ['rbind', 'rw', 'nosuid', 'nodev'],
  }));
  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: input.terminal,
      user,
      args: [...input.args],
      env: [...input.env],
      cwd: input.cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      rlimits: (input.rlimits ?? DEFAULT_RLIMITS).map((r) => ({ ...r })),
      noNewPrivileges: input.noNewPrivileges,
    },
    root: { path: input.rootfsPath, readonly: input.readonlyRootfs ?? false },
    mounts: [...defaultMounts(input), ...extraMounts],
    linux: {
      namespaces: namespaceList(input.namespaces),
      cgroupsPath: input.cgroupsPath,
      resources: resourcesFor(input.limits),
    },
  };
  if (input.hostname !== '') spec.hostname = input.hostname;
  if (input.annotations && Object.keys(input.annotations).length > 0) spec.annotations = { ...input.annotations };
  const linux = spec.linux!;
  if (input.idMap) {
    linux.uidMappings = [{ containerID: 0, hostID: input.idMap.hostUid, size: input.idMap.size }];
    linux.gidMappings = [{ containerID: 0, hostID: input.idMap.hostGid, size: input.idMap.size }];
  }
  if (input.seccomp !== 'off') linux.seccomp = defaultSeccompProfile(process.arch, input.seccomp, { capabilities: caps, ioUring: input.ioUring === true });
  if (input.maskPaths) {
    linux.maskedPaths = [...DEFAULT_MASKED_PATHS];
    linux.readonlyPaths = [...DEFAULT_READONLY_PATHS];
  }
  return spec;
}

/** Options of `hutch spec`: a rootless template maps the caller's ids to root. */
export interface SpecTemplateOptions {
  rootless?: boolean;
  hostUid?: number;
  hostGid?: number;
}

/** The starting-point config.json of `hutch spec [--rootless]`, like `runc spec` writes. */
export function specTemplate(options: SpecTemplateOptions = {}): Spec {
  const rootless = options.rootless ?? false;
  const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  const namespaces = { user: rootless, pid: true, ipc: true, uts: true, mount: true, network: !rootless, cgroup: false };
  const mounts = defaultMounts({ namespaces, idMap: rootless ? { hostUid: 0, hostGid: 0, size: 1 } : null });
  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ['sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, ambient: caps },
      rlimits: DEFAULT_RLIMITS.map((r) => ({ ...r })),
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'hutch',
    // hutch's own template asks for its profile (OCI mode adds it only when asked: docs/oci-runtime.md).
    annotations: { [PROFILE_ANNOTATION]: 'default' },
    mounts,
    linux: {
      namespaces: namespaceList(namespaces),
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
    },
  };
  if (rootless) {
    const uid = options.hostUid ?? process.getuid?.() ?? 0;
    const gid = options.hostGid ?? process.getgid?.() ?? 0;
    spec.linux!.uidMappings = [{ containerID: 0, hostID: uid, size: 1 }];
    spec.linux!.gidMappings = [{ containerID: 0, hostID: gid, size: 1 }];
  } else {
    spec.linux!.resources = { devices: [{ allow: false, access: 'rwm' }] };
  }
  return spec;
}

/** config.json text for a spec: two-space indented JSON with a final newline. */
export function specToJson(spec: Spec): string {
  return `${JSON.stringify(spec, null, 2)}\n`;
}
