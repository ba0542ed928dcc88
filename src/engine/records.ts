// Sandbox records: the first record from a user's options, the config a platform gets from a
// record, and a record brought in line with what is observed on the host.
import path from 'node:path';
import { HutchError } from '../errors.js';
import { DEFAULT_HARDENING, type ExitRecord, type Hardening, type InitObservation, type SandboxConfig } from '../platform/index.js';
import type { ImageRuntimeConfig } from '../image/index.js';
import { checkName, type SandboxNetworkRecord, type SandboxRecord } from './state.js';
import { checkEnv, checkLimits, mergeEnv } from './options.js';
import { recordAgentExit, type InitEnd } from './exit-status.js';
import type { CreateOptions, SandboxUpdate } from './types.js';
import type { ResolvedRootfs } from './rootfs.js';
import { checkLabels } from './state.js';

const BASE_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
/** The agent (node) needs ~10 MiB of its sandbox's memory; below this it is OOM-killed at start. */
const MIN_AGENT_MEMORY_BYTES = 16 * 1024 * 1024;

/** Checks a user's options; returns the maker of the sandbox's first record (id and name come later). */
export function recordFactory(o: CreateOptions, resolved: ResolvedRootfs, platform: string, executor: string): (id: string, name: string) => SandboxRecord {
  if (o.name !== undefined) checkName(o.name);
  const mode = o.mode ?? 'agent';
  const limits = checkLimits(o.limits ?? {});
  if (mode === 'agent' && limits.memoryBytes !== undefined && limits.memoryBytes < MIN_AGENT_MEMORY_BYTES) {
    throw new HutchError('EINVAL', `memory limit ${limits.memoryBytes} bytes is too small for a sandbox with an agent: use 16m or more (the agent itself takes about 10 MiB; a one-shot hutch run without -d can go down to 6m)`);
  }
  const image = resolved.image?.config ?? {};
  const { home, ...user } = userOf(o);
  const env = mergeEnv(BASE_ENV, ['HOME=' + (home ?? (user.uid === 0 ? '/root' : '/')), 'HOSTNAME='], checkEnv(image.Env ?? []), checkEnv(o.env ?? []));
  const cwd = o.cwd ?? (image.WorkingDir || '/');
  if (!path.isAbsolute(cwd)) throw new HutchError('EINVAL', `working directory must be absolute: ${cwd}`);
  const command = commandOf(o, image, mode);
  if (command !== undefined && (command.length === 0 || command.some((a) => typeof a !== 'string' || a.includes('\0')))) {
    throw new HutchError('EINVAL', 'the command must be a non-empty list of strings');
  }
  const labels = checkLabels(o.labels ?? {});
  const hardening = { ...DEFAULT_HARDENING, ...(o.hardening ?? {}) };
  checkIdRange(hardening);
  const network = networkOf(o, hardening);
  if (limits.diskBytes !== undefined && !hardening.overlay) throw new HutchError('EINVAL', 'a disk limit needs a writable layer: drop --read-only or --disk');
  return (id, name) => ({
    version: 1, id, name, phase: 'creating', mode, ...(platform !== 'container' ? { platform } : {}), executor, createdAt: new Date().toISOString(),
    rootfs: resolved.rootfs, ...(resolved.lowerDirs ? { lowerDirs: resolved.lowerDirs } : {}),
    ...(resolved.image ? { image: { ref: resolved.image.ref, id: resolved.image.id } } : {}),
    env: env.map((e) => (e === 'HOSTNAME=' ? `HOSTNAME=${name}` : e)), cwd, user,
    limits, hardening, ...(command ? { command } : {}), ...(o.terminal ? { terminal: true } : {}),
    ...(o.init ? { init: true } : {}), ...(o.autoRemove && mode === 'agent' ? { autoRemove: true } : {}),
    ...(Object.keys(labels).length ? { labels } : {}), ...(network ? { network } : {}),
  });
}

/** The network a sandbox asks for: none and host are hardening modes; any other name is a network of src/net. */
function networkOf(o: CreateOptions, h: Hardening): SandboxNetworkRecord | undefined {
  const mode = o.network ?? h.network;
  if (mode === 'none' || mode === 'host') {
    if (o.ports?.length) throw new HutchError('EINVAL', `published ports need a network: --network ${mode} has none to publish them on (use bridge or a named network)`);
    if (o.policy) throw new HutchError('EINVAL', `an egress policy needs a network: --network ${mode} has none (use bridge or a named network)`);
    h.network = mode;
    return undefined;
  }
  if (typeof mode !== 'string' || !mode) throw new HutchError('EINVAL', 'invalid network: use none, host, bridge or the name of a network');
  if (h.network === 'host') throw new HutchError('EINVAL', `--network ${mode.slice(0, 60)} contradicts the host network`);
  h.network = 'none'; // a netns of its own, which the network layer makes
  return { name: mode, ...(o.ports?.length ? { ports: o.ports } : {}), ...(o.policy ? { policy: o.policy } : {}) };
}

/** The sandbox's user (the caller's or the image's, resolved by the engine), or root; with its home dir when passwd names one. */
function userOf(o: CreateOptions): { uid: number; gid: number; home?: string } {
  if (o.user === undefined) return { uid: 0, gid: 0 };
  if (typeof o.user === 'string') throw new HutchError('EINTERNAL', `user ${o.user.slice(0, 80)} was not resolved`);
  return o.user;
}

