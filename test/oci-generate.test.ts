// Unit tests of sandbox spec generation, the `hutch spec` template and the hardening data.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isHutchError } from '../src/errors.js';
import {
  ALL_CAPABILITIES, DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS,
  type SandboxSpecInput, type Spec, allowedSyscalls, buildSandboxSpec, defaultSeccompProfile,
  findSpecProblems, profileFromAnnotations, specTemplate, specToJson, validateSpec,
} from '../src/oci/index.js';

/** A complete, valid input; tests override pieces of it. */
function sampleInput(over: Partial<SandboxSpecInput> = {}): SandboxSpecInput {
  return {
    args: ['/bin/sh', '-c', 'echo hi'],
    env: ['PATH=/bin'],
    cwd: '/',
    user: { uid: 0, gid: 0 },
    terminal: false,
    hostname: 'box',
    rootfsPath: '/var/lib/hutch/rootfs',
    idMap: { hostUid: 1000000000, hostGid: 1000000000, size: 65536 },
    namespaces: { user: true, pid: true, ipc: true, uts: true, mount: true, network: true, cgroup: true },
    seccomp: 'default',
    capabilities: [...DEFAULT_CAPABILITIES],
    noNewPrivileges: true,
    maskPaths: true,
    limits: { memoryBytes: 256 << 20, cpus: 1.5, pids: 64 },
    cgroupsPath: 'hutch/abc',
    ...over,
  };
}

function mount(spec: Spec, destination: string) {
  return spec.mounts?.find((m) => m.destination === destination);
}

function assertEinval(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => isHutchError(e, 'EINVAL') && pattern.test(e.message));
}

