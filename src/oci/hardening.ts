// hutch's hardening data: seccomp allow-lists, capability sets, masked and read-only paths.
import { HutchError } from '../errors.js';
import type { LinuxSeccomp, LinuxSyscall, SeccompArch } from './types.js';

/** Every capability the kernel knows, in bit order (0..40). */
export const ALL_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER',
  'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/** The capabilities a sandbox's root gets by default (the set container engines use). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** Paths under /proc and /sys hidden from the sandbox (they leak host data or poke hardware). */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
  '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

/** Paths under /proc made read-only in the sandbox (global kernel knobs). */
export const DEFAULT_READONLY_PATHS: readonly string[] = [
  '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger',
];

/** The seccomp profile variants hutch offers. */
export type SeccompProfileName = 'default' | 'strict';

/** The annotation that selects the hardening profile of a sandbox. */
export const PROFILE_ANNOTATION = 'dev.hutch.profile';

/** The annotation that allows io_uring (value `allow`) in the profile hutch fills in. */
export const IO_URING_ANNOTATION = 'dev.hutch.seccomp.io_uring';

const EPERM = 1;
const ENOSYS = 38;

// Groups of syscalls every ordinary program may make. Names unknown to the host's libseccomp
// (newer syscalls, or 32-bit-only names on x86_64) are skipped by runc, so listing them is safe.
const FILE_IO = [
  'read', 'write', 'open', 'openat', 'openat2', 'close', 'close_range', 'creat', 'lseek', '_llseek',
  'pread64', 'pwrite64', 'readv', 'writev', 'preadv', 'pwritev', 'preadv2', 'pwritev2',
  'dup', 'dup2', 'dup3', 'pipe', 'pipe2', 'fcntl', 'fcntl64', 'flock', 'ioctl',
  'fsync', 'fdatasync', 'sync', 'syncfs', 'sync_file_range', 'fallocate', 'fadvise64', 'fadvise64_64',
  'readahead', 'truncate', 'truncate64', 'ftruncate', 'ftruncate64',
  'sendfile', 'sendfile64', 'splice', 'tee', 'vmsplice', 'copy_file_range', 'memfd_create',
  'select', '_newselect', 'pselect6', 'pselect6_time64', 'poll', 'ppoll', 'ppoll_time64',
  'epoll_create', 'epoll_create1', 'epoll_ctl', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2',
  'eventfd', 'eventfd2', 'signalfd', 'signalfd4', 'timerfd_create', 'timerfd_settime',
  'timerfd_settime64', 'timerfd_gettime', 'timerfd_gettime64',
  'inotify_init', 'inotify_init1', 'inotify_add_watch', 'inotify_rm_watch',
];

const FILE_META = [
  'stat', 'stat64', 'fstat', 'fstat64', 'lstat', 'lstat64', 'newfstatat', 'fstatat64', 'statx',
  'statfs', 'statfs64', 'fstatfs', 'fstatfs64', 'access', 'faccessat', 'faccessat2',
  'getdents', 'getdents64', 'readdir', 'getcwd', 'chdir', 'fchdir', 'chroot',
  'mkdir', 'mkdirat', 'rmdir', 'rename', 'renameat', 'renameat2', 'link', 'linkat',
  'unlink', 'unlinkat', 'symlink', 'symlinkat', 'readlink', 'readlinkat', 'mknod', 'mknodat',
  'chmod', 'fchmod', 'fchmodat', 'fchmodat2', 'chown', 'chown32', 'fchown', 'fchown32',
  'lchown', 'lchown32', 'fchownat', 'umask',
  'utime', 'utimes', 'futimesat', 'utimensat', 'utimensat_time64',
  'setxattr', 'lsetxattr', 'fsetxattr', 'setxattrat', 'getxattr', 'lgetxattr', 'fgetxattr',
  'getxattrat', 'listxattr', 'llistxattr', 'flistxattr', 'listxattrat',
  'removexattr', 'lremovexattr', 'fremovexattr', 'removexattrat', 'cachestat',
];

const MEMORY = [
  'brk', 'mmap', 'mmap2', 'munmap', 'mremap', 'mprotect', 'msync', 'mincore', 'madvise',
  'mlock', 'mlock2', 'munlock', 'mlockall', 'munlockall', 'remap_file_pages', 'membarrier',
  'pkey_alloc', 'pkey_free', 'pkey_mprotect', 'map_shadow_stack', 'mseal',
];

