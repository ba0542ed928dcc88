// A sandbox's disk limit: its writable layer (the overlay's upper and work dirs) on a tmpfs of its
// own, `size=` and `nr_inodes=` set, so that the kernel answers ENOSPC inside the sandbox when it is
// full and the host's filesystem never fills. A mount(2) costs ~0.1 ms; a loop-mounted ext4 costs
// ~30 ms (mkfs, losetup) and the host fs has no project quotas (docs/benchmarks.md, "Disk limits").
// The trade-off: tmpfs is memory. What the sandbox writes there is charged to its memory cgroup
// (so it counts against --memory as well) and to the host's RAM, never to its disk (docs/security.md).
// Without a disk limit nothing here runs: the upper dir stays in the sandbox's state dir.
import fs from 'node:fs';
import path from 'node:path';
import { HutchError } from '../../errors.js';
import { mount, MS_NODEV, MS_NOSUID } from '../../linux/index.js';
import type { Limits } from '../types.js';
import { MAIN_LOG_CAP_BYTES } from '../../agent/main-log.js';

/** The mount point of the disk tmpfs in a sandbox's state dir, and its source name (seen in mountinfo). */
export const DISK_DIR = 'disk';
export const DISK_SOURCE = 'hutch-disk';
/** The direct-mode init.log lives on a tmpfs of this size (main.log's cap): the host file never grows past it. */
export const INIT_LOG_CAP_BYTES = 8 * 1024 * 1024;
export const INIT_LOG_DIR = 'init-log';
export const INIT_LOG_SOURCE = 'hutch-init-log';

/**
 * The sandbox's run dir (the agent's socket, exit record and main log, writable by the sandbox's
 * root) is a tmpfs of this size: two main logs (it is rotated once), and room for the rest. What a
 * sandbox writes there beyond that gets ENOSPC, never the host's disk.
 */
export const RUN_DIR_CAP_BYTES = 2 * MAIN_LOG_CAP_BYTES + 4 * 1024 * 1024;
export const RUN_DIR_SOURCE = 'hutch-run';

/** Mounts the bounded tmpfs of a sandbox's run dir at `target` (made here), owned by `uid:gid`. */
export function mountRunDir(target: string, uid: number, gid: number): void {
  fs.mkdirSync(target, { mode: 0o700 });
  mount(RUN_DIR_SOURCE, target, 'tmpfs', MS_NOSUID | MS_NODEV, `size=${RUN_DIR_CAP_BYTES},nr_inodes=256,mode=0700,uid=${uid},gid=${gid}`);
}

/** Where the overlay's upper and work dirs are on a disk-limited sandbox's tmpfs. */
export interface DiskDirs { upper: string; work: string }

/**
 * Mounts the disk tmpfs of the sandbox in `dir` and makes its upper and work dirs (owned by root;
 * the caller gives the upper its owner). Null when `limits` has no disk limit (nothing is mounted).
 * The mount lives under `dir`, so a destroy's unmountTree(dir) removes it, after a crash too.
 */
export function mountDisk(dir: string, limits: Limits): DiskDirs | null {
  if (limits.diskBytes === undefined) return null;
  if (limits.diskInodes === undefined) throw new HutchError('EINTERNAL', 'a disk limit without its inode limit (checkLimits fills it in)');
  const target = path.join(dir, DISK_DIR);
  fs.mkdirSync(target, { mode: 0o700 });
  mount(DISK_SOURCE, target, 'tmpfs', MS_NOSUID | MS_NODEV, `size=${limits.diskBytes},nr_inodes=${limits.diskInodes},mode=0700`);
  const dirs = { upper: path.join(target, 'upper'), work: path.join(target, 'work') };
  fs.mkdirSync(dirs.upper, { mode: 0o755 });
  fs.mkdirSync(dirs.work, { mode: 0o755 });
  return dirs;
}

/** Use and limits of a sandbox's writable layer. */
export interface DiskStats { diskBytes: number | null; diskLimitBytes: number | null; diskInodes: number | null; diskInodesLimit: number | null }

const NO_DISK: DiskStats = { diskBytes: null, diskLimitBytes: null, diskInodes: null, diskInodesLimit: null };

/** statfs of the disk tmpfs of the sandbox in `dir`; nulls when it has none (no limit, or not mounted). */
export function diskStats(dir: string): DiskStats {
  const target = path.join(dir, DISK_DIR);
  try {
    // Only a mount of its own counts: an empty mount point would report the state root's fs.
    if (fs.statSync(target).dev === fs.statSync(dir).dev) return NO_DISK;
    const s = fs.statfsSync(target);
    return { diskBytes: (s.blocks - s.bfree) * s.bsize, diskLimitBytes: s.blocks * s.bsize, diskInodes: s.files - s.ffree, diskInodesLimit: s.files };
  } catch {
    return NO_DISK; // no disk dir: no limit
  }
}

/**
 * The direct-mode init.log (the command's own stdout and stderr, a host file the sandbox writes):
 * on a tmpfs of INIT_LOG_CAP_BYTES, so a command that writes more gets ENOSPC (as from a full disk)
 * and the host file stays bounded. Returns the log's path.
 */
export function boundedInitLog(dir: string): string {
  const target = path.join(dir, INIT_LOG_DIR);
  fs.mkdirSync(target, { mode: 0o700 });
  mount(INIT_LOG_SOURCE, target, 'tmpfs', MS_NOSUID | MS_NODEV, `size=${INIT_LOG_CAP_BYTES},nr_inodes=16,mode=0700`);
  return path.join(target, 'init.log');
}

/** Where the init.log of the sandbox in `dir` is: on its bounded tmpfs (direct mode), or in the dir. */
export function initLogOf(dir: string): string {
  const bounded = path.join(dir, INIT_LOG_DIR, 'init.log');
  return fs.existsSync(bounded) ? bounded : path.join(dir, 'init.log');
}
