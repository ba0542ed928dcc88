// podman, unchanged, with hutch as its OCI runtime (`podman --runtime PATH`): the same cases run
// first with runc, which proves the harness, then with hutch (skipped, with the reason printed,
// while hutch's OCI mode is not there). The image comes from a registry on loopback and from an
// OCI archive, both built here from Debian's busybox-static; podman's state is private to this file.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { expectSuccess, processesMentioning, removeDirSafely, runProgram, waitUntil } from './e2e/host.js';
import { networkSnapshot, prepareFixture } from './e2e/fixture.js';
import { PrivatePodman } from './e2e/podman.js';
import { pushArchive, startRegistry } from './e2e/registry.js';
import { Terminal } from './e2e/terminal.js';
import { caseOptions, type RuntimeUnderTest } from './e2e/runtimes.js';

// podman writes a blob-info cache under /var/lib/containers whatever its --root; netavark and the
// CNI check may make the others. Removed after the file when they were not there before.
const fixture = await prepareFixture('podman', ['/var/lib/containers', '/run/containers', '/etc/cni/net.d/cni.lock']);
const podman = new PrivatePodman(path.join(fixture.dir, 'podman'), Object.fromEntries(fixture.runtimes.map((r) => [r.name, r.path])));
const CASE = { timeout: 120_000 };
/** A main process that exits 0 on SIGTERM (a shell as pid 1 only dies of the signals it handles). */
const SERVICE = ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 0.1; done'];
let registryImage = '';

before(async () => {
  const registry = await startRegistry(fixture.dir);
  try {
    const ref = await pushArchive(registry, fixture.image.archivePath, 'hutch-test/busybox:test');
    await podman.ok(['pull', '-q', '--tls-verify=false', ref]);
    registryImage = ref;
  } finally {
    await registry.stop();
  }
  await podman.ok(['load', '-q', '-i', fixture.image.archivePath]);
});

after(async () => {
  const problems = await podman.destroy(fixture.runtimes.filter((r) => !r.skip).map((r) => r.path));
  problems.push(...removeDirSafely(fixture.dir).map((m) => `still mounted: ${m}`));
  fixture.guard.removeNew();
  assert.deepEqual(problems, [], 'podman left things behind');
  assert.deepEqual(networkSnapshot(), fixture.network, 'network links or netns changed');
  assert.equal(fs.existsSync(fixture.dir), false);
});

/** The runtime's own list of containers (ids), to check that podman had it delete what it made. */
async function runtimeContainers(rt: RuntimeUnderTest): Promise<string[]> {
  return expectSuccess(`${rt.name} list`, await runProgram(rt.path, ['list', '-q'])).split('\n').filter(Boolean);
}

