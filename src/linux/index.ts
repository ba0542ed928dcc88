// The linux layer's public API: cgroups, mounts, file locks, id mapping, host probing, and the few syscalls Node lacks.
export {
  detectCgroupMode, cgroupControllers, cgroupDirs, readCgroupStats, cgroupPids, freezeState, removeCgroup,
  listCgroupChildren, parseCgroupLayout, cgroupDirsIn, CGROUP_ROOT, UNIFIED_KEY,
} from './cgroups.js';
export { readOomKills, watchOom } from './oom.js';
export type { OomWatch } from './oom.js';
export type { CgroupMode, CgroupStats, CgroupLayout, CgroupHierarchy, FreezeState, RemoveCgroupOptions } from './cgroups.js';
export {
  readMountinfo, parseMountinfo, mountsUnder, isMountPoint, unmountTree, removeTreeSafely, overlayOptions,
  mountOverlay, bindMount, makePrivate,
} from './mounts.js';
export type { MountInfo, OverlayMount, BindOptions } from './mounts.js';
export { FileLock } from './filelock.js';
export { processAlive, processStartTime, processVanished, readProcFile, signalIfAlive } from './procs.js';
export { removeTree } from './remove-tree.js';
export type { LockMode, AcquireOptions } from './filelock.js';
export { hostIdRange, shiftOwnership, ID_RANGE_SIZE, DEFAULT_HOST_ID_BASE, SUBID_USER } from './idmap.js';
export type { IdRange, SubidFiles } from './idmap.js';
export { claimIdSlot, releaseIdSlot, releaseIdSlotsOf, idSlotsInUse, idSlotRange, maxIdSlot } from './idslots.js';
export type { IdSlot, IdSlotOwner } from './idslots.js';
export { idmappedBindMounts } from './idmount.js';
export type { IdmappedBind } from './idmount.js';
export { probeHost, findExecutable } from './probe.js';
export type { HostProbe, Feature, ToolFeature } from './probe.js';
export { assertCleanAbsolute, isAtOrBelow } from './paths.js';
export {
  waitpidNoHang, peekExitedChild, setChildSubreaper, setParentDeathSignal, mount, umount2, umount2Async, MNT_DETACH,
  MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE, MS_REMOUNT,
  mknod, lsetxattr, lgetxattr, syncfs, S_IFIFO, S_IFCHR,
} from './ffi.js';
export type { ReapedChild } from './ffi.js';
export { mkdirInRoot, readFileInRoot } from './in-root.js';
export type { DirOwner } from './in-root.js';
export { lookupUser, checkUserSpec } from './users.js';
export type { ResolvedUser, RootfsFileReader } from './users.js';
