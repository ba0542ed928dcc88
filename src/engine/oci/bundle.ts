// The private bundle: a copy of the caller's config.json that the executor is given. Paths the
// caller left relative to its bundle are made absolute, and hutch's profile adds hardening only
// when the caller asks for it (docs/oci-runtime.md lists each change).
import fs from 'node:fs';
import path from 'node:path';
import { HutchError, errnoCode } from '../../errors.js';
import {
  DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, IO_URING_ANNOTATION, PROFILE_ANNOTATION, defaultSeccompProfile,
  profileFromAnnotations, type Spec,
} from '../../oci/index.js';

/** The hardening profile of an OCI container: the caller's `dev.hutch.profile` annotation. */
export type OciProfile = 'off' | 'default' | 'strict';

// Engines say "privileged" and "unconfined" by leaving linux.seccomp, maskedPaths and readonlyPaths
// out (containerd's CRI, podman, docker), and the runtime-spec says an absent field means none:
// so without the annotation hutch adds nothing, as runc. With it, the caller (or an operator, through
// containerd's pod_annotations) asks hutch to fill in what the spec leaves out.

/** A namespace the container joins: `/proc/<pid>/ns/<file>` of its pod's sandbox. */
export interface JoinedNamespace { type: string; path: string }

/** What shapes the private spec beyond the caller's own. */
export interface PrivateSpecOptions {
  /** Namespaces (by OCI type) to join because the container belongs to a pod. */
  join?: JoinedNamespace[];
  /** The host's hard limits hutch cannot raise (no CAP_SYS_RESOURCE), by rlimit type. */
  hardLimits?: Record<string, number>;
}

/** The profile a spec asks for: off when it names none; EINVAL for an unknown name. */
export function profileOf(spec: Spec): OciProfile {
  const asked = spec.annotations?.[PROFILE_ANNOTATION];
  if (asked === undefined || asked === 'off') return 'off';
  try {
    return profileFromAnnotations(spec.annotations);
  } catch (e) {
    throw new HutchError('EINVAL', `config.json: annotations["${PROFILE_ANNOTATION}"]: want off, default or strict`, { cause: e });
  }
}

/** The rootfs of `spec` as an absolute path; ENOTFOUND when it is not a directory. */
export function resolveRootfs(spec: Spec, callerBundle: string): string {
  const rootfs = path.resolve(callerBundle, spec.root!.path);
  let st: fs.Stats;
  try {
    st = fs.statSync(rootfs);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') {
      throw new HutchError('ENOTFOUND', `config.json: root.path: rootfs (${rootfs}) does not exist`, { path: rootfs, cause: e });
    }
    throw e;
  }
  if (!st.isDirectory()) throw new HutchError('EINVAL', `config.json: root.path: rootfs (${rootfs}) is not a directory`, { path: rootfs });
  return rootfs;
}

const isBind = (m: { type?: string; options?: string[] }) => m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');

/** The spec the executor runs: a deep copy of the caller's with the changes above. */
export function privateSpec(callerSpec: Spec, callerBundle: string, opts: PrivateSpecOptions = {}): Spec {
  const spec = structuredClone(callerSpec);
  spec.root!.path = resolveRootfs(spec, callerBundle);
  // runc resolves relative bind sources against the bundle it is given: keep them the caller's.
  for (const m of spec.mounts ?? []) {
    if (m.source !== undefined && isBind(m) && !path.isAbsolute(m.source)) m.source = path.resolve(callerBundle, m.source);
  }
  const linux = (spec.linux ??= {});
  for (const ns of opts.join ?? []) {
    const entry = linux.namespaces?.find((n) => n.type === ns.type);
    if (entry && entry.path === undefined) entry.path = ns.path;
  }
  clampRlimits(spec, opts.hardLimits ?? {});
  const profile = profileOf(spec);
  if (profile === 'off') return spec;
  const hasMountNs = (linux.namespaces ?? []).some((n) => n.type === 'mount');
  if (hasMountNs && linux.maskedPaths === undefined) linux.maskedPaths = [...DEFAULT_MASKED_PATHS];
  if (hasMountNs && linux.readonlyPaths === undefined) linux.readonlyPaths = [...DEFAULT_READONLY_PATHS];
  if (linux.seccomp === undefined) {
    linux.seccomp = defaultSeccompProfile(process.arch, profile, {
      capabilities: spec.process?.capabilities?.bounding, ioUring: spec.annotations?.[IO_URING_ANNOTATION] === 'allow',
    });
  }
  if (profile === 'strict' && spec.process && spec.process.noNewPrivileges === undefined) spec.process.noNewPrivileges = true;
  return spec;
}

// An rlimit above a hard limit hutch cannot raise makes runc fail at start ("operation not
// permitted"); engines ask for more than this host allows (podman: nofile 1048576).
function clampRlimits(spec: Spec, hardLimits: Record<string, number>): void {
  for (const r of spec.process?.rlimits ?? []) {
    const max = hardLimits[r.type];
    if (max === undefined) continue;
    if (r.hard > max) r.hard = max;
    if (r.soft > r.hard) r.soft = r.hard;
  }
}

const LIMIT_NAMES: Record<string, string> = { 'Max open files': 'RLIMIT_NOFILE', 'Max processes': 'RLIMIT_NPROC' };
const CAP_SYS_RESOURCE = 24n;

/** The hard limits hutch cannot raise: empty when it holds CAP_SYS_RESOURCE. */
export function unraisableHardLimits(): Record<string, number> {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (capEff !== undefined && (BigInt(`0x${capEff}`) >> CAP_SYS_RESOURCE) & 1n) return {};
  const limits: Record<string, number> = {};
  for (const line of fs.readFileSync('/proc/self/limits', 'utf8').split('\n')) {
    for (const [label, type] of Object.entries(LIMIT_NAMES)) {
      if (!line.startsWith(label)) continue;
      const hard = line.slice(label.length).trim().split(/\s+/)[1];
      if (hard !== undefined && /^\d+$/.test(hard)) limits[type] = Number(hard);
    }
  }
  return limits;
}

/** True when the spec has a hook of any kind (hooks are what see the bundle path the executor records). */
export function hasHooks(spec: Spec): boolean {
  return Object.values(spec.hooks ?? {}).some((list) => Array.isArray(list) && list.length > 0);
}

/** Writes the private bundle's config.json (the dir is hutch's, mode 0700). */
export function writePrivateBundle(dir: string, spec: Spec): void {
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec), { mode: 0o600 });
}
