// Sandbox records: the first record from a user's options, the config a platform gets from a
// record, and a record brought in line with what is observed on the host.
import path from 'node:path';
import { HutchError } from '../errors.js';
import { DEFAULT_HARDENING, type SandboxConfig } from '../platform/index.js';
import { checkName, type SandboxRecord } from './state.js';
import { checkEnv, checkLimits, mergeEnv } from './options.js';
import { exitRecordOf, observeInit } from './liveness.js';
import type { CreateOptions } from './engine.js';

const BASE_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
/** The agent (node) needs ~10 MiB of its sandbox's memory; below this it is OOM-killed at start. */
const MIN_AGENT_MEMORY_BYTES = 16 * 1024 * 1024;

/** Checks a user's options; returns the maker of the sandbox's first record (id and name come later). */
export function recordFactory(o: CreateOptions, rootfs: string, executor: string): (id: string, name: string) => SandboxRecord {
  if (o.name !== undefined) checkName(o.name);
  const limits = checkLimits(o.limits ?? {});
  if ((o.mode ?? 'agent') === 'agent' && limits.memoryBytes !== undefined && limits.memoryBytes < MIN_AGENT_MEMORY_BYTES) {
    throw new HutchError('EINVAL', `memory limit ${limits.memoryBytes} bytes is too small for a sandbox with an agent: use 16m or more (the agent itself takes about 10 MiB; a one-shot hutch run without -d can go down to 6m)`);
  }
  const env = mergeEnv(BASE_ENV, ['HOME=' + ((o.user?.uid ?? 0) === 0 ? '/root' : '/'), 'HOSTNAME='], checkEnv(o.env ?? []));
  const cwd = o.cwd ?? '/';
  if (!path.isAbsolute(cwd)) throw new HutchError('EINVAL', `working directory must be absolute: ${cwd}`);
  if (o.command !== undefined && (o.command.length === 0 || o.command.some((a) => typeof a !== 'string' || a.includes('\0')))) {
    throw new HutchError('EINVAL', 'the command must be a non-empty list of strings');
  }
  const hardening = { ...DEFAULT_HARDENING, ...(o.hardening ?? {}) };
  return (id, name) => ({
    version: 1, id, name, phase: 'creating', mode: o.mode ?? 'agent', executor, createdAt: new Date().toISOString(),
    rootfs, env: env.map((e) => (e === 'HOSTNAME=' ? `HOSTNAME=${name}` : e)), cwd, user: o.user ?? { uid: 0, gid: 0 },
    limits, hardening, ...(o.command ? { command: o.command } : {}), ...(o.terminal ? { terminal: true } : {}),
  });
}

/** What a platform needs to make the sandbox of `r`, whose dir is `dir`. */
export function configOf(r: SandboxRecord, dir: string): SandboxConfig {
  const { id, name, mode, rootfs, env, cwd, user, limits, hardening, command, terminal } = r;
  return { id, name, mode, rootfs, env, cwd, user, limits, hardening, dir, ...(command ? { command } : {}), ...(terminal ? { terminal } : {}) };
}

/** A stand-in record for a dir whose state.json is missing or torn (a crash during create). */
export function brokenRecord(id: string): SandboxRecord {
  return {
    version: 1, id, name: id, phase: 'stopped', mode: 'agent', createdAt: new Date(0).toISOString(), rootfs: '', env: [], cwd: '/',
    user: { uid: 0, gid: 0 }, limits: {}, hardening: DEFAULT_HARDENING, note: 'interrupted create (no state record)',
  };
}

/**
 * Brings a record in line with reality: an init that is gone means stopped; a transitional
 * phase whose lock is free means the hutch that set it died.
 */
export function refreshRecord(record: SandboxRecord, dir: string, lockFree: boolean): void {
  if ((record.phase === 'creating' || record.phase === 'deleting') && lockFree) {
    record.note = `interrupted ${record.phase === 'creating' ? 'create' : 'delete'}`;
    record.phase = 'stopped';
    return;
  }
  if (record.phase === 'running' || record.phase === 'paused' || record.phase === 'ready') {
    const obs = observeInit(record, dir);
    if (obs.known && !obs.alive) {
      record.phase = 'stopped';
      record.finishedAt ??= new Date().toISOString();
      const exit = exitRecordOf(dir);
      if (exit) record.exitCode = exit.exitCode;
      else if (record.mode === 'agent') record.note ??= 'the agent exited';
    }
  }
}
