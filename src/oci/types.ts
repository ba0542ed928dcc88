// Types for the OCI runtime-spec (config.json, 1.0.2 with the 1.1/1.2 additions hutch
// understands) and the OCI state document. Field names follow the spec exactly because
// these objects are serialized as-is.

/** An ID mapping for user namespaces (linux.uidMappings / gidMappings, idmapped mounts). */
export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

/** process.user: the identity the container process runs as. */
export interface User {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
  username?: string;
}

/** process.capabilities: the five Linux capability sets, as CAP_* names. */
export interface LinuxCapabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

/** process.rlimits[i]: one resource limit (type is an RLIMIT_* name). */
export interface POSIXRlimit {
  type: string;
  hard: number;
  soft: number;
}

/** process.consoleSize: terminal dimensions in characters. */
export interface ConsoleSize {
  height: number;
  width: number;
}

/** process.ioPriority (spec 1.1). */
export interface LinuxIOPriority {
  class: 'IOPRIO_CLASS_RT' | 'IOPRIO_CLASS_BE' | 'IOPRIO_CLASS_IDLE';
  priority: number;
}

/** The container's main process. */
export interface Process {
  terminal?: boolean;
  consoleSize?: ConsoleSize;
  user: User;
  args?: string[];
  commandLine?: string;
  env?: string[];
  cwd: string;
  capabilities?: LinuxCapabilities;
  rlimits?: POSIXRlimit[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
  ioPriority?: LinuxIOPriority;
}

/** root: the bundle's root filesystem. */
export interface Root {
  path: string;
  readonly?: boolean;
}

/** mounts[i]: one mount, applied in order after the rootfs. */
export interface Mount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
}

/** hooks.<kind>[i]: a program the runtime runs at a lifecycle point. */
export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

/** The lifecycle points at which hooks run. */
export const HOOK_KINDS = [
  'prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop',
] as const;
/** One of HOOK_KINDS. */
export type HookKind = (typeof HOOK_KINDS)[number];
/** hooks: lists of hooks by lifecycle point. */
export type Hooks = { [K in HookKind]?: Hook[] };

/** The namespace types Linux offers. */
export const NAMESPACE_TYPES = ['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time'] as const;
/** One of NAMESPACE_TYPES. */
export type LinuxNamespaceType = (typeof NAMESPACE_TYPES)[number];

/** linux.namespaces[i]: a namespace to create (no path) or join (path). */
export interface LinuxNamespace {
  type: LinuxNamespaceType;
  path?: string;
}

