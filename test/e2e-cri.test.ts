// containerd's CRI plugin driven the way the kubelet drives it (test/e2e/cri.ts), with runc and hutch
// as runtime handlers (a RuntimeClass's handler): host-network pods whose containers say privileged,
// seccompProfile Unconfined or RuntimeDefault. containerd says "privileged" and "unconfined" by
// leaving linux.seccomp, maskedPaths and readonlyPaths out of the spec; the runtime must keep that
// meaning. runc's cases run first (they prove the harness), then hutch's.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { removeDirSafely } from './e2e/host.js';
import { networkSnapshot, prepareFixture } from './e2e/fixture.js';
import { buildTestImage } from './e2e/oci-image.js';
import { CriHarness, handlerContainers, type ContainerOptions, type PodOptions } from './e2e/cri.js';
import { testPlatforms } from './helpers.js';

// The 1.6 shims put their sockets under /run/containerd/s whatever containerd's state dir is.
const fixture = await prepareFixture('cri', ['/run/containerd']);
// A pod sandbox ("pause") image whose command keeps running, as the pause container's does.
const pauseImage = buildTestImage(path.join(fixture.dir, 'pause-image'), { name: 'localhost/hutch-test/pause:test', cmd: ['sleep', '999999999'] });
// hutch's annotations go from the pod to its containers' specs, as an operator would configure it.
// The hutch-gvisor RuntimeClass handler: hutch's launcher for the gvisor platform (scripts/install-launchers.mjs).
const hutchRuntime = fixture.runtimes.find((r) => r.name === 'hutch');
const gvisorLauncher = path.join(path.dirname(hutchRuntime?.path ?? '/usr/local/bin/hutch'), 'hutch-gvisor');
const gvisorSkip = hutchRuntime?.skip ?? testPlatforms().find((p) => p.name === 'gvisor')?.skip ?? (fs.existsSync(gvisorLauncher) ? undefined : `${gvisorLauncher} is not installed (scripts/setup.sh)`);
const harness = new CriHarness(path.join(fixture.dir, 'containerd'), {
  ...Object.fromEntries(fixture.runtimes.map((r) => [r.name, r.path])), ...(gvisorSkip ? {} : { 'hutch-gvisor': gvisorLauncher }),
}, [pauseImage, fixture.image], ['dev.hutch.*']);
const CASE = { timeout: 180_000 };

/** What a container sees of its confinement, as key=value lines. */
const PROBE = [
  'echo "seccomp=$(grep "^Seccomp:" /proc/self/status | cut -f2)"',
  'mkdir -p /tmp/bind-src /tmp/bind-dst',
  'if mount --bind /tmp/bind-src /tmp/bind-dst 2>/dev/null; then echo bind=ok; umount /tmp/bind-dst; else echo bind=refused; fi',
  // From the mount table (busybox's `test -w` says yes to root on a read-only mount); nothing is
  // written to the host's sysctls.
  'case "$(awk \'$5 == "/proc/sys" { print $6 }\' /proc/self/mountinfo)" in ro*) echo procsys=readonly ;; *) echo procsys=writable ;; esac',
  'echo "keys_masked=$(grep -c " /proc/keys " /proc/self/mountinfo)"',
].join('\n');

before(async () => {
  await harness.start();
});

after(async () => {
  const problems = await harness.destroy();
  problems.push(...removeDirSafely(fixture.dir).map((m) => `still mounted: ${m}`));
  fixture.guard.removeNew();
  assert.deepEqual(problems, [], 'containerd or its pods left things behind');
  assert.deepEqual(networkSnapshot(), fixture.network, 'network links or netns changed');
  assert.equal(fs.existsSync(fixture.dir), false);
});

test('the CRI answers Version', async () => {
  const v = await harness.cri.version();
  assert.equal(v.runtime_name, 'containerd');
  assert.equal(v.runtime_api_version, 'v1');
});

