// Validation of a parsed config.json against the OCI runtime-spec, with errors that name
// the field and the reason. Unknown fields are allowed (the spec permits extensions).
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { HutchError, errnoCode } from '../errors.js';
import { ALL_CAPABILITIES } from './hardening.js';
import { HOOK_KINDS, type Spec } from './types.js';
import { checkIdMappings, checkLinux } from './validate-linux.js';
import {
  type JsonObject, type SpecProblem, ProblemList, expectArray, expectBoolean, expectInteger,
  expectObject, expectString, expectStringArray, expectStringMap, expectUint32, expectUint64,
  field, isObject, optional, reportDuplicates, required, show,
} from './validate-util.js';

export type { SpecProblem } from './validate-util.js';

/** The rlimit types Linux has. */
export const RLIMIT_TYPES: readonly string[] = [
  'RLIMIT_AS', 'RLIMIT_CORE', 'RLIMIT_CPU', 'RLIMIT_DATA', 'RLIMIT_FSIZE', 'RLIMIT_LOCKS',
  'RLIMIT_MEMLOCK', 'RLIMIT_MSGQUEUE', 'RLIMIT_NICE', 'RLIMIT_NOFILE', 'RLIMIT_NPROC',
  'RLIMIT_RSS', 'RLIMIT_RTPRIO', 'RLIMIT_RTTIME', 'RLIMIT_SIGPENDING', 'RLIMIT_STACK',
];

/** How strict validation is: `create` (default) needs `process`; `any` accepts a spec without it. */
export interface ValidateOptions {
  purpose?: 'create' | 'any';
  /** The file the spec came from, for the error's path and message prefix. */
  file?: string;
}

