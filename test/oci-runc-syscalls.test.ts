// Probes the seccomp profiles syscall by syscall from inside a real sandbox: node (started the
// way hutch's agent is) calls syscall(2) through koffi and reports each errno. This also checks
// that node itself, its libraries and read-only/read-write binds work under the profiles.
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { buildSandboxSpec } from '../src/oci/index.js';
import { RuncLab, nodeArgs, nodeModulesHolding, nodeRuntimeMounts, parseFindings, runcSkipReason } from './oci-kit.test.js';

const nodeModules = nodeModulesHolding('koffi', fileURLToPath(new URL('.', import.meta.url)))
  ?? nodeModulesHolding('koffi', process.cwd());
const skipReason = (await runcSkipReason()) ?? (nodeModules === undefined ? 'koffi is not installed' : undefined);

// x86_64 syscall numbers and the arguments each probe passes (none of them can do harm).
const PROBES: [name: string, nr: number, args: number[]][] = [
  ['keyctl', 250, [0, 0, 0, 0]],
  ['add_key', 248, [0, 0, 0, 0, 0]],
  ['request_key', 249, [0, 0, 0, 0]],
  ['bpf', 321, [0, 0, 0]],
  ['userfaultfd', 323, [0]],
  ['perf_event_open', 298, [0, 0, -1, -1, 0]],
  ['ptrace', 101, [0x4206, 0x3ffffff0, 0, 0]], // SEIZE of no such pid: ESRCH when allowed
  ['clone3', 435, [0, 0]],
  ['clone_newuser', 56, [0x10000000 | 17, 0, 0, 0, 0]],
  ['unshare', 272, [0x20000]],
  ['setns', 308, [-1, 0]],
  ['mount', 165, [0, 0, 0, 0, 0]],
  ['kexec_load', 246, [0, 0, 0, 0]],
  ['init_module', 175, [0, 0, 0]],
  ['settimeofday', 164, [0, 0]],
  ['open_by_handle_at', 304, [-1, 0, 0]],
  ['personality_no_aslr', 135, [0x40000]],
  ['personality_query', 135, [0xffffffff]],
  ['socket_vsock', 41, [40, 1, 0]],
  ['socket_vsock_high_bits', 41, [2 ** 32 + 40, 1, 0]],
  ['socket_inet', 41, [2, 1, 0]],
  ['io_uring_setup', 425, [0, 0]],
  ['pidfd_getfd', 438, [-1, 1, 0]],
  ['process_vm_readv', 310, [1, 0, 0, 0, 0, 0]],
  ['kcmp', 312, [1, 1, 0, 0, 0]],
  ['getpid', 39, []],
  ['getrandom', 318, [0, 0, 0]],
];

const PROBE_SCRIPT = `
const koffi = require('koffi');
const libc = koffi.load('libc.so.6');
const syscall = libc.func('long syscall(long nr, ...)');
const errnoLocation = libc.func('int *__errno_location()');
for (const [name, nr, args] of ${JSON.stringify(PROBES)}) {
  const result = syscall(nr, ...args.flatMap((a) => ['long', a]));
  console.log(name + '=' + (result < 0 ? 'errno' + koffi.decode(errnoLocation(), 'int') : 'ok'));
}
require('fs').writeFileSync('/.hutch/run/done', 'yes');
`;

const EPERM = 'errno1', ENOSYS = 'errno38';
const ALWAYS_DENIED = ['keyctl', 'add_key', 'request_key', 'bpf', 'userfaultfd', 'perf_event_open', 'ptrace',
  'clone_newuser', 'unshare', 'setns', 'mount', 'kexec_load', 'init_module', 'settimeofday', 'open_by_handle_at',
  'personality_no_aslr', 'socket_vsock', 'socket_vsock_high_bits', 'io_uring_setup',
  'pidfd_getfd', 'process_vm_readv', 'kcmp'];
// What CAP_SYS_PTRACE brings back, as in Docker's default profile.
const PTRACE_FAMILY = ['ptrace', 'pidfd_getfd', 'process_vm_readv', 'kcmp'];