describe('buildSandboxSpec', () => {
  it('writes a spec that validates and carries every input', () => {
    const spec = buildSandboxSpec(sampleInput({ annotations: { 'dev.hutch.profile': 'default' } }));
    assert.deepEqual(findSpecProblems(spec), []);
    assert.equal(spec.hostname, 'box');
    assert.deepEqual(spec.process?.args, ['/bin/sh', '-c', 'echo hi']);
    assert.deepEqual(spec.process?.capabilities?.ambient, []);
    assert.deepEqual(spec.process?.capabilities?.inheritable, []);
    assert.deepEqual(spec.process?.capabilities?.bounding, [...DEFAULT_CAPABILITIES]);
    assert.deepEqual(spec.process?.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }]);
    assert.deepEqual(spec.linux?.uidMappings, [{ containerID: 0, hostID: 1000000000, size: 65536 }]);
    assert.deepEqual(spec.linux?.gidMappings, [{ containerID: 0, hostID: 1000000000, size: 65536 }]);
    assert.deepEqual(spec.linux?.namespaces?.map((n) => n.type).sort(), ['cgroup', 'ipc', 'mount', 'network', 'pid', 'user', 'uts']);
    assert.deepEqual(spec.linux?.resources?.memory, { limit: 256 << 20 });
    assert.deepEqual(spec.linux?.resources?.cpu, { quota: 150000, period: 100000 });
    assert.deepEqual(spec.linux?.resources?.pids, { limit: 64 });
    assert.deepEqual(spec.linux?.resources?.devices, [{ allow: false, access: 'rwm' }]);
    assert.equal(spec.linux?.cgroupsPath, 'hutch/abc');
    assert.deepEqual(spec.linux?.maskedPaths, [...DEFAULT_MASKED_PATHS]);
    assert.deepEqual(spec.linux?.readonlyPaths, [...DEFAULT_READONLY_PATHS]);
    assert.equal(spec.linux?.seccomp?.defaultAction, 'SCMP_ACT_ERRNO');
    assert.deepEqual(spec.annotations, { 'dev.hutch.profile': 'default' });
    assert.equal(spec.root?.readonly, false);
  });

  it('mounts sysfs with a new netns and binds /sys read-only without one', () => {
    assert.equal(mount(buildSandboxSpec(sampleInput()), '/sys')?.type, 'sysfs');
    const shared = buildSandboxSpec(sampleInput({ namespaces: { user: true, pid: true, ipc: true, uts: true, mount: true, network: false, cgroup: true } }));
    const sys = mount(shared, '/sys');
    assert.equal(sys?.source, '/sys');
    assert.ok(sys?.options?.includes('rbind') && sys.options.includes('rro'));
    const noUserns = buildSandboxSpec(sampleInput({ idMap: null, namespaces: { user: false, pid: true, ipc: true, uts: true, mount: true, network: false, cgroup: true } }));
    assert.equal(mount(noUserns, '/sys')?.type, 'sysfs');
  });

  it('asks devpts for gid=5 only when that gid is mapped', () => {
    assert.ok(mount(buildSandboxSpec(sampleInput()), '/dev/pts')?.options?.includes('gid=5'));
    const small = buildSandboxSpec(sampleInput({ idMap: { hostUid: 2000, hostGid: 2000, size: 1 } }));
    assert.ok(!mount(small, '/dev/pts')?.options?.some((o) => o.startsWith('gid=')));
    const noUserns = buildSandboxSpec(sampleInput({ idMap: null, namespaces: { ...sampleInput().namespaces, user: false } }));
    assert.ok(mount(noUserns, '/dev/pts')?.options?.includes('gid=5'));
  });

  it('leaves out /dev/mqueue when a user namespace shares the host IPC namespace', () => {
    const spec = buildSandboxSpec(sampleInput({ namespaces: { ...sampleInput().namespaces, ipc: false } }));
    assert.equal(mount(spec, '/dev/mqueue'), undefined);
    assert.ok(mount(buildSandboxSpec(sampleInput()), '/dev/mqueue'));
  });

  it('appends extra binds after the defaults, read-only ones recursively', () => {
    const spec = buildSandboxSpec(sampleInput({ mounts: [
      { source: '/usr/bin/node', destination: '/.hutch/node', readonly: true },
      { source: '/run/hutch/x/run', destination: '/.hutch/run', readonly: false, type: 'bind' },
    ] }));
    const last = spec.mounts!.slice(-2);
    assert.deepEqual(last[0], { destination: '/.hutch/node', type: 'bind', source: '/usr/bin/node', options: ['rbind', 'ro', 'rro', 'nosuid', 'nodev'] });
    assert.deepEqual(last[1]?.options, ['rbind', 'rw', 'nosuid', 'nodev']);
    assert.equal(spec.mounts![0]?.destination, '/proc');
  });

  it('turns off seccomp, masks and the user namespace on request', () => {
    const spec = buildSandboxSpec(sampleInput({
      seccomp: 'off', maskPaths: false, idMap: null, readonlyRootfs: true,
      namespaces: { user: false, pid: true, ipc: true, uts: true, mount: true, network: true, cgroup: false },
      limits: {}, rlimits: [{ type: 'RLIMIT_NOFILE', hard: 4096, soft: 512 }],
    }));
    assert.equal(spec.linux?.seccomp, undefined);
    assert.equal(spec.linux?.maskedPaths, undefined);
    assert.equal(spec.linux?.uidMappings, undefined);
    assert.equal(spec.root?.readonly, true);
    assert.deepEqual(spec.linux?.resources, { devices: [{ allow: false, access: 'rwm' }] });
    assert.deepEqual(spec.process?.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 4096, soft: 512 }]);
    assert.deepEqual(findSpecProblems(spec), []);
  });

  it('uses the strict profile when asked', () => {
    const spec = buildSandboxSpec(sampleInput({ seccomp: 'strict' }));
    assert.deepEqual(spec.linux?.seccomp, defaultSeccompProfile(process.arch, 'strict'));
  });

  it('rejects inconsistent input with EINVAL naming the field', () => {
    assertEinval(() => buildSandboxSpec(sampleInput({ args: [] })), /args: must have at least one/);
    assertEinval(() => buildSandboxSpec(sampleInput({ args: [''] })), /args\[0\]: must be a non-empty string/);
    assertEinval(() => buildSandboxSpec(sampleInput({ env: ['NOEQUALS'] })), /env\[0\]: must be NAME=value/);
    assertEinval(() => buildSandboxSpec(sampleInput({ cwd: 'tmp' })), /cwd: must be an absolute path/);
    assertEinval(() => buildSandboxSpec(sampleInput({ idMap: null })), /idMap: must be given exactly when/);
    assertEinval(() => buildSandboxSpec(sampleInput({ user: { uid: 70000, gid: 0 } })), /user: id 70000 is not mapped/);
    assertEinval(() => buildSandboxSpec(sampleInput({ idMap: { hostUid: 1, hostGid: 1, size: 0 } })), /idMap.size/);
    assertEinval(() => buildSandboxSpec(sampleInput({ capabilities: ['CAP_FLY'] })), /unknown capability "CAP_FLY"/);
    assertEinval(() => buildSandboxSpec(sampleInput({ limits: { pids: 0 } })), /limits.pids/);
    assertEinval(() => buildSandboxSpec(sampleInput({ limits: { cpus: -1 } })), /limits.cpus/);
    assertEinval(() => buildSandboxSpec(sampleInput({ limits: { memoryBytes: 1.5 } })), /limits.memoryBytes/);
    assertEinval(() => buildSandboxSpec(sampleInput({ mounts: [{ source: 'rel', destination: '/x', readonly: true }] })), /mounts\[0\].source/);
    assertEinval(() => buildSandboxSpec(sampleInput({ mounts: [{ source: '/x', destination: 'x', readonly: true }] })), /mounts\[0\].destination/);
    assertEinval(() => buildSandboxSpec(sampleInput({ namespaces: { ...sampleInput().namespaces, mount: false } })), /namespaces.mount/);
    assertEinval(() => buildSandboxSpec(sampleInput({ namespaces: { ...sampleInput().namespaces, pid: false } })), /namespaces.pid/);
    assertEinval(() => buildSandboxSpec(sampleInput({ namespaces: { ...sampleInput().namespaces, uts: false } })), /hostname: needs namespaces.uts/);
    assertEinval(() => buildSandboxSpec(sampleInput({ hostname: 'h'.repeat(65) })), /hostname: must be at most 64/);
  });

  it('carries the offending path on the error', () => {
    assert.throws(() => buildSandboxSpec(sampleInput({ cwd: 'relative/dir' })), (e: unknown) => isHutchError(e) && e.path === 'relative/dir');
  });
});