/** A private id range is a mapping of the sandbox's user namespace: it needs one. */
function checkIdRange(h: Hardening): void {
  if (h.idRange === undefined) return;
  if (h.idRange !== 'shared' && h.idRange !== 'private') throw new HutchError('EINVAL', `invalid id range "${String(h.idRange).slice(0, 80)}": use shared or private`);
  if (h.idRange === 'private' && !h.userns) throw new HutchError('EINVAL', 'a private id range needs a user namespace: it cannot go with --no-userns (--userns host)');
}

/**
 * The main command, by docker's rules: the caller's entrypoint or else the image's, followed by the
 * caller's command or else the image's Cmd (dropped when the caller gives an entrypoint, as docker and
 * podman do). With neither, a one-shot run has nothing to run; a sandbox with an agent then has no
 * main command and waits for exec, as one made from busybox or a rootfs dir does.
 */
function commandOf(o: CreateOptions, image: ImageRuntimeConfig, mode: string): string[] | undefined {
  const given = o.command?.length ? o.command : undefined; // an empty command is none, as in docker
  const entrypoint = o.entrypoint ?? image.Entrypoint ?? [];
  const command = [...entrypoint, ...(given ?? (o.entrypoint !== undefined ? [] : image.Cmd ?? []))];
  if (command.length > 0) return command;
  if (mode === 'direct') throw new HutchError('EINVAL', 'no command to run: give one (the image has no Cmd or Entrypoint)');
  return undefined;
}

/** What a platform needs to make the sandbox of `r`, whose dir is `dir`. */
export function configOf(r: SandboxRecord, dir: string): SandboxConfig {
  const { id, name, mode, rootfs, lowerDirs, env, cwd, user, limits, hardening, command, terminal, init, network: n } = r;
  return {
    id, name, mode, rootfs, env, cwd, user, limits, hardening, dir,
    ...(lowerDirs ? { lowerDirs } : {}), ...(command ? { command } : {}), ...(terminal ? { terminal } : {}),
    ...(init ? { init } : {}),
    ...(n?.netnsPath && n.resolvConf && n.hosts ? { network: { netnsPath: n.netnsPath, resolvConf: n.resolvConf, hosts: n.hosts } } : {}),
  };
}

/** A stand-in record for a dir whose state.json is missing or torn (a crash during create). */
export function brokenRecord(id: string): SandboxRecord {
  return {
    version: 1, id, name: id, phase: 'stopped', mode: 'agent', createdAt: new Date(0).toISOString(), rootfs: '', env: [], cwd: '/',
    user: { uid: 0, gid: 0 }, limits: {}, hardening: DEFAULT_HARDENING, note: 'interrupted create (no state record)',
  };
}

/** The note of a sandbox whose start a crash interrupted (its init runs, the rest of the start did not happen). */
export function interruptedStartNote(id: string): string {
  return `interrupted start: its init runs but the start did not finish; hutch start ${id} finishes it`;
}

/**
 * Brings a record in line with reality: an init that is gone means stopped; a transitional
 * phase whose lock is free means the hutch that set it died. True when it found the init gone
 * just now (the caller records how it ended: recordEnd).
 */
export function refreshRecord(record: SandboxRecord, observe: () => InitObservation, lockFree: boolean): boolean {
  // A delete that died before it killed the init: the sandbox is still whole, in the state it had.
  if (record.phase === 'deleting' && lockFree && record.deletingFrom && record.deletingFrom !== 'stopped' && observe().alive) {
    record.phase = record.deletingFrom;
    record.note = 'interrupted delete: it still runs; rm -f finishes it';
    return false;
  }
  if ((record.phase === 'creating' || record.phase === 'deleting') && lockFree) {
    record.note = `interrupted ${record.phase === 'creating' ? 'create' : 'delete'}`;
    record.phase = 'stopped';
    return false;
  }
  if (record.phase === 'running' || record.phase === 'paused' || record.phase === 'ready') {
    const obs = observe();
    if (obs.known && !obs.alive) {
      record.phase = 'stopped';
      record.finishedAt ??= new Date().toISOString();
      return true;
    }
  }
  return false;
}

/**
 * Records how a sandbox whose init is gone ended: agent mode from the agent's exit record and the
 * cgroup's OOM kills; `end` says whether hutch stopped it or it went away on its own.
 */
export function recordEnd(record: SandboxRecord, exit: () => ExitRecord | null, oomKills: number | null, end: InitEnd): void {
  if (record.mode === 'agent') return recordAgentExit(record, exit(), oomKills, end);
  // Direct mode: the hutch run that waited for the init records its status; it went first.
  if (end === 'gone' && record.exitCode === undefined) record.note ??= 'the hutch run that waited for it ended first: its exit status is lost';
}

/** Applies an update to a record (the caller holds its lock): label precondition, labels, env, working dir. */
export function applyUpdate(record: SandboxRecord, patch: SandboxUpdate): void {
  const id = record.id;
  for (const [k, v] of Object.entries(patch.ifLabels ?? {})) {
    if (record.labels?.[k] !== v) throw new HutchError('ESTATE', `sandbox ${id} no longer has label ${k}=${v}`, { id });
  }
  const labels: Record<string, string> = { ...(record.labels ?? {}) };
  for (const [k, v] of Object.entries(patch.labels ?? {})) {
    if (v === null) delete labels[k];
    else labels[k] = v;
  }
  record.labels = checkLabels(labels);
  if (patch.env) record.env = mergeEnv(record.env, checkEnv(patch.env));
  if (patch.cwd !== undefined) {
    if (!path.isAbsolute(patch.cwd)) throw new HutchError('EINVAL', `working directory must be absolute: ${patch.cwd}`, { id });
    record.cwd = patch.cwd;
  }
}
