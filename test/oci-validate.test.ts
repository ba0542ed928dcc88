// Unit tests of config.json validation: valid specs pass, each malformed one names its field.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isHutchError } from '../src/errors.js';
import { findSpecProblems, loadBundleSpec, parseSpec, specTemplate, validateSpec } from '../src/oci/index.js';

type Json = Record<string, unknown>;

/** A valid spec to break: deep-copied each time. */
function base(): Json {
  return JSON.parse(JSON.stringify(specTemplate())) as Json;
}

/** Applies `edit` to a fresh spec and returns the problem messages as `path: message`. */
function problemsAfter(edit: (s: Json & { process: Json; linux: Json; root: Json }) => void): string[] {
  const spec = base() as Json & { process: Json; linux: Json; root: Json };
  edit(spec);
  return findSpecProblems(spec).map((p) => `${p.path}: ${p.message}`);
}

function expectProblem(edit: Parameters<typeof problemsAfter>[0], expected: string | RegExp): void {
  const problems = problemsAfter(edit);
  const found = problems.some((p) => (typeof expected === 'string' ? p === expected : expected.test(p)));
  assert.ok(found, `expected ${expected} among ${JSON.stringify(problems)}`);
}

describe('validateSpec accepts', () => {
  it('the templates and returns the same object', () => {
    const spec = base();
    assert.equal(validateSpec(spec), spec);
    assert.deepEqual(findSpecProblems(specTemplate({ rootless: true, hostUid: 1000, hostGid: 1000 })), []);
  });

  it('a spec without process for purpose "any", and every 1.x version (as runc)', () => {
    const spec = base();
    delete spec.process;
    assert.deepEqual(findSpecProblems(spec, { purpose: 'any' }), []);
    for (const v of ['1.0.0', '1.0.2-dev', '1.1.0', '1.2.1', '1.1.0-rc.1', '1.3.0', '1.2.1+dev', '1.99.0']) {
      assert.deepEqual(findSpecProblems({ ...base(), ociVersion: v }), [], v);
    }
  });

  it('unknown extension fields and full-featured sections', () => {
    const spec = base() as Json & { linux: Json };
    spec['org.example.extension'] = { anything: true };
    spec.hooks = { prestart: [{ path: '/usr/bin/hook', args: ['hook', 'x'], env: ['A=b'], timeout: 5 }], poststop: [] };
    spec.linux.resources = {
      memory: { limit: 1 << 20, swap: -1, swappiness: 60 }, cpu: { shares: 512, quota: -1, period: 100000, cpus: '0-3,6' },
      pids: { limit: -1 }, blockIO: { weight: 500, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1000 }] },
      hugepageLimits: [{ pageSize: '2MB', limit: 0 }], unified: { 'io.max': '8:0 rbps=1' },
      devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' }],
    };
    spec.linux.sysctl = { 'net.ipv4.ip_forward': '1', 'kernel.shmmax': '1000' };
    spec.linux.devices = [{ type: 'c', path: '/dev/fuse', major: 10, minor: 229, fileMode: 0o666 }];
    assert.deepEqual(findSpecProblems(spec), []);
  });
});