describe('specTemplate', () => {
  it('resembles `runc spec` and validates', () => {
    const spec = specTemplate();
    assert.deepEqual(findSpecProblems(spec), []);
    assert.equal(spec.root?.path, 'rootfs');
    assert.equal(spec.process?.terminal, true);
    assert.deepEqual(spec.process?.args, ['sh']);
    assert.ok(spec.linux?.namespaces?.some((n) => n.type === 'network'));
    assert.equal(spec.linux?.uidMappings, undefined);
    // It asks for hutch's profile, which OCI mode adds only on request.
    assert.deepEqual(spec.annotations, { 'dev.hutch.profile': 'default' });
  });

  it('maps the given ids to root when rootless', () => {
    const spec = specTemplate({ rootless: true, hostUid: 1234, hostGid: 5678 });
    assert.deepEqual(findSpecProblems(spec), []);
    assert.deepEqual(spec.linux?.uidMappings, [{ containerID: 0, hostID: 1234, size: 1 }]);
    assert.deepEqual(spec.linux?.gidMappings, [{ containerID: 0, hostID: 5678, size: 1 }]);
    assert.ok(!spec.linux?.namespaces?.some((n) => n.type === 'network'));
    assert.equal(mount(spec, '/sys')?.source, '/sys');
  });

  it('serializes to indented JSON that parses back', () => {
    const text = specToJson(specTemplate());
    assert.ok(text.endsWith('}\n'));
    assert.deepEqual(validateSpec(JSON.parse(text)), specTemplate());
  });
});