for (const rt of fixture.runtimes) {
  describe(`podman --runtime ${rt.path}`, { skip: rt.skip }, () => {
    const opts = { runtime: rt.path };
    const name = (what: string) => `${what}-${rt.name}`;

    test('run --rm IMAGE echo hi (from the loopback registry and from the OCI archive); exit codes pass through', CASE, async () => {
      const cidFile = path.join(fixture.dir, name('cid-echo'));
      assert.equal(await podman.ok(['run', '--rm', '--cidfile', cidFile, ...podman.isolation, registryImage, 'echo', 'hi'], opts), 'hi\n');
      assert.equal(await podman.ok(['run', '--rm', ...podman.isolation, fixture.image.name, 'sh', '-c', 'echo "$PATH"'], opts),
        '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n');
      const failing = await podman.run(['run', '--rm', ...podman.isolation, registryImage, 'sh', '-c', 'echo out; echo err >&2; exit 3'], opts);
      assert.deepEqual([failing.code, failing.stdout, failing.stderr.includes('err')], [3, 'out\n', true]);
      const cid = fs.readFileSync(cidFile, 'utf8').trim();
      assert.equal((await podman.run(['container', 'exists', cid], opts)).code, 1, '--rm removed the container');
      assert.ok(!(await runtimeContainers(rt)).includes(cid), 'the runtime deleted the container');
      assert.deepEqual(processesMentioning(cid), []);
    });

    test('run -it: a shell on a tty (tty, window size, resize, exit code)', CASE, async () => {
      const box = name('tty');
      const t = new Terminal('podman', podman.argv(['run', '--rm', '-it', '--name', box, ...podman.isolation, registryImage, 'sh'], rt.path), podman.env);
      try {
        // busybox's line editor asks the terminal for the cursor position (ESC [6n) after its prompt.
        await t.waitFor(/\/ # /);
        let mark = t.type('tty; stty size\r');
        await t.waitFor(/\/dev\/pts\/\d+\s+24 80/, mark);
        t.term.resize(100, 40);
        await new Promise((r) => setTimeout(r, 300));
        mark = t.type('stty size\r');
        await t.waitFor(/40 100/, mark);
        t.type('exit 5\r');
        assert.equal(await t.exit, 5);
      } finally {
        await t.close();
        await podman.run(['rm', '-f', '-t', '0', '--ignore', box], opts);
      }
    });

    test('run -d, then exec: output, exit code, env, workdir, a tty', CASE, async () => {
      const box = name('exec');
      await podman.ok(['run', '-d', '--name', box, ...podman.isolation, registryImage, ...SERVICE], opts);
      try {
        assert.equal(await podman.ok(['exec', box, 'sh', '-c', 'echo $((6 * 7))'], opts), '42\n');
        assert.equal((await podman.run(['exec', box, 'sh', '-c', 'exit 7'], opts)).code, 7);
        assert.equal(await podman.ok(['exec', '-e', 'GREETING=hello', '-w', '/tmp', box, 'sh', '-c', 'echo "$GREETING $(pwd)"'], opts), 'hello /tmp\n');
        assert.match(await podman.ok(['exec', '-t', box, 'tty'], opts), /^\/dev\/pts\/\d+\r?\n$/);
        // The exec'd process and the main one are in one pid namespace.
        assert.match(await podman.ok(['exec', box, 'cat', '/proc/1/cmdline'], opts), /^sh\0-c\0trap/);
      } finally {
        await podman.run(['rm', '-f', '-t', '0', box], opts);
      }
    });

    test('stop: SIGTERM to a main process that handles it; SIGKILL after -t to one that does not', CASE, async () => {
      const polite = name('stop-polite');
      const stubborn = name('stop-stubborn');
      await podman.ok(['run', '-d', '--name', polite, ...podman.isolation, registryImage, ...SERVICE], opts);
      await podman.ok(['run', '-d', '--name', stubborn, ...podman.isolation, registryImage, 'sleep', '1000'], opts);
      try {
        const started = Date.now();
        await podman.ok(['stop', '-t', '10', polite], opts);
        assert.ok(Date.now() - started < 5_000, 'the handled SIGTERM stopped it well before the timeout');
        await podman.ok(['stop', '-t', '1', stubborn], opts);
        const states = await podman.ok(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', polite, stubborn], opts);
        assert.deepEqual(states.trim().split('\n'), ['exited 0', 'exited 137']);
      } finally {
        await podman.run(['rm', '-f', '-t', '0', polite, stubborn], opts);
      }
    });

    test('rm a stopped container and rm -f a running one: podman, the runtime and the host forget them', CASE, async () => {
      const stopped = name('rm-stopped');
      const running = name('rm-running');
      await podman.ok(['run', '--name', stopped, ...podman.isolation, registryImage, 'true'], opts);
      await podman.ok(['run', '-d', '--name', running, ...podman.isolation, registryImage, ...SERVICE], opts);
      const ids = (await podman.ok(['inspect', '--format', '{{.Id}}', stopped, running], opts)).trim().split('\n');
      await podman.ok(['rm', stopped], opts);
      await podman.ok(['rm', '-f', '-t', '0', running], opts);
      for (const gone of [stopped, running]) assert.equal((await podman.run(['container', 'exists', gone], opts)).code, 1, `podman still has ${gone}`);
      const known = await runtimeContainers(rt);
      for (const id of ids) {
        assert.ok(!known.includes(id), `${rt.name} still lists ${id}`);
        assert.ok(await waitUntil(() => processesMentioning(id).length === 0, 5_000), `processes of ${id} left: ${processesMentioning(id).join('; ')}`);
      }
    });

    test('--memory and --pids-limit: the limits are in the container\'s cgroup and enforced', CASE, async () => {
      const readLimits = 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; '
        + 'cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max';
      const limits = await podman.ok(['run', '--rm', '--memory', '64m', '--pids-limit', '50', ...podman.isolation, registryImage, 'sh', '-c', readLimits], opts);
      assert.deepEqual(limits.trim().split('\n'), ['67108864', '50']);
      // 100 MiB held by one process (tail keeps a line that never ends) against a 64 MiB limit: the OOM killer.
      const oom = await podman.run(['run', '--rm', '--memory', '64m', '--memory-swap', '64m', ...podman.isolation, registryImage,
        'sh', '-c', 'head -c 100m /dev/zero | tail -n 1 >/dev/null'], opts);
      assert.equal(oom.code, 137, `OOM kill expected; got ${oom.code}: ${oom.stderr.trim()}`);
      // 40 background sleeps against a limit of 20 pids: a fork fails, and busybox's sh gives up on it.
      const forks = await podman.run(['run', '--rm', '--pids-limit', '20', ...podman.isolation, registryImage, 'sh', '-c',
        'i=0; while [ $i -lt 40 ]; do sleep 2 & i=$((i+1)); done; echo all forked'], opts);
      assert.ok(forks.code !== 0 && /can't fork/.test(forks.stderr) && !forks.stdout.includes('all forked'), `a failed fork expected; got ${forks.code}: ${forks.stderr.trim()}`);
    });

    test('pod: two containers share localhost (nc -l in one, nc 127.0.0.1 in the other); pod rm removes all', caseOptions(rt, 'podman-pod'), async () => {
      const pod = name('pod');
      const podId = (await podman.ok(['pod', 'create', '--name', pod, ...podman.isolation], opts)).trim();
      let podProcs: number[] = [];
      try {
        await podman.ok(['run', '-d', '--pod', pod, '--name', name('pod-server'), registryImage, 'sh', '-c', 'echo from-server | nc -l -p 8080'], opts);
        const client = await podman.ok(['run', '--rm', '--pod', pod, registryImage, 'sh', '-c',
          'i=0; while [ $i -lt 100 ]; do nc 127.0.0.1 8080 </dev/null && exit 0; i=$((i+1)); sleep 0.1; done; exit 1'], opts);
        assert.equal(client.trim(), 'from-server');
        const infraNet = await podman.ok(['pod', 'inspect', '--format', '{{.InfraContainerID}}', pod], opts);
        assert.ok(infraNet.trim().length > 0, 'the pod has an infra container holding its namespaces');
      } finally {
        await podman.ok(['pod', 'rm', '-f', '-t', '0', pod], opts);
        // podman 4.3 with cgroupfs on a hybrid host leaves the pod's (empty) dirs in the name=systemd
        // and unified hierarchies whatever the runtime: podman's leak, not the runtime's, so removed here.
        podProcs = podman.podCgroupProcesses(podId);
        podman.removePodCgroups(podId);
      }
      assert.deepEqual(podProcs, [], 'no process left in the pod\'s cgroups');
      assert.equal((await podman.run(['pod', 'exists', pod], opts)).code, 1, 'pod rm removed the pod');
      assert.equal((await podman.run(['container', 'exists', name('pod-server')], opts)).code, 1, 'pod rm removed its containers');
    });
  });
}
