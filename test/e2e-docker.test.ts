// Docker, unchanged, with hutch as an OCI runtime (`dockerd` with `"runtimes": {"hutch": {"path": ...}}`,
// `docker run --runtime hutch`): run, -it, exec, logs, stop, pause, stats, top, update, restart and
// limits. The same cases run first with runc (proving the harness), then with hutch (skipped, with
// the reason printed, while hutch's OCI mode is not there). dockerd, the containerd it starts and
// every piece of their state are private to this file and stopped after; the image is the busybox
// test image, loaded from a `docker save` archive.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { processesMentioning, removeDirSafely, runProgram, waitUntil } from './e2e/host.js';
import { networkSnapshot, prepareFixture } from './e2e/fixture.js';
import { DOCKER_CLI, PrivateDocker, dockerMissing, dockerRuntimeName } from './e2e/docker.js';
import { writeDockerArchive } from './e2e/oci-image.js';
import { Terminal } from './e2e/terminal.js';
import { caseOptions, type RuntimeUnderTest } from './e2e/runtimes.js';

// dockerd makes /run/docker/plugins whatever its exec root; the 1.6 shims put their sockets under
// /run/containerd/s. Removed after the file when they were not there before.
const fixture = await prepareFixture('docker', ['/run/docker', '/run/containerd', '/var/lib/docker', '/etc/docker/key.json']);
const missing = dockerMissing();
if (missing) console.log(`# docker: SKIP: ${missing}`);
const docker = new PrivateDocker(path.join(fixture.dir, 'docker'), Object.fromEntries(fixture.runtimes.map((r) => [dockerRuntimeName(r.name), r.path])));
const IMAGE = fixture.image.name;
/** A main process that prints a counter every 0.1 s and says so on SIGTERM (a shell as pid 1 only dies of the signals it handles). */
const COUNTER = ['sh', '-c', 'trap "echo got TERM; exit 0" TERM; i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.1; done'];
const LIMITS = 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; '
  + 'cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max';
let started = false;

before(async () => {
  if (missing) return;
  await docker.start();
  started = true;
  const archive = writeDockerArchive(fixture.image);
  assert.match(await docker.ok(['load', '-i', archive]), new RegExp(`Loaded image: ${IMAGE}`));
});

after(async () => {
  const problems = await docker.destroy();
  problems.push(...removeDirSafely(fixture.dir).map((m) => `still mounted: ${m}`));
  fixture.guard.removeNew();
  assert.deepEqual(problems, [], 'dockerd left things behind');
  assert.deepEqual(networkSnapshot(), fixture.network, 'network links or netns changed');
  assert.equal(fs.existsSync(fixture.dir), false);
});

/** The ids the runtime itself still lists (docker's state root for its `moby` namespace). */
async function runtimeContainers(rt: RuntimeUnderTest): Promise<string[]> {
  if (!fs.existsSync(docker.runtimeRoot)) return [];
  const out = await runProgram(rt.path, ['--root', docker.runtimeRoot, 'list', '-q']);
  assert.equal(out.code, 0, `${rt.name} list: ${out.stderr}`);
  return out.stdout.split('\n').filter(Boolean);
}

/** How many `tick N` lines the container printed so far. */
async function ticks(box: string): Promise<number> {
  return (await docker.ok(['logs', box])).split('\n').filter((l) => l.startsWith('tick ')).length;
}

