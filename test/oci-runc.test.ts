// Real runs of generated specs with runc: a busybox sandbox in a user namespace with every
// namespace, seccomp, capabilities, masked paths and limits, checked from the inside.
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { ALL_CAPABILITIES, DEFAULT_CAPABILITIES, buildSandboxSpec, specTemplate } from '../src/oci/index.js';
import { HOST_ID, ID_COUNT, type RunResult, RuncLab, parseFindings, runcSkipReason } from './oci-kit.test.js';

const skipReason = await runcSkipReason();

/** The CapEff line /proc/<pid>/status shows for a capability list. */
function capMask(caps: readonly string[]): string {
  const bits = caps.reduce((mask, cap) => mask | (1n << BigInt(ALL_CAPABILITIES.indexOf(cap))), 0n);
  return bits.toString(16).padStart(16, '0');
}

function assertRan(result: RunResult): Map<string, string> {
  assert.equal(result.code, 0, `sandbox failed (${result.code}): ${result.stderr}${result.stdout}`);
  return parseFindings(result.stdout);
}

const HARDENING_PROBE = `
echo "uid_map=$(tr -s ' ' < /proc/self/uid_map)"
echo "gid_map=$(tr -s ' ' < /proc/self/gid_map)"
echo "uid=$(id -u)"
echo "hostname=$(hostname)"
unshare -m true 2>/dev/null; echo "unshare=$?"
mount -t tmpfs x /mnt 2>/dev/null; echo "mount=$?"
if [ -e /proc/kcore ]; then echo "kcore=$(wc -c < /proc/kcore)"; else echo "kcore=absent"; fi
echo "timer_list=$(wc -c < /proc/timer_list)"
echo "keys=$(wc -c < /proc/keys)"
echo "firmware=$(ls -A /sys/firmware | wc -l)"
echo 1 > /proc/sys/kernel/domainname 2>/dev/null; echo "procsys_write=$?"
echo "procsys_mount=$(grep ' /proc/sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)"
echo hello > /written-by-sandbox; echo "write=$(cat /written-by-sandbox)"
echo "root_owner=$(stat -c %u /)"
echo "pids_max=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"
echo "memory_max=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"
echo "fork_failures=$( (for i in $(seq 1 80); do sleep 5 >/dev/null 2>&1 & done) 2>&1 | grep -c "can't fork")"
echo "cap_eff=$(grep CapEff /proc/self/status | cut -f2)"
echo "cap_amb=$(grep CapAmb /proc/self/status | cut -f2)"
echo "seccomp=$(grep 'Seccomp:' /proc/self/status | cut -f2)"
echo "no_new_privs=$(grep NoNewPrivs /proc/self/status | cut -f2)"
echo "net=$(ls /sys/class/net | tr '\\n' ' ')"
echo "nofile=$(ulimit -n)"
echo "devpts=$(grep ' /dev/pts ' /proc/mounts | cut -d' ' -f4)"
`;