const PROCESS = [
  'fork', 'vfork', 'execve', 'execveat', 'exit', 'exit_group', 'wait4', 'waitid', 'waitpid',
  'getpid', 'gettid', 'getppid', 'getpgrp', 'getpgid', 'setpgid', 'getsid', 'setsid',
  'set_tid_address', 'set_robust_list', 'get_robust_list', 'rseq', 'restart_syscall',
  'arch_prctl', 'set_thread_area', 'get_thread_area', 'prctl',
  'futex', 'futex_time64', 'futex_waitv', 'futex_wake', 'futex_wait', 'futex_requeue',
  'sched_yield', 'sched_getaffinity', 'sched_setaffinity', 'sched_getparam', 'sched_getscheduler',
  'sched_getattr', 'sched_get_priority_max', 'sched_get_priority_min',
  'sched_rr_get_interval', 'sched_rr_get_interval_time64',
  'getpriority', 'setpriority', 'ioprio_get', 'getrlimit', 'ugetrlimit', 'setrlimit', 'prlimit64',
  'getrusage', 'times', 'sysinfo', 'uname', 'getcpu', 'getrandom',
  'pidfd_open', 'pidfd_send_signal', 'seccomp',
  'landlock_create_ruleset', 'landlock_add_rule', 'landlock_restrict_self',
];

const CREDENTIALS = [
  'getuid', 'getuid32', 'geteuid', 'geteuid32', 'getgid', 'getgid32', 'getegid', 'getegid32',
  'getresuid', 'getresuid32', 'getresgid', 'getresgid32', 'getgroups', 'getgroups32',
  'setuid', 'setuid32', 'setgid', 'setgid32', 'setreuid', 'setreuid32', 'setregid', 'setregid32',
  'setresuid', 'setresuid32', 'setresgid', 'setresgid32', 'setgroups', 'setgroups32',
  'setfsuid', 'setfsuid32', 'setfsgid', 'setfsgid32', 'capget', 'capset',
];

const SIGNALS_AND_TIME = [
  'kill', 'tkill', 'tgkill', 'rt_sigaction', 'rt_sigprocmask', 'rt_sigreturn', 'rt_sigpending',
  'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'rt_sigqueueinfo', 'rt_tgsigqueueinfo',
  'rt_sigsuspend', 'sigaction', 'sigprocmask', 'sigreturn', 'sigpending', 'sigsuspend', 'signal',
  'sigaltstack', 'pause', 'alarm', 'getitimer', 'setitimer',
  'nanosleep', 'clock_nanosleep', 'clock_nanosleep_time64', 'clock_gettime', 'clock_gettime64',
  'clock_getres', 'clock_getres_time64', 'gettimeofday', 'time',
  'timer_create', 'timer_settime', 'timer_settime64', 'timer_gettime', 'timer_gettime64',
  'timer_getoverrun', 'timer_delete',
];

// `socket` itself is allowed per address family below.
const NETWORK = [
  'socketpair', 'connect', 'accept', 'accept4', 'bind', 'listen', 'shutdown',
  'getsockname', 'getpeername', 'setsockopt', 'getsockopt',
  'sendto', 'recvfrom', 'sendmsg', 'recvmsg', 'sendmmsg', 'recvmmsg', 'recvmmsg_time64',
];

const IPC = [
  'shmget', 'shmat', 'shmdt', 'shmctl', 'semget', 'semop', 'semctl', 'semtimedop',
  'semtimedop_time64', 'msgget', 'msgsnd', 'msgrcv', 'msgctl',
  'mq_open', 'mq_unlink', 'mq_timedsend', 'mq_timedsend_time64', 'mq_timedreceive',
  'mq_timedreceive_time64', 'mq_notify', 'mq_getsetattr',
];

// Allowed by `default`, dropped by `strict`: useful to some programs but more kernel surface.
const DEFAULT_ONLY = [
  'io_setup', 'io_destroy', 'io_submit', 'io_cancel', 'io_getevents', 'io_pgetevents',
  'io_pgetevents_time64',
  'sched_setparam', 'sched_setscheduler', 'sched_setattr', 'ioprio_set',
  'sethostname', 'setdomainname',
  // The 32-bit SysV IPC multiplexer (old i386 glibc); its calls are allowed one by one anyway.
  'ipc',
];

// io_uring runs its operations in kernel workers that seccomp never sees: IORING_OP_SOCKET makes
// sockets of any family (AF_VSOCK, AF_XDP) past the socket() rule below. Off unless asked for,
// as in Docker's current default.
const IO_URING = ['io_uring_setup', 'io_uring_enter', 'io_uring_register'];

// Calls that reach into another process (its memory, its fds, its identity): the agent is such a
// process, with host files as its stdio. As in Docker's default, only with CAP_SYS_PTRACE.
const PTRACE_FAMILY = ['ptrace', 'process_vm_readv', 'process_vm_writev', 'process_madvise', 'kcmp', 'pidfd_getfd'];