describe('hardening data', () => {
  it('lists the kernel capabilities in bit order and a default subset', () => {
    assert.equal(ALL_CAPABILITIES.length, 41);
    assert.equal(ALL_CAPABILITIES[21], 'CAP_SYS_ADMIN');
    assert.equal(ALL_CAPABILITIES[40], 'CAP_CHECKPOINT_RESTORE');
    for (const cap of DEFAULT_CAPABILITIES) assert.ok(ALL_CAPABILITIES.includes(cap), cap);
    assert.ok(!DEFAULT_CAPABILITIES.includes('CAP_SYS_ADMIN'));
  });

  it('allows what programs need and leaves dangerous syscalls out', () => {
    const allowed = new Set(allowedSyscalls('default'));
    for (const name of ['read', 'openat2', 'statx', 'rseq', 'faccessat2', 'epoll_pwait2', 'close_range', 'pidfd_open',
      'getrandom', 'memfd_create', 'copy_file_range', 'membarrier', 'sched_getaffinity', 'execve']) {
      assert.ok(allowed.has(name), `${name} should be allowed`);
    }
    const dangerous = ['keyctl', 'add_key', 'request_key', 'bpf', 'perf_event_open', 'userfaultfd', 'kexec_load',
      'kexec_file_load', 'init_module', 'finit_module', 'delete_module', 'mount', 'umount2', 'pivot_root', 'swapon',
      'swapoff', 'reboot', 'open_by_handle_at', 'name_to_handle_at', 'setns', 'unshare', 'ptrace', 'acct', 'quotactl',
      'lookup_dcookie', 'move_pages', 'mbind', 'set_mempolicy', 'syslog', 'vm86', 'iopl', 'ioperm', 'settimeofday',
      'clock_settime', 'clock_adjtime', 'adjtimex', 'nfsservctl', 'fanotify_init', 'fsopen', 'open_tree', 'clone', 'clone3',
      'personality', 'socket'];
    for (const profile of ['default', 'strict'] as const) {
      const names = new Set(allowedSyscalls(profile));
      for (const name of dangerous) assert.ok(!names.has(name), `${name} must not be allowed unconditionally (${profile})`);
    }
    // io_uring's operations (IORING_OP_SOCKET: any address family) are out of seccomp's sight, and
    // the ptrace family reaches the agent's fds and memory: neither without asking.
    const reach = ['io_uring_setup', 'io_uring_enter', 'io_uring_register', 'process_vm_readv', 'process_vm_writev',
      'pidfd_getfd', 'kcmp', 'ptrace'];
    for (const profile of ['default', 'strict'] as const) {
      const names = new Set(allowedSyscalls(profile));
      for (const name of reach) assert.ok(!names.has(name), `${name} (${profile})`);
      const ptrace = new Set(allowedSyscalls(profile, { capabilities: ['CAP_SYS_PTRACE'] }));
      for (const name of ['ptrace', 'process_vm_readv', 'pidfd_getfd', 'kcmp']) assert.ok(ptrace.has(name), `${name} with CAP_SYS_PTRACE (${profile})`);
      assert.ok(!ptrace.has('io_uring_setup'));
      assert.ok(new Set(allowedSyscalls(profile, { ioUring: true })).has('io_uring_enter'), `io_uring on request (${profile})`);
    }
    assert.equal(new Set(allowedSyscalls('default')).size, allowedSyscalls('default').length, 'no duplicates');
  });

  it('filters clone by namespace flags and sends clone3 to ENOSYS', () => {
    const profile = defaultSeccompProfile('x64');
    assert.equal(profile.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(profile.defaultErrnoRet, 1);
    assert.deepEqual(profile.architectures, ['SCMP_ARCH_X86_64']);
    const clone = profile.syscalls?.find((r) => r.names.includes('clone'));
    assert.deepEqual(clone?.args, [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]);
    const clone3 = profile.syscalls?.find((r) => r.names.includes('clone3'));
    assert.deepEqual({ action: clone3?.action, errnoRet: clone3?.errnoRet }, { action: 'SCMP_ACT_ERRNO', errnoRet: 38 });
    const families = profile.syscalls?.filter((r) => r.names[0] === 'socket').map((r) => r.args?.[0]?.valueTwo);
    assert.deepEqual(families, [1, 2, 10, 16, 17]);
    assert.ok(!families?.includes(40), 'AF_VSOCK is not allowed');
    assert.deepEqual(findSpecProblems({ ociVersion: '1.0.2', root: { path: 'r' }, linux: { seccomp: profile } }, { purpose: 'any' }), []);
  });

  it('rejects architectures it has no syscall table for', () => {
    assert.throws(() => defaultSeccompProfile('arm64'), (e: unknown) => isHutchError(e, 'EUNSUPPORTED'));
  });

  it('reads the profile annotation', () => {
    assert.equal(profileFromAnnotations(undefined), 'default');
    assert.equal(profileFromAnnotations({ 'dev.hutch.profile': 'strict' }), 'strict');
    assert.throws(() => profileFromAnnotations({ 'dev.hutch.profile': 'lax' }), (e: unknown) => isHutchError(e, 'EINVAL'));
  });
});