describe('generated specs under runc', { skip: skipReason }, () => {
  let lab: RuncLab;
  before(async () => { lab = await RuncLab.create('oci'); });
  after(async () => {
    if (!lab) return;
    await lab.cleanup();
    assert.deepEqual(lab.leftoverCgroups(), []);
  });

  it('runs a hardened sandbox: user namespace, every namespace, seccomp, masks, limits', async () => {
    const id = lab.newId('hardened');
    const found = assertRan(await lab.run(id, buildSandboxSpec(lab.input(id, HARDENING_PROBE))));
    assert.match(found.get('uid_map') ?? '', new RegExp(`^0 ${HOST_ID} ${ID_COUNT}$`));
    assert.match(found.get('gid_map') ?? '', new RegExp(`^0 ${HOST_ID} ${ID_COUNT}$`));
    assert.equal(found.get('uid'), '0');
    assert.equal(found.get('hostname'), 'hutchbox');
    assert.notEqual(found.get('unshare'), '0', 'unshare must be denied');
    assert.notEqual(found.get('mount'), '0', 'mount must be denied');
    assert.ok(['absent', '0'].includes(found.get('kcore') ?? ''), `kcore: ${found.get('kcore')}`);
    assert.equal(found.get('timer_list'), '0', '/proc/timer_list is masked');
    assert.equal(found.get('keys'), '0', '/proc/keys is masked');
    assert.equal(found.get('firmware'), '0', '/sys/firmware is masked');
    assert.notEqual(found.get('procsys_write'), '0', '/proc/sys is read-only');
    assert.equal(found.get('procsys_mount'), 'ro');
    assert.equal(found.get('write'), 'hello');
    assert.equal(found.get('root_owner'), '0');
    assert.equal(found.get('pids_max'), '64');
    assert.equal(found.get('memory_max'), String(256 * 1024 * 1024));
    assert.ok(Number(found.get('fork_failures')) > 0, `the pids limit stops a fork loop (${found.get('fork_failures')})`);
    assert.equal(found.get('cap_eff'), capMask(DEFAULT_CAPABILITIES));
    assert.equal(found.get('cap_amb'), '0000000000000000');
    assert.equal(found.get('seccomp'), '2');
    assert.equal(found.get('no_new_privs'), '1');
    assert.equal(found.get('net'), 'lo');
    assert.equal(found.get('nofile'), '1024');
    assert.match(found.get('devpts') ?? '', /gid=\d+/);
  });

  it('denies unshare and mount by seccomp even with CAP_SYS_ADMIN', async () => {
    const probe = 'unshare -m true 2>/dev/null; echo "unshare=$?"; mount -t tmpfs x /mnt 2>/dev/null; echo "mount=$?"';
    const caps = [...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN'];
    const offId = lab.newId('sysadmin-off');
    const open = assertRan(await lab.run(offId, buildSandboxSpec(lab.input(offId, probe, { capabilities: caps, seccomp: 'off' }))));
    assert.deepEqual([open.get('unshare'), open.get('mount')], ['0', '0'], 'without seccomp the capability suffices');
    for (const seccomp of ['default', 'strict'] as const) {
      const id = lab.newId(`sysadmin-${seccomp}`);
      const shut = assertRan(await lab.run(id, buildSandboxSpec(lab.input(id, probe, { capabilities: caps, seccomp }))));
      assert.notEqual(shut.get('unshare'), '0', `${seccomp}: unshare`);
      assert.notEqual(shut.get('mount'), '0', `${seccomp}: mount`);
    }
  });

  it('runs with the strict profile, without seccomp, and with no_new_privs off', async () => {
    const probe = 'echo "seccomp=$(grep "Seccomp:" /proc/self/status | cut -f2)"; ls /bin > /dev/null && echo ok=yes';
    for (const [seccomp, noNewPrivileges, mode] of [['strict', true, '2'], ['off', true, '0'], ['default', false, '2'], ['strict', false, '2']] as const) {
      const id = lab.newId(`${seccomp}-${noNewPrivileges ? 'nnp' : 'privs'}`);
      const found = assertRan(await lab.run(id, buildSandboxSpec(lab.input(id, probe, { seccomp, noNewPrivileges }))));
      assert.equal(found.get('seccomp'), mode, `${seccomp} nnp=${noNewPrivileges}`);
      assert.equal(found.get('ok'), 'yes');
    }
  });

  it('shares the host network, IPC and UTS namespaces under a user namespace, as a non-root user', async () => {
    const id = lab.newId('shared');
    const probe = [
      'echo "uid=$(id -u) groups=$(id -G)"',
      'echo "hostname=$(hostname)"',
      'echo "sys=$(grep " /sys " /proc/mounts | cut -d" " -f4 | cut -d, -f1)"',
      'echo "mqueue=$(grep -c " /dev/mqueue " /proc/mounts)"',
      'touch /x 2>/dev/null; echo "rootfs_write=$?"',
      'touch /sys/x 2>/dev/null; echo "sys_write=$?"',
    ].join('\n');
    const spec = buildSandboxSpec(lab.input(id, probe, {
      user: { uid: 1000, gid: 1000, additionalGids: [5] }, hostname: '', readonlyRootfs: true,
      namespaces: { user: true, pid: true, ipc: false, uts: false, mount: true, network: false, cgroup: false },
      capabilities: [], limits: {},
    }));
    const found = assertRan(await lab.run(id, spec));
    assert.equal(found.get('uid'), '1000 groups=1000 5');
    assert.equal(found.get('hostname'), hostname());
    assert.equal(found.get('sys'), 'ro');
    assert.equal(found.get('mqueue'), '0');
    assert.notEqual(found.get('rootfs_write'), '0');
    assert.notEqual(found.get('sys_write'), '0');
  });

  it('maps a single id, leaving devpts without gid=5', async () => {
    const id = lab.newId('one-id');
    const probe = 'echo "uid_map=$(tr -s " " < /proc/self/uid_map)"; echo "devpts=$(grep " /dev/pts " /proc/mounts | cut -d" " -f4)"';
    const found = assertRan(await lab.run(id, buildSandboxSpec(lab.input(id, probe, { idMap: { hostUid: HOST_ID, hostGid: HOST_ID, size: 1 } }))));
    assert.match(found.get('uid_map') ?? '', new RegExp(`^0 ${HOST_ID} 1$`));
    assert.doesNotMatch(found.get('devpts') ?? '', /gid=/);
  });

  it('runs without a user namespace', async () => {
    const id = lab.newId('no-userns');
    const probe = 'echo "uid_map=$(tr -s " " < /proc/self/uid_map)"; unshare -m true 2>/dev/null; echo "unshare=$?"';
    const found = assertRan(await lab.run(id, buildSandboxSpec(lab.input(id, probe, {
      idMap: null, namespaces: { user: false, pid: true, ipc: true, uts: true, mount: true, network: true, cgroup: true },
    }))));
    assert.match(found.get('uid_map') ?? '', /^0 0 4294967295$/);
    assert.notEqual(found.get('unshare'), '0');
  });

  it('runs the `hutch spec` templates, plain and rootless', async () => {
    for (const rootless of [false, true]) {
      const id = lab.newId(rootless ? 'template-rootless' : 'template');
      const spec = specTemplate({ rootless });
      spec.root = { path: lab.rootfs, readonly: true };
      spec.linux = { ...spec.linux, cgroupsPath: `${lab.cgroupParent}/${id}` };
      spec.process = { ...spec.process!, terminal: false, args: ['/bin/sh', '-c', 'echo "hostname=$(hostname)"'] };
      const found = assertRan(await lab.run(id, spec));
      assert.equal(found.get('hostname'), 'hutch');
    }
  });
});