for (const rt of fixture.runtimes) {
  describe(`CRI pods with the ${rt.name} handler`, { skip: rt.skip }, () => {
    /** Runs the probe in a container of a fresh pod; removes the pod (and checks the runtime's state went) after. */
    const probe = async (name: string, pod: PodOptions, container: ContainerOptions): Promise<Map<string, string>> => {
      const p = await harness.runPod(`${name}-${rt.name}`, rt.name, pod);
      try {
        const id = await harness.runContainer(p, name, fixture.image.name, ['sleep', '999999999'], container);
        const r = await harness.cri.execSync(id, ['sh', '-c', PROBE]);
        assert.equal(r.exitCode, 0, r.stderr);
        return new Map(r.stdout.trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
      } finally {
        await harness.removePod(p);
        assert.deepEqual(handlerContainers(harness, rt.name), [], `${rt.name} kept container state after the pod went`);
      }
    };

    test('privileged: true — no seccomp filter, mount --bind works, /proc/sys writable, /proc/keys not masked', CASE, async () => {
      const found = await probe('privileged', { privileged: true }, { privileged: true });
      assert.deepEqual(Object.fromEntries(found), { seccomp: '0', bind: 'ok', procsys: 'writable', keys_masked: '0' });
    });

    test('seccompProfile: Unconfined — no seccomp filter; the kubelet\'s masked and read-only paths stay', CASE, async () => {
      const found = await probe('unconfined', {}, { seccomp: 'Unconfined' });
      assert.deepEqual(Object.fromEntries(found), { seccomp: '0', bind: 'refused', procsys: 'readonly', keys_masked: '1' });
    });

    test('seccompProfile: RuntimeDefault — containerd\'s filter, /proc/keys masked, /proc/sys read-only', CASE, async () => {
      const found = await probe('default', { seccomp: 'RuntimeDefault' }, { seccomp: 'RuntimeDefault' });
      assert.deepEqual(Object.fromEntries(found), { seccomp: '2', bind: 'refused', procsys: 'readonly', keys_masked: '1' });
    });

    test('a pod annotated dev.hutch.profile: default asks hutch for its filter where the spec has none (runc ignores it)', CASE, async () => {
      const found = await probe('asked', { annotations: { 'dev.hutch.profile': 'default' } }, { seccomp: 'Unconfined' });
      assert.equal(found.get('seccomp'), rt.name === 'hutch' ? '2' : '0');
      assert.equal(found.get('keys_masked'), '1');
    });
  });
}

describe('CRI pods with the hutch-gvisor handler', { skip: gvisorSkip ?? false }, () => {
  test('a pod\'s containers run in gVisor; ExecSync, ContainerStatus; the pod goes whole', CASE, async () => {
    const p = await harness.runPod('gvisor-pod', 'hutch-gvisor');
    try {
      const a = await harness.runContainer(p, 'a', fixture.image.name, ['sleep', '999999999']);
      const b = await harness.runContainer(p, 'b', fixture.image.name, ['sleep', '999999999']);
      for (const id of [a, b]) {
        const r = await harness.cri.execSync(id, ['uname', '-r']);
        assert.equal(r.exitCode, 0, r.stderr);
        assert.equal(r.stdout.trim(), '4.4.0', 'the container runs on gVisor\'s sentry');
      }
      const status = await harness.cri.containerStatus(a);
      assert.equal(status.state, 'CONTAINER_RUNNING');
      // A gVisor sandbox per container (containerd's runc shim cannot follow runsc's one sandbox per
      // pod: docs/gvisor.md): the pod's sandbox container and its two containers.
      const sandboxes = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
        try {
          return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').startsWith('runsc-sandbox') && fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(harness.containerd.runtimeRoot);
        } catch {
          return false; // gone meanwhile
        }
      });
      assert.equal(sandboxes.length, 3, `a gVisor sandbox per container (found ${sandboxes.length})`);
    } finally {
      await harness.removePod(p);
      assert.deepEqual(handlerContainers(harness, 'hutch-gvisor'), [], 'hutch-gvisor kept container state after the pod went');
    }
  });
});
