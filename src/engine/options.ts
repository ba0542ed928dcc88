// Validation of what users ask for: rootfs, limits, env, users.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HutchError } from '../errors.js';
import type { Limits } from '../platform/index.js';
import { checkUserSpec } from '../linux/users.js';

/** The pids limit when none is given (a fork bomb stops there). */
export const DEFAULT_PIDS_LIMIT = 1024;
const MIN_MEMORY_BYTES = 6 * 1024 * 1024;

/** Parses a size such as 256m, 1g, 512k, 1048576 into bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?$/i.exec(text.trim());
  if (!m) throw new HutchError('EINVAL', `invalid size "${text}": use a number with an optional unit b, k, m, g (e.g. 256m)`);
  const unit = (m[2] ?? '').toLowerCase();
  const mult = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[unit] ?? 1;
  return Math.floor(Number(m[1]) * mult);
}

/** Checks limits against what this machine can give; fills in the default pids (and disk inodes) limit. 0 = no limit. */
export function checkLimits(limits: Limits): Limits {
  const out: Limits = { ...limits };
  for (const k of ['memoryBytes', 'cpus', 'diskBytes'] as const) if (out[k] === 0) delete out[k];
  if (out.memoryBytes !== undefined) {
    if (!Number.isFinite(out.memoryBytes) || out.memoryBytes < MIN_MEMORY_BYTES) {
      throw new HutchError('EINVAL', `memory limit ${out.memoryBytes} bytes is too small: the minimum is 6m`);
    }
    if (out.memoryBytes > os.totalmem()) {
      throw new HutchError('EINVAL', `memory limit ${out.memoryBytes} bytes is more than this machine has (${os.totalmem()} bytes)`);
    }
  }
  if (out.cpus !== undefined) {
    const ncpu = os.availableParallelism();
    if (!Number.isFinite(out.cpus) || out.cpus < 0.01 || out.cpus > ncpu) {
      throw new HutchError('EINVAL', `cpus ${out.cpus} is out of range: use 0.01 to ${ncpu} (this machine has ${ncpu} CPUs)`);
    }
  }
  checkDiskLimits(out);
  out.pids ??= DEFAULT_PIDS_LIMIT;
  if (!Number.isInteger(out.pids) || out.pids < 1 || out.pids > 4194304) {
    throw new HutchError('EINVAL', `pids limit ${out.pids} is out of range: use 1 to 4194304`);
  }
  return out;
}

/** The smallest disk limit, and the inode limits allowed (the layer's own dirs take a few inodes). */
const MIN_DISK_BYTES = 1024 * 1024;
const MIN_DISK_INODES = 64;
const MAX_DISK_INODES = 2 ** 32 - 1;

/**
 * The inode limit of a disk of `bytes` when none is given: one per 4 KiB page (a non-empty file
 * takes at least one), at least 4096. Inodes cost kernel memory outside the byte limit.
 */
export function defaultDiskInodes(bytes: number): number {
  return Math.min(MAX_DISK_INODES, Math.max(4096, Math.floor(bytes / 4096)));
}

/** The writable layer's limits: a tmpfs, so no more than this machine's memory. */
function checkDiskLimits(out: Limits): void {
  if (out.diskBytes === undefined) {
    if (out.diskInodes !== undefined) throw new HutchError('EINVAL', `an inode limit (${out.diskInodes}) needs a disk limit too (--disk SIZE)`);
    return;
  }
  if (!Number.isInteger(out.diskBytes) || out.diskBytes < MIN_DISK_BYTES) {
    throw new HutchError('EINVAL', `disk limit ${out.diskBytes} bytes is out of range: use a whole number of bytes, at least 1m (0 = no limit)`);
  }
  if (out.diskBytes > os.totalmem()) {
    throw new HutchError('EINVAL', `disk limit ${out.diskBytes} bytes is more than this machine's memory (${os.totalmem()} bytes): the writable layer is a tmpfs (docs/security.md)`);
  }
  out.diskInodes ??= defaultDiskInodes(out.diskBytes);
  if (!Number.isSafeInteger(out.diskInodes) || out.diskInodes < MIN_DISK_INODES || out.diskInodes > MAX_DISK_INODES) {
    throw new HutchError('EINVAL', `disk inode limit ${out.diskInodes} is out of range: use ${MIN_DISK_INODES} to ${MAX_DISK_INODES}`);
  }
}

/** True when `spec` names a directory rather than an image (a path: absolute, or starting with `.`). */
export function isRootfsPath(spec: string): boolean {
  return spec.startsWith('/') || spec === '.' || spec.startsWith('./') || spec.startsWith('..');
}

/** Checks a rootfs dir given by path: it must exist, be a directory, and not be the host's root. */
export function checkRootfsDir(p: string): string {
  const abs = path.resolve(p);
  let real: string;
  try {
    real = fs.realpathSync(abs);
  } catch {
    throw new HutchError('ENOTFOUND', `rootfs ${abs} does not exist`, { path: abs });
  }
  if (real === '/') throw new HutchError('EINVAL', `rootfs ${abs} is the host's root directory: refusing to use it`, { path: abs });
  if (!fs.statSync(real).isDirectory()) throw new HutchError('EINVAL', `rootfs ${abs} is not a directory`, { path: abs });
  return real;
}

/** Turns KEY=VALUE strings into a checked list (no '=' in keys, no NUL bytes). */
export function checkEnv(env: string[]): string[] {
  for (const kv of env) {
    const eq = kv.indexOf('=');
    if (eq <= 0 || kv.includes('\0')) throw new HutchError('EINVAL', `invalid environment entry "${kv.slice(0, 80)}": use KEY=VALUE`);
  }
  return env;
}

/** Checks the form of a user spec (NAME or UID, with :GROUP or :GID); its names are looked up later, in the rootfs. */
export function checkUser(text: string): string {
  checkUserSpec(text);
  return text;
}

/** Merges env lists; later entries win per key, order of first appearance is kept. */
export function mergeEnv(...lists: string[][]): string[] {
  const map = new Map<string, string>();
  for (const list of lists) for (const kv of list) map.set(kv.slice(0, kv.indexOf('=')), kv);
  return [...map.values()];
}