for (const rt of fixture.runtimes) {
  describe(`docker run --runtime ${dockerRuntimeName(rt.name)} (${rt.path})`, { skip: missing ?? rt.skip }, () => {
    const runtime = ['--runtime', dockerRuntimeName(rt.name), '--network', 'none'];
    const name = (what: string) => `${what}-${rt.name}`;
    const opts = (key: string) => caseOptions(rt, `docker-${key}`);

    test('run --rm: output, exit codes 0 and 3, 127 for a missing command; the container and the runtime\'s state go', opts('run'), async () => {
      assert.ok(started, 'dockerd is up');
      const cidFile = path.join(fixture.dir, name('cid'));
      assert.equal(await docker.ok(['run', '--rm', '--cidfile', cidFile, ...runtime, IMAGE, 'echo', 'hi']), 'hi\n');
      const failing = await docker.docker(['run', '--rm', ...runtime, IMAGE, 'sh', '-c', 'echo out; echo err >&2; exit 3']);
      assert.deepEqual([failing.code, failing.stdout, failing.stderr], [3, 'out\n', 'err\n']);
      const absent = await docker.docker(['run', '--rm', ...runtime, IMAGE, 'no-such-command']);
      assert.equal(absent.code, 127, absent.stderr);
      assert.match(absent.stderr, /no-such-command/);
      const cid = fs.readFileSync(cidFile, 'utf8').trim();
      assert.equal((await docker.docker(['inspect', cid])).code, 1, '--rm removed the container');
      assert.ok(!(await runtimeContainers(rt)).includes(cid), 'the runtime deleted the container');
      assert.equal(fs.existsSync(path.join(docker.runtimeRoot, cid)), false, 'the runtime\'s state dir is gone');
      assert.deepEqual(processesMentioning(cid), []);
    });

    test('run -it: a shell on a tty; resize is seen by stty size; Ctrl-C ends a foreground sleep; exit code', opts('tty'), async () => {
      const box = name('tty');
      const t = new Terminal(DOCKER_CLI, ['run', '--rm', '-it', '--name', box, ...runtime, IMAGE, 'sh'], docker.env);
      try {
        await t.waitFor(/\/ # /);
        let mark = t.type('tty; stty size\r');
        await t.waitFor(/\/dev\/pts\/\d+\s+24 80/, mark);
        t.term.resize(100, 40);
        await new Promise((r) => setTimeout(r, 300));
        mark = t.type('stty size\r');
        await t.waitFor(/40 100/, mark);
        t.type('sleep 100\r');
        await new Promise((r) => setTimeout(r, 500));
        const interrupted = Date.now();
        mark = t.type('\x03');
        await t.waitFor(/\^C\r\n\/ # /, mark, 10_000);
        assert.ok(Date.now() - interrupted < 5_000, 'Ctrl-C ended the sleep at once');
        // The shell's foreground job (sleep) got SIGINT from the tty: 128 + 2.
        mark = t.type('echo "status $?"\r');
        await t.waitFor(/status 130/, mark);
        t.type('exit 5\r');
        assert.equal(await t.exit, 5);
      } finally {
        await t.close();
        await docker.docker(['rm', '-f', box]);
      }
    });

    test('run -d, then exec and exec -it: output, exit code, env, workdir, a tty with its size', opts('exec'), async () => {
      const box = name('exec');
      await docker.ok(['run', '-d', '--name', box, ...runtime, IMAGE, ...COUNTER]);
      try {
        assert.equal(await docker.ok(['exec', box, 'sh', '-c', 'echo $((6 * 7))']), '42\n');
        assert.equal((await docker.docker(['exec', box, 'sh', '-c', 'exit 7'])).code, 7);
        assert.equal(await docker.ok(['exec', '-e', 'GREETING=hello', '-w', '/tmp', box, 'sh', '-c', 'echo "$GREETING $(pwd)"']), 'hello /tmp\n');
        // The exec'd process and the main one are in one pid namespace.
        assert.match(await docker.ok(['exec', box, 'cat', '/proc/1/cmdline']), /^sh\0-c\0trap/);
        const t = new Terminal(DOCKER_CLI, ['exec', '-it', box, 'sh'], docker.env);
        try {
          await t.waitFor(/\/ # /);
          let mark = t.type('tty; stty size\r');
          await t.waitFor(/\/dev\/pts\/\d+\s+24 80/, mark);
          t.term.resize(90, 30);
          await new Promise((r) => setTimeout(r, 300));
          mark = t.type('stty size\r');
          await t.waitFor(/30 90/, mark);
          t.type('exit 4\r');
          assert.equal(await t.exit, 4);
        } finally {
          await t.close();
        }
        assert.equal(await docker.ok(['inspect', '--format', '{{.State.Status}}', box]), 'running\n', 'the exec ended, the container did not');
      } finally {
        await docker.docker(['rm', '-f', box]);
      }
    });

    test('run -d, logs, rm -f: docker, the runtime and the host forget a running container', opts('logs'), async () => {
      const box = name('logs');
      const id = (await docker.ok(['run', '-d', '--name', box, ...runtime, IMAGE, 'sh', '-c', 'echo first; echo second >&2; exec sleep 1000'])).trim();
      assert.ok(await waitUntil(async () => (await docker.docker(['logs', box])).stderr === 'second\n', 10_000), 'stderr in the logs');
      assert.equal((await docker.ok(['logs', box])), 'first\n');
      assert.ok((await runtimeContainers(rt)).includes(id), 'the runtime lists the running container');
      await docker.ok(['rm', '-f', box]);
      assert.equal((await docker.docker(['inspect', box])).code, 1, 'docker forgot it');
      assert.ok(!(await runtimeContainers(rt)).includes(id), `${rt.name} still lists ${id}`);
      assert.ok(await waitUntil(() => processesMentioning(id).length === 0, 5_000), `processes of ${id} left: ${processesMentioning(id).join('; ')}`);
      assert.equal(fs.existsSync(docker.containerCgroup('memory', id)), false, 'its cgroup is gone');
    });

    test('stop: a TERM trap runs and prints, exit 0; one that ignores TERM is killed after -t 1 (137)', opts('stop'), async () => {
      const polite = name('stop-polite');
      const stubborn = name('stop-stubborn');
      await docker.ok(['run', '-d', '--name', polite, ...runtime, IMAGE, ...COUNTER]);
      await docker.ok(['run', '-d', '--name', stubborn, ...runtime, IMAGE, 'sleep', '1000']);
      try {
        assert.ok(await waitUntil(async () => (await ticks(polite)) > 0, 10_000), 'the counter runs');
        const t0 = Date.now();
        await docker.ok(['stop', '-t', '10', polite]);
        assert.ok(Date.now() - t0 < 5_000, 'the handled SIGTERM stopped it well before the timeout');
        assert.match(await docker.ok(['logs', polite]), /got TERM\n$/);
        await docker.ok(['stop', '-t', '1', stubborn]);
        const states = await docker.ok(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', polite, stubborn]);
        assert.deepEqual(states.trim().split('\n'), ['exited 0', 'exited 137']);
      } finally {
        await docker.docker(['rm', '-f', polite, stubborn]);
      }
    });

    test('pause/unpause: a paused container\'s counter does not advance; it goes on after unpause', opts('pause'), async () => {
      const box = name('pause');
      const id = (await docker.ok(['run', '-d', '--name', box, ...runtime, IMAGE, ...COUNTER])).trim();
      try {
        assert.ok(await waitUntil(async () => (await ticks(box)) >= 3, 10_000), 'the counter runs');
        await docker.ok(['pause', box]);
        assert.equal(await docker.ok(['inspect', '--format', '{{.State.Status}}', box]), 'paused\n');
        assert.equal(fs.readFileSync(path.join(docker.containerCgroup('freezer', id), 'freezer.state'), 'utf8').trim(), 'FROZEN');
        const frozen = await ticks(box);
        await new Promise((r) => setTimeout(r, 1_000));
        assert.equal(await ticks(box), frozen, 'no tick while paused');
        await docker.ok(['unpause', box]);
        assert.ok(await waitUntil(async () => (await ticks(box)) >= frozen + 3, 10_000), 'the counter goes on after unpause');
        assert.equal(await docker.ok(['inspect', '--format', '{{.State.Status}}', box]), 'running\n');
      } finally {
        await docker.docker(['rm', '-f', box]);
      }
    });

    test('stats --no-stream and top: the container\'s pids, memory and processes', opts('stats'), async () => {
      const box = name('stats');
      await docker.ok(['run', '-d', '--name', box, '--memory', '96m', ...runtime, IMAGE, 'sh', '-c', 'sleep 1000 & sleep 1001 & wait']);
      try {
        assert.ok(await waitUntil(async () => /sleep 1001/.test(await docker.ok(['top', box])), 10_000), 'top shows the sleeps');
        const top = await docker.ok(['top', box]);
        assert.match(top, /^UID\s+PID\s+PPID/);
        assert.match(top, /sleep 1000/);
        const stats = (await docker.ok(['stats', '--no-stream', '--format', '{{.Name}} {{.PIDs}} {{.MemUsage}}', box])).trim();
        const m = /^(\S+) (\d+) ([\d.]+)([KMG]i?B) \/ ([\d.]+)MiB$/.exec(stats);
        assert.ok(m, `stats: ${stats}`);
        assert.deepEqual([m[1], Number(m[2]), Number(m[5])], [box, 3, 96], stats);
        assert.ok(Number(m[3]) > 0, `memory in use: ${stats}`);
      } finally {
        await docker.docker(['rm', '-f', box]);
      }
    });

    test('update --memory: the new limit is in the running container\'s cgroup', opts('update'), async () => {
      const box = name('update');
      await docker.ok(['run', '-d', '--name', box, '--memory', '128m', ...runtime, IMAGE, 'sleep', '1000']);
      try {
        const limit = async () => (await docker.ok(['exec', box, 'cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes'])).trim();
        assert.equal(await limit(), String(128 << 20));
        await docker.ok(['update', '--memory', '64m', '--memory-swap', '64m', box]);
        assert.equal(await limit(), String(64 << 20));
        assert.equal(await docker.ok(['inspect', '--format', '{{.HostConfig.Memory}}', box]), `${64 << 20}\n`);
      } finally {
        await docker.docker(['rm', '-f', box]);
      }
    });

    test('restart: a new main process in the same container (its files kept)', opts('restart'), async () => {
      const box = name('restart');
      await docker.ok(['run', '-d', '--name', box, ...runtime, IMAGE, ...COUNTER]);
      try {
        await docker.ok(['exec', box, 'sh', '-c', 'echo kept > /tmp/mark']);
        const pid = async () => Number((await docker.ok(['inspect', '--format', '{{.State.Pid}}', box])).trim());
        const before = await pid();
        await docker.ok(['restart', '-t', '5', box]);
        assert.equal(await docker.ok(['inspect', '--format', '{{.State.Status}}', box]), 'running\n');
        const after = await pid();
        assert.ok(after > 0 && after !== before, `a new main process (${before} → ${after})`);
        assert.match(await docker.ok(['logs', box]), /got TERM\n(.|\n)*tick 1\n/, 'the old process was stopped with TERM, the new one counts from 1');
        assert.equal(await docker.ok(['exec', box, 'cat', '/tmp/mark']), 'kept\n');
      } finally {
        await docker.docker(['rm', '-f', box]);
      }
    });

    test('--memory and --pids-limit: in the container\'s cgroup and enforced (OOM kill, a fork bomb stopped)', opts('limits'), async () => {
      const limits = await docker.ok(['run', '--rm', '--memory', '64m', '--pids-limit', '50', ...runtime, IMAGE, 'sh', '-c', LIMITS]);
      assert.deepEqual(limits.trim().split('\n'), ['67108864', '50']);
      // 100 MiB held by one process (tail keeps a line that never ends) against a 64 MiB limit.
      const box = name('oom');
      const oom = await docker.docker(['run', '--name', box, '--memory', '64m', '--memory-swap', '64m', ...runtime, IMAGE,
        'sh', '-c', 'head -c 100m /dev/zero | tail -n 1 >/dev/null']);
      try {
        assert.equal(oom.code, 137, `OOM kill expected; got ${oom.code}: ${oom.stderr.trim()}`);
        assert.equal(await docker.ok(['inspect', '--format', '{{.State.OOMKilled}}', box]), 'true\n');
      } finally {
        await docker.docker(['rm', '-f', box]);
      }
      // A bounded fork bomb (two forks a level, six levels: 127 shells and 64 sleeps) against 20 pids: forks fail.
      const forks = await docker.docker(['run', '--rm', '--pids-limit', '20', ...runtime, IMAGE, 'sh', '-c',
        'bomb() { if [ "$1" -gt 0 ]; then bomb $(($1 - 1)) & bomb $(($1 - 1)) & wait; else sleep 1; fi; }; bomb 6']);
      assert.ok(/can't fork/.test(forks.stderr), `a failed fork expected; got ${forks.code}: ${forks.stderr.trim().slice(0, 300)}`);
    });
  });
}