describe('seccomp profiles, syscall by syscall', { skip: skipReason }, () => {
  let lab: RuncLab;
  before(async () => { lab = await RuncLab.create('syscalls'); });
  after(async () => {
    if (!lab) return;
    await lab.cleanup();
    assert.deepEqual(lab.leftoverCgroups(), []);
  });

  async function probe(seccomp: 'default' | 'strict' | 'off', extra: { ioUring?: boolean; capabilities?: string[] } = {}): Promise<Map<string, string>> {
    const id = lab.newId(`syscalls-${seccomp}`);
    const appDir = join(lab.dir, 'app', id);
    const runDir = join(lab.dir, 'run', id);
    await mkdir(appDir, { recursive: true });
    await mkdir(runDir, { recursive: true });
    await chmod(runDir, 0o777);
    await writeFile(join(appDir, 'probe.cjs'), PROBE_SCRIPT);
    const mounts = [
      ...(await nodeRuntimeMounts(nodeModules!)),
      { source: join(appDir, 'probe.cjs'), destination: '/.hutch/probe.cjs', readonly: true },
      { source: runDir, destination: '/.hutch/run', readonly: false },
    ];
    const input = lab.input(id, '');
    const spec = buildSandboxSpec({ ...input, args: nodeArgs('/.hutch/probe.cjs'), mounts, seccomp, ioUring: extra.ioUring,
      capabilities: [...input.capabilities, ...(extra.capabilities ?? [])],
      limits: { memoryBytes: 512 * 1024 * 1024, pids: 128 } });
    const result = await lab.run(id, spec);
    assert.equal(result.code, 0, `node failed under ${seccomp}: ${result.stderr}${result.stdout}`);
    const found = parseFindings(result.stdout);
    assert.equal(found.size, PROBES.length, result.stdout);
    assert.equal(await readFile(join(runDir, 'done'), 'utf8'), 'yes', 'the read-write bind reaches the host');
    return found;
  }

  it('default: denies the dangerous syscalls, ENOSYS for clone3, allows the ordinary ones', async () => {
    const found = await probe('default');
    for (const name of ALWAYS_DENIED) assert.equal(found.get(name), EPERM, name);
    assert.equal(found.get('clone3'), ENOSYS);
    assert.equal(found.get('personality_query'), 'ok');
    assert.equal(found.get('socket_inet'), 'ok');
    assert.equal(found.get('getpid'), 'ok');
    assert.equal(found.get('getrandom'), 'ok');
  });

  it('default with io_uring asked for: io_uring reaches the kernel, nothing else changes', async () => {
    const found = await probe('default', { ioUring: true });
    assert.notEqual(found.get('io_uring_setup'), EPERM, 'io_uring reaches the kernel');
    for (const name of ALWAYS_DENIED.filter((n) => n !== 'io_uring_setup')) assert.equal(found.get(name), EPERM, name);
  });

  it('default with CAP_SYS_PTRACE: the ptrace family reaches the kernel', async () => {
    const found = await probe('default', { capabilities: ['CAP_SYS_PTRACE'] });
    for (const name of PTRACE_FAMILY) assert.notEqual(found.get(name), EPERM, name);
    assert.equal(found.get('io_uring_setup'), EPERM);
  });

  it('strict: also denies personality', async () => {
    const found = await probe('strict');
    for (const name of [...ALWAYS_DENIED, 'personality_query']) assert.equal(found.get(name), EPERM, name);
    assert.equal(found.get('clone3'), ENOSYS);
    assert.equal(found.get('socket_inet'), 'ok');
  });

  it('off: the same calls reach the kernel', async () => {
    const found = await probe('off');
    assert.notEqual(found.get('socket_vsock'), EPERM, 'without seccomp AF_VSOCK is up to the kernel');
    assert.equal(found.get('personality_query'), 'ok');
    assert.notEqual(found.get('clone3'), ENOSYS);
    assert.notEqual(found.get('keyctl'), EPERM);
  });
});