/** linux.devices[i]: a device node to create in the container. */
export interface LinuxDevice {
  type: 'c' | 'b' | 'u' | 'p';
  path: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

/** linux.resources.devices[i]: a device cgroup rule. */
export interface LinuxDeviceCgroup {
  allow: boolean;
  type?: 'a' | 'c' | 'b';
  major?: number | null;
  minor?: number | null;
  access?: string;
}

/** linux.resources.memory (bytes; -1 means unlimited where the kernel allows it). */
export interface LinuxMemory {
  limit?: number;
  reservation?: number;
  swap?: number;
  kernel?: number;
  kernelTCP?: number;
  swappiness?: number;
  disableOOMKiller?: boolean;
  useHierarchy?: boolean;
  checkBeforeUpdate?: boolean;
}

/** linux.resources.cpu. */
export interface LinuxCPU {
  shares?: number;
  quota?: number;
  burst?: number;
  period?: number;
  realtimeRuntime?: number;
  realtimePeriod?: number;
  cpus?: string;
  mems?: string;
  idle?: number;
}

/** linux.resources.pids. */
export interface LinuxPids {
  limit: number;
}

/** A per-device weight for blockIO. */
export interface LinuxWeightDevice {
  major: number;
  minor: number;
  weight?: number;
  leafWeight?: number;
}

/** A per-device rate limit for blockIO. */
export interface LinuxThrottleDevice {
  major: number;
  minor: number;
  rate: number;
}

/** linux.resources.blockIO. */
export interface LinuxBlockIO {
  weight?: number;
  leafWeight?: number;
  weightDevice?: LinuxWeightDevice[];
  throttleReadBpsDevice?: LinuxThrottleDevice[];
  throttleWriteBpsDevice?: LinuxThrottleDevice[];
  throttleReadIOPSDevice?: LinuxThrottleDevice[];
  throttleWriteIOPSDevice?: LinuxThrottleDevice[];
}

/** linux.resources.hugepageLimits[i]. */
export interface LinuxHugepageLimit {
  pageSize: string;
  limit: number;
}

/** linux.resources.network. */
export interface LinuxNetwork {
  classID?: number;
  priorities?: { name: string; priority: number }[];
}

/** linux.resources: cgroup settings. */
export interface LinuxResources {
  devices?: LinuxDeviceCgroup[];
  memory?: LinuxMemory;
  cpu?: LinuxCPU;
  pids?: LinuxPids;
  blockIO?: LinuxBlockIO;
  hugepageLimits?: LinuxHugepageLimit[];
  network?: LinuxNetwork;
  rdma?: Record<string, { hcaHandles?: number; hcaObjects?: number }>;
  unified?: Record<string, string>;
}

/** The seccomp actions libseccomp and the spec know. */
export const SECCOMP_ACTIONS = [
  'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_TRAP',
  'SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE', 'SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_NOTIFY',
] as const;
/** One of SECCOMP_ACTIONS. */
export type SeccompAction = (typeof SECCOMP_ACTIONS)[number];

/** The argument comparison operators. */
export const SECCOMP_OPERATORS = [
  'SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT',
  'SCMP_CMP_MASKED_EQ',
] as const;
/** One of SECCOMP_OPERATORS. */
export type SeccompOperator = (typeof SECCOMP_OPERATORS)[number];

/** The seccomp architecture names of the spec. */
export const SECCOMP_ARCHES = [
  'SCMP_ARCH_X86', 'SCMP_ARCH_X86_64', 'SCMP_ARCH_X32', 'SCMP_ARCH_ARM', 'SCMP_ARCH_AARCH64',
  'SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64', 'SCMP_ARCH_MIPS64N32', 'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL64N32', 'SCMP_ARCH_PPC', 'SCMP_ARCH_PPC64',
  'SCMP_ARCH_PPC64LE', 'SCMP_ARCH_S390', 'SCMP_ARCH_S390X', 'SCMP_ARCH_PARISC',
  'SCMP_ARCH_PARISC64', 'SCMP_ARCH_RISCV64',
] as const;
/** One of SECCOMP_ARCHES. */
export type SeccompArch = (typeof SECCOMP_ARCHES)[number];

/** The seccomp(2) filter flags the spec allows. */
export const SECCOMP_FLAGS = [
  'SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW',
  'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV',
] as const;

/** One argument condition of a seccomp rule. For MASKED_EQ, value is the mask and valueTwo the datum. */
export interface LinuxSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: SeccompOperator;
}

/** One seccomp rule: names, the action, and optional argument conditions (all must hold). */
export interface LinuxSyscall {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  args?: LinuxSeccompArg[];
}

/** linux.seccomp. */
export interface LinuxSeccomp {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  architectures?: SeccompArch[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: LinuxSyscall[];
}

/** linux.intelRdt. */
export interface LinuxIntelRdt {
  closID?: string;
  l3CacheSchema?: string;
  memBwSchema?: string;
  enableCMT?: boolean;
  enableMBM?: boolean;
}

/** linux.personality. */
export interface LinuxPersonality {
  domain: 'LINUX' | 'LINUX32';
  flags?: string[];
}

/** The mount propagation values accepted for linux.rootfsPropagation. */
export const ROOTFS_PROPAGATIONS = [
  'private', 'shared', 'slave', 'unbindable', 'rprivate', 'rshared', 'rslave', 'runbindable',
] as const;

/** linux: the Linux-specific part of the spec. */
export interface Linux {
  namespaces?: LinuxNamespace[];
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
  timeOffsets?: Record<string, { secs?: number; nanosecs?: number }>;
  devices?: LinuxDevice[];
  cgroupsPath?: string;
  resources?: LinuxResources;
  rootfsPropagation?: string;
  seccomp?: LinuxSeccomp;
  sysctl?: Record<string, string>;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  mountLabel?: string;
  intelRdt?: LinuxIntelRdt;
  personality?: LinuxPersonality;
}

/** The whole config.json. */
export interface Spec {
  ociVersion: string;
  process?: Process;
  root?: Root;
  hostname?: string;
  domainname?: string;
  mounts?: Mount[];
  hooks?: Hooks;
  annotations?: Record<string, string>;
  linux?: Linux;
}

/** The container statuses of the OCI state document. */
export const CONTAINER_STATUSES = ['creating', 'created', 'running', 'stopped', 'paused'] as const;
/** One of CONTAINER_STATUSES. */
export type ContainerStatus = (typeof CONTAINER_STATUSES)[number];

/** The OCI state document (`runtime state <id>` output, and what hooks read on stdin). */
export interface State {
  ociVersion: string;
  id: string;
  status: ContainerStatus;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}