const VERSION_PATTERN = /^(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

/** The runtime-spec major version hutch takes: the spec keeps every 1.x compatible with 1.0. */
export const SUPPORTED_SPEC_MAJOR = 1;

// As runc: any 1.x (fields of a later minor that hutch and its executor do not know are ignored);
// another major, or a version that is not SemVer, is refused.
function checkVersion(p: ProblemList, value: unknown): void {
  const version = expectString(p, 'ociVersion', value);
  if (version === undefined) return;
  const m = VERSION_PATTERN.exec(version);
  if (!m) p.add('ociVersion', `${show(version)} is not a SemVer version (want ${SUPPORTED_SPEC_MAJOR}.MINOR.PATCH)`);
  else if (Number(m[1]) !== SUPPORTED_SPEC_MAJOR) {
    p.add('ociVersion', `${show(version)} is runtime-spec major version ${m[1]}, which hutch does not support (want ${SUPPORTED_SPEC_MAJOR}.x)`);
  }
}

function checkEnv(p: ProblemList, path: string, value: unknown): void {
  expectArray(p, path, value, (itemPath, item) => {
    const entry = expectString(p, itemPath, item);
    if (entry === undefined || entry.includes('\0')) return;
    if (!entry.includes('=')) p.add(itemPath, `must be NAME=value, got ${show(entry)}`);
    else if (entry.startsWith('=')) p.add(itemPath, `has an empty variable name: ${show(entry)}`);
  });
}

function checkUser(p: ProblemList, path: string, value: unknown): void {
  const user = expectObject(p, path, value);
  if (!user) return;
  required(p, user, path, 'uid', (f, v) => expectUint32(p, f, v));
  required(p, user, path, 'gid', (f, v) => expectUint32(p, f, v));
  optional(user, path, 'umask', (f, v) => expectInteger(p, f, v, 0, 0o777));
  optional(user, path, 'additionalGids', (f, v) => expectArray(p, f, v, (itemPath, item) => expectUint32(p, itemPath, item)));
  optional(user, path, 'username', (f, v) => expectString(p, f, v));
}

function checkCapabilities(p: ProblemList, path: string, value: unknown): void {
  const caps = expectObject(p, path, value);
  if (!caps) return;
  for (const set of ['bounding', 'effective', 'inheritable', 'permitted', 'ambient']) {
    optional(caps, path, set, (f, v) => expectArray(p, f, v, (itemPath, item) => {
      const name = expectString(p, itemPath, item);
      if (name !== undefined && !ALL_CAPABILITIES.includes(name)) p.add(itemPath, `unknown capability ${show(name)}`);
    }));
  }
}

function checkRlimits(p: ProblemList, path: string, value: unknown): void {
  const types: (string | undefined)[] = [];
  expectArray(p, path, value, (itemPath, item) => {
    const r = expectObject(p, itemPath, item);
    if (!r) return types.push(undefined);
    let type: string | undefined, soft: number | undefined, hard: number | undefined;
    required(p, r, itemPath, 'type', (f, v) => { type = expectString(p, f, v, { oneOf: RLIMIT_TYPES }); });
    required(p, r, itemPath, 'soft', (f, v) => { soft = expectUint64(p, f, v); });
    required(p, r, itemPath, 'hard', (f, v) => { hard = expectUint64(p, f, v); });
    if (soft !== undefined && hard !== undefined && soft > hard) p.add(itemPath, `soft limit ${soft} is above hard limit ${hard}`);
    types.push(type);
  });
  reportDuplicates(p, path, types, 'rlimit type');
}

function checkProcess(p: ProblemList, path: string, value: unknown): void {
  const proc = expectObject(p, path, value);
  if (!proc) return;
  optional(proc, path, 'terminal', (f, v) => expectBoolean(p, f, v));
  optional(proc, path, 'consoleSize', (f, v) => {
    const size = expectObject(p, f, v);
    if (!size) return;
    required(p, size, f, 'height', (ff, vv) => expectUint32(p, ff, vv));
    required(p, size, f, 'width', (ff, vv) => expectUint32(p, ff, vv));
  });
  required(p, proc, path, 'user', (f, v) => checkUser(p, f, v));
  required(p, proc, path, 'args', (f, v) => {
    const args = expectArray(p, f, v, (itemPath, item, i) => expectString(p, itemPath, item, { nonEmpty: i === 0 }));
    if (args && args.length === 0) p.add(f, 'must have at least one element (the program to run)');
  });
  optional(proc, path, 'env', (f, v) => checkEnv(p, f, v));
  required(p, proc, path, 'cwd', (f, v) => expectString(p, f, v, { absolute: true }));
  optional(proc, path, 'capabilities', (f, v) => checkCapabilities(p, f, v));
  optional(proc, path, 'rlimits', (f, v) => checkRlimits(p, f, v));
  optional(proc, path, 'noNewPrivileges', (f, v) => expectBoolean(p, f, v));
  optional(proc, path, 'apparmorProfile', (f, v) => expectString(p, f, v));
  optional(proc, path, 'selinuxLabel', (f, v) => expectString(p, f, v));
  optional(proc, path, 'oomScoreAdj', (f, v) => expectInteger(p, f, v, -1000, 1000));
  optional(proc, path, 'ioPriority', (f, v) => {
    const io = expectObject(p, f, v);
    if (!io) return;
    required(p, io, f, 'class', (ff, vv) => expectString(p, ff, vv, { oneOf: ['IOPRIO_CLASS_RT', 'IOPRIO_CLASS_BE', 'IOPRIO_CLASS_IDLE'] }));
    required(p, io, f, 'priority', (ff, vv) => expectInteger(p, ff, vv, 0, 7));
  });
}

function checkMounts(p: ProblemList, path: string, value: unknown): void {
  expectArray(p, path, value, (itemPath, item) => {
    const m = expectObject(p, itemPath, item);
    if (!m) return;
    required(p, m, itemPath, 'destination', (f, v) => expectString(p, f, v, { absolute: true }));
    optional(m, itemPath, 'type', (f, v) => expectString(p, f, v));
    const options = m.options === undefined ? [] : expectStringArray(p, field(itemPath, 'options'), m.options) ?? [];
    const isBind = m.type === 'bind' || options.includes('bind') || options.includes('rbind');
    if (isBind) required(p, m, itemPath, 'source', (f, v) => expectString(p, f, v, { nonEmpty: true }));
    else optional(m, itemPath, 'source', (f, v) => expectString(p, f, v));
    optional(m, itemPath, 'uidMappings', (f, v) => checkIdMappings(p, f, v));
    optional(m, itemPath, 'gidMappings', (f, v) => checkIdMappings(p, f, v));
    if ((m.uidMappings === undefined) !== (m.gidMappings === undefined)) {
      p.add(itemPath, 'uidMappings and gidMappings must be given together');
    }
  });
}

function checkHooks(p: ProblemList, path: string, value: unknown): void {
  const hooks = expectObject(p, path, value);
  if (!hooks) return;
  for (const [kind, list] of Object.entries(hooks)) {
    const kindPath = field(path, kind);
    if (!(HOOK_KINDS as readonly string[]).includes(kind)) {
      p.add(kindPath, `unknown hook kind (want one of ${HOOK_KINDS.join(', ')})`);
      continue;
    }
    expectArray(p, kindPath, list, (itemPath, item) => {
      const hook = expectObject(p, itemPath, item);
      if (!hook) return;
      required(p, hook, itemPath, 'path', (f, v) => expectString(p, f, v, { absolute: true }));
      optional(hook, itemPath, 'args', (f, v) => expectStringArray(p, f, v));
      optional(hook, itemPath, 'env', (f, v) => checkEnv(p, f, v));
      optional(hook, itemPath, 'timeout', (f, v) => expectInteger(p, f, v, 1, 2 ** 31 - 1));
    });
  }
}

// Rules that join sections: what runc would refuse at create time.
function checkConsistency(p: ProblemList, spec: JsonObject): void {
  const linux = isObject(spec.linux) ? spec.linux : undefined;
  const nsList = Array.isArray(linux?.namespaces) ? linux.namespaces : undefined;
  if (!nsList) return;
  const has = (type: string) => nsList.some((n) => isObject(n) && n.type === type);
  for (const key of ['hostname', 'domainname']) {
    if (typeof spec[key] === 'string' && spec[key] !== '' && !has('uts')) p.add(key, 'needs a "uts" entry in linux.namespaces');
  }
  if (linux && !has('mount')) {
    for (const key of ['maskedPaths', 'readonlyPaths']) {
      if (Array.isArray(linux[key]) && (linux[key] as unknown[]).length > 0) p.add(field('linux', key), 'needs a "mount" entry in linux.namespaces');
    }
  }
  if (linux && isObject(linux.sysctl)) {
    for (const key of Object.keys(linux.sysctl)) {
      const needs = sysctlNamespace(key);
      const keyPath = `linux.sysctl[${show(key)}]`;
      if (needs === undefined) p.add(keyPath, 'is not namespaced: setting it would change the host');
      else if (!has(needs)) p.add(keyPath, `needs a "${needs}" entry in linux.namespaces`);
    }
  }
}

const IPC_SYSCTLS = ['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced'];

// The namespace that makes a sysctl private to the container, or undefined for a global one.
function sysctlNamespace(key: string): string | undefined {
  if (IPC_SYSCTLS.includes(key) || key.startsWith('fs.mqueue.')) return 'ipc';
  if (key.startsWith('net.')) return 'network';
  if (key === 'kernel.hostname' || key === 'kernel.domainname') return 'uts';
  return undefined;
}

/** Every problem in `value` as a config.json, in document order; empty when it is valid. */
export function findSpecProblems(value: unknown, options: ValidateOptions = {}): SpecProblem[] {
  const p = new ProblemList();
  const spec = expectObject(p, '(top level)', value);
  if (!spec) return p.items;
  required(p, spec, '', 'ociVersion', (_f, v) => checkVersion(p, v));
  if (options.purpose === 'any') optional(spec, '', 'process', (f, v) => checkProcess(p, f, v));
  else required(p, spec, '', 'process', (f, v) => checkProcess(p, f, v));
  required(p, spec, '', 'root', (f, v) => {
    const root = expectObject(p, f, v);
    if (!root) return;
    required(p, root, f, 'path', (ff, vv) => expectString(p, ff, vv, { nonEmpty: true }));
    optional(root, f, 'readonly', (ff, vv) => expectBoolean(p, ff, vv));
  });
  optional(spec, '', 'hostname', (f, v) => expectString(p, f, v));
  optional(spec, '', 'domainname', (f, v) => expectString(p, f, v));
  optional(spec, '', 'mounts', (f, v) => checkMounts(p, f, v));
  optional(spec, '', 'hooks', (f, v) => checkHooks(p, f, v));
  optional(spec, '', 'annotations', (f, v) => expectStringMap(p, f, v));
  optional(spec, '', 'linux', (f, v) => checkLinux(p, f, v));
  checkConsistency(p, spec);
  return p.items;
}

const MAX_PROBLEMS_SHOWN = 8;

/** Checks `value` is a valid config.json and returns it typed; throws HutchError('EINVAL') naming each bad field. */
export function validateSpec(value: unknown, options: ValidateOptions = {}): Spec {
  const problems = findSpecProblems(value, options);
  if (problems.length === 0) return value as Spec;
  const label = options.file === undefined ? 'config.json' : basename(options.file);
  const shown = problems.slice(0, MAX_PROBLEMS_SHOWN).map((x) => `${x.path}: ${x.message}`);
  if (problems.length > MAX_PROBLEMS_SHOWN) shown.push(`and ${problems.length - MAX_PROBLEMS_SHOWN} more`);
  throw new HutchError('EINVAL', `${label}: ${shown.join('; ')}`, options.file === undefined ? {} : { path: options.file });
}

/** Parses config.json text and validates it. */
export function parseSpec(text: string, options: ValidateOptions = {}): Spec {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const label = options.file === undefined ? 'config.json' : basename(options.file);
    throw new HutchError('EINVAL', `${label}: not valid JSON: ${(e as Error).message}`, { ...(options.file === undefined ? {} : { path: options.file }), cause: e });
  }
  return validateSpec(value, options);
}

/** Reads, parses and validates `<bundle>/config.json`. */
export async function loadBundleSpec(bundleDir: string, purpose: ValidateOptions['purpose'] = 'create'): Promise<Spec> {
  const file = join(bundleDir, 'config.json');
  let text: string;
  try {
    // Sync: fs/promises costs every OCI create ~0.5 ms of loading (it pulls in readline).
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new HutchError('ENOTFOUND', `bundle ${bundleDir} has no config.json`, { path: file, cause: e });
    const code = errnoCode(e) === 'EACCES' || errnoCode(e) === 'EPERM' ? 'EPERM' : 'EINVAL';
    throw new HutchError(code, `cannot read ${file}: ${(e as Error).message}`, { path: file, cause: e });
  }
  return parseSpec(text, { file, purpose });
}