describe('validateSpec accepts "zero means unset" as runc does', () => {
  const resources = (r: Json) => problemsAfter((s) => { s.linux.resources = r; });

  it('the resources dockerd 20.10 writes for a plain `docker run` (blockIO weight 0)', () => {
    assert.deepEqual(resources({
      devices: [{ allow: false, access: 'rwm' }], memory: {}, cpu: { shares: 0 }, blockIO: { weight: 0 },
    }), []);
  });

  it('blockIO weight, leafWeight and per-device weights of 0', () => {
    assert.deepEqual(resources({ blockIO: { weight: 0, leafWeight: 0, weightDevice: [{ major: 8, minor: 0, weight: 0, leafWeight: 0 }, { major: 8, minor: 16, weight: 0 }] } }), []);
    assert.deepEqual(resources({ blockIO: { weight: 10, leafWeight: 1000, weightDevice: [{ major: 8, minor: 0, weight: 500 }] } }), []);
  });

  it('cpu shares, quota, period and realtime values of 0; any negative quota or realtime runtime (no limit)', () => {
    assert.deepEqual(resources({ cpu: { shares: 0, quota: 0, period: 0, realtimeRuntime: 0, realtimePeriod: 0 } }), []);
    assert.deepEqual(resources({ cpu: { quota: -1 } }), []);
    assert.deepEqual(resources({ cpu: { quota: -100000, realtimeRuntime: -5 } }), []);
  });

  it('memory limit, reservation, swap and kernel limits of 0 (unset) and -1 (unlimited)', () => {
    assert.deepEqual(resources({ memory: { limit: 0, reservation: 0, swap: 0, kernel: 0, kernelTCP: 0 } }), []);
    assert.deepEqual(resources({ memory: { limit: -1, reservation: -1, swap: -1, kernel: -1, kernelTCP: -1 } }), []);
    assert.deepEqual(resources({ memory: { limit: 64 << 20, swap: -1 } }), []);
    assert.deepEqual(resources({ memory: { limit: 64 << 20, swap: 0 } }), []);
  });

  it('swappiness 0..100, and 2^64-1 (Go\'s uint64 of -1, which runc reads as unset)', () => {
    for (const v of [0, 60, 100]) assert.deepEqual(resources({ memory: { swappiness: v } }), [], String(v));
    // As config.json has it: JSON.parse reads 18446744073709551615 as 2^64 (the nearest double).
    const text = JSON.stringify({ ...base(), linux: { ...(base().linux as Json), resources: { memory: {} } } })
      .replace('"memory":{}', '"memory":{"swappiness":18446744073709551615}');
    assert.deepEqual(findSpecProblems(JSON.parse(text)), []);
  });

  it('pids limit 0 (unset), -1 and any negative (no limit), or no limit field at all', () => {
    for (const limit of [0, -1, -2, 100]) assert.deepEqual(resources({ pids: { limit } }), [], String(limit));
    assert.deepEqual(resources({ pids: {} }), []);
  });

  it('oomScoreAdj from -1000 to 1000', () => {
    for (const v of [-1000, -999, 0, 1000]) assert.deepEqual(problemsAfter((s) => { s.process.oomScoreAdj = v; }), [], String(v));
  });
});