// Bits of clone(2) flags that create namespaces: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
// NEWPID, NEWNET. A sandbox may clone threads and processes, never new namespaces.
const CLONE_NAMESPACE_FLAGS = 0x7e020000;
const LOW_32_BITS = 0xffffffff;
const AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10, AF_NETLINK = 16, AF_PACKET = 17;
// personality(2) values that change nothing dangerous: PER_LINUX, PER_LINUX32, UNAME26,
// PER_LINUX32|UNAME26, and the query value.
const SAFE_PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/** What widens a profile: the capabilities the sandbox's processes hold, and io_uring on request. */
export interface SeccompOptions {
  /** The sandbox's capability set (bounding); CAP_SYS_PTRACE there allows the ptrace family. */
  capabilities?: readonly string[];
  /** Allows io_uring (seccomp cannot see the operations it runs). Off by default. */
  ioUring?: boolean;
}

/** The syscall names a profile allows unconditionally (no argument filter). */
export function allowedSyscalls(profile: SeccompProfileName, opts: SeccompOptions = {}): string[] {
  const names = [...FILE_IO, ...FILE_META, ...MEMORY, ...PROCESS, ...CREDENTIALS,
    ...SIGNALS_AND_TIME, ...NETWORK, ...IPC];
  if (profile === 'default') names.push(...DEFAULT_ONLY);
  if (opts.ioUring) names.push(...IO_URING);
  if (opts.capabilities?.includes('CAP_SYS_PTRACE')) names.push(...PTRACE_FAMILY);
  return names;
}

/**
 * The seccomp architectures a filter for `arch` (a process.arch value) covers. Native only: a
 * syscall made through the 32-bit ABIs (int 0x80, x32) kills the thread — stricter than Docker,
 * which lets 32-bit programs run, and each extra architecture costs runc ~4-5 ms per container
 * start and exec (libseccomp compiles the whole list once per architecture).
 */
export function seccompArchitectures(arch: string): SeccompArch[] {
  if (arch === 'x64') return ['SCMP_ARCH_X86_64'];
  if (arch === 'ia32') return ['SCMP_ARCH_X86'];
  throw new HutchError('EUNSUPPORTED', `seccomp: architecture "${arch}" is not supported (x64 only)`);
}

// A rule that allows `name` when (arg[index] & mask) == value; masking to 32 bits stops a
// caller from slipping past a check with garbage in the upper half of an int argument.
function allowWhenMasked(name: string, index: number, mask: number, value: number): LinuxSyscall {
  return { names: [name], action: 'SCMP_ACT_ALLOW', args: [{ index, value: mask, valueTwo: value, op: 'SCMP_CMP_MASKED_EQ' }] };
}

// clone is allowed only without namespace flags; clone3 gets ENOSYS so libcs fall back to clone;
// socket only for ordinary address families. `strict` also drops AIO, personality and the
// scheduler/hostname setters; io_uring and the ptrace family depend on `opts` in both.
/** hutch's `linux.seccomp` allow-list for `arch` (a process.arch value) and profile; all else fails with EPERM. */
export function defaultSeccompProfile(arch: string = process.arch, profile: SeccompProfileName = 'default', opts: SeccompOptions = {}): LinuxSeccomp {
  const families = profile === 'strict' ? [AF_UNIX, AF_INET, AF_INET6, AF_NETLINK]
    : [AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET];
  const syscalls: LinuxSyscall[] = [
    { names: allowedSyscalls(profile, opts), action: 'SCMP_ACT_ALLOW' },
    { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
    // clone3 passes its flags in memory, out of seccomp's reach: refuse it as "not implemented".
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
    ...families.map((family) => allowWhenMasked('socket', 0, LOW_32_BITS, family)),
  ];
  if (profile === 'default') {
    syscalls.push(...SAFE_PERSONALITIES.map((p) => allowWhenMasked('personality', 0, LOW_32_BITS, p)));
  }
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    architectures: seccompArchitectures(arch),
    syscalls,
  };
}

/** The hardening profile named by a spec's `dev.hutch.profile` annotation ('default' when absent). */
export function profileFromAnnotations(annotations: Record<string, string> | undefined): SeccompProfileName {
  const value = annotations?.[PROFILE_ANNOTATION];
  if (value === undefined || value === 'default') return 'default';
  if (value === 'strict') return 'strict';
  throw new HutchError('EINVAL', `annotations["${PROFILE_ANNOTATION}"]: unknown profile "${value}" (want default or strict)`);
}