describe('validateSpec rejects', () => {
  it('non-objects and wrong versions', () => {
    assert.deepEqual(findSpecProblems([]).map((p) => p.path), ['(top level)']);
    expectProblem((s) => { s.ociVersion = '9.9.9'; }, 'ociVersion: "9.9.9" is runtime-spec major version 9, which hutch does not support (want 1.x)');
    expectProblem((s) => { s.ociVersion = '0.6.0'; }, /ociVersion: "0.6.0" is runtime-spec major version 0/);
    expectProblem((s) => { s.ociVersion = 'one'; }, 'ociVersion: "one" is not a SemVer version (want 1.MINOR.PATCH)');
    expectProblem((s) => { s.ociVersion = '1.3'; }, /ociVersion: "1.3" is not a SemVer version/);
    expectProblem((s) => { s.ociVersion = 1.3; }, /ociVersion: must be a string/);
    expectProblem((s) => { delete s.ociVersion; }, 'ociVersion: is required');
  });

  it('missing or broken process and root', () => {
    expectProblem((s) => { delete (s as Json).process; }, 'process: is required');
    expectProblem((s) => { delete (s as Json).root; }, 'root: is required');
    expectProblem((s) => { s.root.path = ''; }, 'root.path: must be a non-empty string');
    expectProblem((s) => { s.root.readonly = 'yes'; }, /root.readonly: must be true or false/);
    expectProblem((s) => { s.process.args = ['']; }, 'process.args[0]: must be a non-empty string');
    expectProblem((s) => { s.process.args = []; }, /process.args: must have at least one element/);
    expectProblem((s) => { s.process.args = 'sh'; }, /process.args: must be an array/);
    expectProblem((s) => { s.process.args = ['sh', 3]; }, /process.args\[1\]: must be a string, got 3/);
    expectProblem((s) => { s.process.cwd = 'home'; }, /process.cwd: must be an absolute path/);
    expectProblem((s) => { delete s.process.cwd; }, 'process.cwd: is required');
    expectProblem((s) => { s.process.env = ['PATH']; }, /process.env\[0\]: must be NAME=value/);
    expectProblem((s) => { s.process.env = ['=x']; }, /process.env\[0\]: has an empty variable name/);
    expectProblem((s) => { s.process.env = ['A=\0']; }, /process.env\[0\]: must not contain NUL/);
    expectProblem((s) => { s.process.user = { uid: -1, gid: 0 }; }, 'process.user.uid: must not be negative, got -1');
    expectProblem((s) => { s.process.user = { uid: 0, gid: 2 ** 32 }; }, /process.user.gid: must be at most 4294967295/);
    expectProblem((s) => { s.process.user = { uid: 0, gid: 0, additionalGids: [1.5] }; }, /process.user.additionalGids\[0\]: must be an integer/);
    expectProblem((s) => { s.process.user = { gid: 0 }; }, 'process.user.uid: is required');
    expectProblem((s) => { s.process.terminal = 1; }, /process.terminal: must be true or false/);
    expectProblem((s) => { s.process.consoleSize = { height: 10 }; }, 'process.consoleSize.width: is required');
    expectProblem((s) => { s.process.oomScoreAdj = 2000; }, /process.oomScoreAdj: must be at most 1000/);
    expectProblem((s) => { s.process.ioPriority = { class: 'IOPRIO_CLASS_X', priority: 9 }; }, /process.ioPriority.class: unknown value/);
  });

  it('bad capabilities and rlimits', () => {
    expectProblem((s) => { (s.process.capabilities as Json).bounding = ['CAP_KILL', 'CAP_FLY']; },
      'process.capabilities.bounding[1]: unknown capability "CAP_FLY"');
    expectProblem((s) => { s.process.rlimits = [{ type: 'RLIMIT_FOO', soft: 1, hard: 1 }]; }, /process.rlimits\[0\].type: unknown value "RLIMIT_FOO"/);
    expectProblem((s) => { s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 10, hard: 5 }]; }, 'process.rlimits[0]: soft limit 10 is above hard limit 5');
    expectProblem((s) => { s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1, hard: 1 }, { type: 'RLIMIT_NOFILE', soft: 2, hard: 2 }]; },
      'process.rlimits[1]: duplicate rlimit type "RLIMIT_NOFILE" (also at index 0)');
    expectProblem((s) => { s.process.rlimits = [{ type: 'RLIMIT_CORE', soft: -1, hard: 0 }]; }, /process.rlimits\[0\].soft: must not be negative/);
  });

  it('bad mounts', () => {
    expectProblem((s) => { s.mounts = [{ destination: 'proc', type: 'proc', source: 'proc' }]; }, 'mounts[0].destination: must be an absolute path, got "proc"');
    expectProblem((s) => { s.mounts = [{ type: 'tmpfs' }]; }, 'mounts[0].destination: is required');
    expectProblem((s) => { s.mounts = [{ destination: '/x', type: 'bind', options: ['rbind'] }]; }, 'mounts[0].source: is required');
    expectProblem((s) => { s.mounts = [{ destination: '/x', source: '/y', options: ['bind', 7] }]; }, /mounts\[0\].options\[1\]: must be a string/);
    expectProblem((s) => { s.mounts = [{ destination: '/x', source: '/y', uidMappings: [{ containerID: 0, hostID: 1, size: 1 }] }]; },
      'mounts[0]: uidMappings and gidMappings must be given together');
    expectProblem((s) => { s.mounts = {}; }, /mounts: must be an array/);
  });

  it('bad hooks and annotations', () => {
    expectProblem((s) => { s.hooks = { prestart: [{ path: 'hook' }] }; }, /hooks.prestart\[0\].path: must be an absolute path/);
    expectProblem((s) => { s.hooks = { poststart: [{ args: [] }] }; }, 'hooks.poststart[0].path: is required');
    expectProblem((s) => { s.hooks = { prestop: [] }; }, /hooks.prestop: unknown hook kind/);
    expectProblem((s) => { s.hooks = { poststop: [{ path: '/h', timeout: 0 }] }; }, 'hooks.poststop[0].timeout: must be at least 1, got 0');
    expectProblem((s) => { s.hooks = { createRuntime: [{ path: '/h', env: ['X'] }] }; }, /hooks.createRuntime\[0\].env\[0\]: must be NAME=value/);
    expectProblem((s) => { s.annotations = { a: 1 }; }, 'annotations["a"]: must be a string, got 1');
  });

  it('bad namespaces and id mappings', () => {
    expectProblem((s) => { (s.linux.namespaces as Json[]).push({ type: 'foo' }); }, /linux.namespaces\[5\].type: unknown namespace "foo"/);
    expectProblem((s) => { (s.linux.namespaces as Json[]).push({ type: 'pid' }); }, 'linux.namespaces[5]: duplicate namespace type "pid" (also at index 0)');
    expectProblem((s) => { (s.linux.namespaces as Json[]).push({ type: 'cgroup', path: 'ns/cgroup' }); }, /linux.namespaces\[5\].path: must be an absolute path/);
    expectProblem((s) => { (s.linux.namespaces as Json[]).push({ type: 'user' }); }, 'linux.uidMappings: is required when a new user namespace is created');
    expectProblem((s) => { s.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 10 }]; }, 'linux.uidMappings: needs a "user" entry in linux.namespaces');
    const withUser = (s: Json & { linux: Json }, maps: unknown) => {
      (s.linux.namespaces as Json[]).push({ type: 'user' });
      s.linux.uidMappings = maps;
      s.linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
    };
    expectProblem((s) => withUser(s, [{ containerID: 0, hostID: 1000, size: 0 }]), 'linux.uidMappings[0].size: must be at least 1, got 0');
    expectProblem((s) => withUser(s, [{ containerID: 0, hostID: 1000 }]), 'linux.uidMappings[0].size: is required');
    expectProblem((s) => withUser(s, [{ containerID: 0, hostID: 1000, size: 10 }, { containerID: 5, hostID: 5000, size: 10 }]),
      'linux.uidMappings[1]: container ids overlap linux.uidMappings[0]');
    expectProblem((s) => withUser(s, [{ containerID: 0, hostID: 1000, size: 10 }, { containerID: 100, hostID: 1009, size: 1 }]),
      'linux.uidMappings[1]: host ids overlap linux.uidMappings[0]');
    expectProblem((s) => withUser(s, [{ containerID: 0, hostID: 4294967295, size: 2 }]), 'linux.uidMappings[0]: range goes past 4294967295');
  });

  it('bad resources', () => {
    expectProblem((s) => { s.linux.resources = { memory: { limit: -5 } }; }, 'linux.resources.memory.limit: must be at least -1, got -5');
    expectProblem((s) => { s.linux.resources = { memory: { limit: 100, swap: 50 } }; }, /linux.resources.memory.swap: .* must not be below limit 100/);
    expectProblem((s) => { s.linux.resources = { memory: { swappiness: 101 } }; }, /linux.resources.memory.swappiness: must be 0 to 100 .*got 101/);
    expectProblem((s) => { s.linux.resources = { cpu: { shares: -2 } }; }, 'linux.resources.cpu.shares: must not be negative, got -2');
    expectProblem((s) => { s.linux.resources = { cpu: { cpus: '0-a' } }; }, /linux.resources.cpu.cpus: must be a list like "0-3,6"/);
    expectProblem((s) => { s.linux.resources = { pids: { limit: '10' } }; }, /linux.resources.pids.limit: must be an integer, got "10"/);
    expectProblem((s) => { s.linux.resources = { blockIO: { weight: 5 } }; }, 'linux.resources.blockIO.weight: must be 0 (unset) or 10 to 1000, got 5');
    expectProblem((s) => { s.linux.resources = { blockIO: { leafWeight: 1001 } }; }, 'linux.resources.blockIO.leafWeight: must be 0 (unset) or 10 to 1000, got 1001');
    expectProblem((s) => { s.linux.resources = { blockIO: { weightDevice: [{ major: 8, minor: 0, weight: 1 }] } }; },
      'linux.resources.blockIO.weightDevice[0].weight: must be 0 (unset) or 10 to 1000, got 1');
    expectProblem((s) => { s.linux.resources = { memory: { swappiness: -1 } }; }, /linux.resources.memory.swappiness: must be 0 to 100/);
    expectProblem((s) => { s.linux.resources = { memory: { reservation: -2 } }; }, 'linux.resources.memory.reservation: must be at least -1, got -2');
    expectProblem((s) => { s.process.oomScoreAdj = -1001; }, /process.oomScoreAdj: must be at least -1000/);
    expectProblem((s) => { s.linux.resources = { blockIO: { throttleWriteIOPSDevice: [{ major: 8, minor: 0 }] } }; },
      'linux.resources.blockIO.throttleWriteIOPSDevice[0].rate: is required');
    expectProblem((s) => { s.linux.resources = { hugepageLimits: [{ pageSize: '2M', limit: 1 }] }; }, /hugepageLimits\[0\].pageSize: must look like "2MB"/);
    expectProblem((s) => { s.linux.resources = { devices: [{ access: 'rwx' }] }; }, 'linux.resources.devices[0].allow: is required');
    expectProblem((s) => { s.linux.resources = { devices: [{ allow: true, access: 'rwx' }] }; }, /linux.resources.devices\[0\].access: must be made of r, w and m/);
    expectProblem((s) => { s.linux.resources = { unified: { 'memory.max': 5 } }; }, /linux.resources.unified\["memory.max"\]: must be a string/);
  });

  it('bad seccomp', () => {
    const seccomp = (s: Json & { linux: Json }, value: unknown) => { s.linux.seccomp = value; };
    expectProblem((s) => seccomp(s, {}), 'linux.seccomp.defaultAction: is required');
    expectProblem((s) => seccomp(s, { defaultAction: 'SCMP_ACT_MAYBE' }), /linux.seccomp.defaultAction: unknown value "SCMP_ACT_MAYBE"/);
    expectProblem((s) => seccomp(s, { defaultAction: 'SCMP_ACT_ERRNO', architectures: ['SCMP_ARCH_Z80'] }), /architectures\[0\]: unknown value/);
    expectProblem((s) => seccomp(s, { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: [], action: 'SCMP_ACT_ALLOW' }] }),
      'linux.seccomp.syscalls[0].names: must name at least one syscall');
    expectProblem((s) => seccomp(s, { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', errnoRet: 1 }] }),
      'linux.seccomp.syscalls[0].errnoRet: only applies to SCMP_ACT_ERRNO and SCMP_ACT_TRACE');
    expectProblem((s) => seccomp(s, { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 6, value: 0, op: 'SCMP_CMP_EQ' }] }] }),
      'linux.seccomp.syscalls[0].args[0].index: must be at most 5, got 6');
    expectProblem((s) => seccomp(s, { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'EQ' }] }] }),
      /args\[0\].op: unknown value "EQ"/);
    expectProblem((s) => seccomp(s, { defaultAction: 'SCMP_ACT_NOTIFY' }), 'linux.seccomp.listenerPath: is required when an action is SCMP_ACT_NOTIFY');
  });

  it('other linux fields and cross-field rules', () => {
    expectProblem((s) => { s.linux.devices = [{ type: 'x', path: '/dev/x' }]; }, /linux.devices\[0\].type: unknown value "x"/);
    expectProblem((s) => { s.linux.devices = [{ type: 'c', path: '/dev/x' }]; }, 'linux.devices[0].major: is required');
    expectProblem((s) => { s.linux.devices = [{ type: 'p', path: 'dev/x' }]; }, /linux.devices\[0\].path: must be an absolute path/);
    expectProblem((s) => { s.linux.maskedPaths = ['proc/kcore']; }, /linux.maskedPaths\[0\]: must be an absolute path/);
    expectProblem((s) => { s.linux.rootfsPropagation = 'everywhere'; }, /linux.rootfsPropagation: unknown value "everywhere"/);
    expectProblem((s) => { s.linux.personality = { domain: 'WIN32' }; }, /linux.personality.domain: unknown value/);
    expectProblem((s) => { s.linux.sysctl = { 'vm.swappiness': '1' }; }, 'linux.sysctl["vm.swappiness"]: is not namespaced: setting it would change the host');
    expectProblem((s) => { s.linux.namespaces = [{ type: 'mount' }]; s.linux.sysctl = { 'net.core.somaxconn': '1' }; },
      'linux.sysctl["net.core.somaxconn"]: needs a "network" entry in linux.namespaces');
    expectProblem((s) => { s.linux.namespaces = [{ type: 'mount' }]; }, 'hostname: needs a "uts" entry in linux.namespaces');
    expectProblem((s) => { s.linux.namespaces = [{ type: 'uts' }]; }, 'linux.maskedPaths: needs a "mount" entry in linux.namespaces');
    expectProblem((s) => { s.linux.timeOffsets = { monotonic: { secs: 1 } }; }, 'linux.timeOffsets: needs a "time" entry in linux.namespaces');
  });

  it('with one error that lists every problem, names the file and carries its path', () => {
    const spec = base() as Json & { process: Json };
    spec.ociVersion = '2.0.0';
    spec.process.args = [''];
    assert.throws(() => validateSpec(spec, { file: '/b/config.json' }), (e: unknown) => {
      assert.ok(isHutchError(e, 'EINVAL'));
      assert.equal(e.path, '/b/config.json');
      assert.equal(e.message, 'config.json: ociVersion: "2.0.0" is runtime-spec major version 2, which hutch does not support (want 1.x); process.args[0]: must be a non-empty string');
      return true;
    });
  });

  it('text that is not JSON', () => {
    assert.throws(() => parseSpec('{"ociVersion":'), (e: unknown) => isHutchError(e, 'EINVAL') && /^config.json: not valid JSON/.test(e.message));
  });
});

describe('loadBundleSpec', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hutch-oci-validate-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a bundle, and reports a missing config.json as ENOTFOUND', async () => {
    await assert.rejects(loadBundleSpec(dir), (e: unknown) => isHutchError(e, 'ENOTFOUND') && e.path === join(dir, 'config.json'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(specTemplate()));
    assert.deepEqual(await loadBundleSpec(dir), specTemplate());
  });

  it('accepts what `runc spec` writes, when runc is installed', async (t) => {
    try {
      execFileSync('runc', ['--version'], { stdio: 'ignore' });
    } catch {
      t.skip('runc is not installed');
      return;
    }
    for (const flags of [[], ['--rootless']]) {
      rmSync(join(dir, 'config.json'), { force: true });
      execFileSync('runc', ['spec', ...flags, '--bundle', dir]);
      const spec = await loadBundleSpec(dir);
      assert.deepEqual(spec, JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
    }
  });
});
