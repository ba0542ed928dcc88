// containerd, unchanged, running tasks through its runc v2 shim with hutch as the shim's runtime
// binary (`ctr run --runc-binary PATH`): run, exec, pause/resume, kill, delete, a tty. The same
// cases run first with runc (proving the harness), then with hutch (skipped, with the reason
// printed, while hutch's OCI mode is not there). containerd is private to this file and stopped after.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { processesMentioning, removeDirSafely, waitUntil } from './e2e/host.js';
import { networkSnapshot, prepareFixture } from './e2e/fixture.js';
import { CTR_NAMESPACE, PrivateContainerd } from './e2e/containerd.js';
import { pushArchive, startRegistry } from './e2e/registry.js';
import { Terminal } from './e2e/terminal.js';

// The 1.6 shims put their sockets under /run/containerd/s whatever containerd's state dir is.
const fixture = await prepareFixture('containerd', ['/run/containerd']);
const containerd = new PrivateContainerd(path.join(fixture.dir, 'containerd'));
const CASE = { timeout: 120_000 };
/** A main process that exits 0 on SIGTERM (a shell as pid 1 only dies of the signals it handles). */
const SERVICE = ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 0.1; done'];
let registryImage = '';

before(async () => {
  await containerd.start();
  await containerd.ok(['images', 'import', fixture.image.archivePath]);
  const registry = await startRegistry(fixture.dir);
  try {
    registryImage = await pushArchive(registry, fixture.image.archivePath, 'hutch-test/busybox:test');
    await containerd.ok(['images', 'pull', '--plain-http', registryImage]);
  } finally {
    await registry.stop();
  }
});

after(async () => {
  const problems = await containerd.destroy();
  problems.push(...removeDirSafely(fixture.dir).map((m) => `still mounted: ${m}`));
  fixture.guard.removeNew();
  assert.deepEqual(problems, [], 'containerd left things behind');
  assert.deepEqual(networkSnapshot(), fixture.network, 'network links or netns changed');
  assert.equal(fs.existsSync(fixture.dir), false);
});

for (const rt of fixture.runtimes) {
  describe(`ctr run --runc-binary ${rt.path}`, { skip: rt.skip }, () => {
    const id = (what: string) => `${what}-${rt.name}`;
    /** The shim keeps the runtime's state for namespace N under RUNC_ROOT/N/ID. */
    const runtimeState = (taskId: string) => path.join(containerd.runtimeRoot, CTR_NAMESPACE, taskId);

    test('run --rm IMAGE echo hi (imported archive and loopback registry); exit codes pass through', CASE, async () => {
      const echo = id('echo');
      assert.equal(await containerd.ok(['run', '--rm', ...containerd.runFlags(rt.path, echo), registryImage, echo, 'echo', 'hi']), 'hi\n');
      const fromArchive = id('archive');
      assert.equal(await containerd.ok(['run', '--rm', ...containerd.runFlags(rt.path, fromArchive), fixture.image.name, fromArchive, 'sh', '-c', 'echo "$PATH"']),
        '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n');
      const failing = id('exit3');
      assert.equal((await containerd.ctr(['run', '--rm', ...containerd.runFlags(rt.path, failing), registryImage, failing, 'sh', '-c', 'exit 3'])).code, 3);
      for (const gone of [echo, fromArchive, failing]) assert.equal(fs.existsSync(runtimeState(gone)), false, `runtime state of ${gone} left`);
      assert.equal((await containerd.ok(['container', 'ls', '-q'])).trim(), '');
    });

    test('run -d, task exec, pause/resume, kill (SIGTERM), delete: the task goes through its states', CASE, async () => {
      const box = id('service');
      await containerd.ok(['run', '-d', ...containerd.runFlags(rt.path, box), registryImage, box, ...SERVICE]);
      try {
        assert.equal(await containerd.taskStatus(box), 'RUNNING');
        assert.equal(await containerd.ok(['task', 'exec', '--exec-id', 'e1', box, 'sh', '-c', 'echo $((6 * 7)); cat /proc/1/cmdline | tr "\\0" " "; echo']), '42\nsh -c trap "exit 0" TERM; while :; do sleep 0.1; done \n');
        assert.equal((await containerd.ctr(['task', 'exec', '--exec-id', 'e2', box, 'sh', '-c', 'exit 7'])).code, 7);
        assert.match(await containerd.ok(['task', 'ps', box]), /^PID\s+INFO\n\d+/);
        await containerd.ok(['task', 'pause', box]);
        assert.equal(await containerd.taskStatus(box), 'PAUSED');
        await containerd.ok(['task', 'resume', box]);
        assert.equal(await containerd.taskStatus(box), 'RUNNING');
        await containerd.ok(['task', 'kill', box]);
        assert.ok(await waitUntil(async () => (await containerd.taskStatus(box)) === 'STOPPED', 10_000), 'SIGTERM stopped the task');
        const deleted = await containerd.ok(['task', 'delete', box]);
        assert.doesNotMatch(deleted, /exit code [1-9]/);
      } finally {
        await containerd.ctr(['task', 'delete', '-f', box]);
        await containerd.ctr(['container', 'delete', box]);
      }
      assert.equal(await containerd.taskStatus(box), '');
      assert.equal(fs.existsSync(runtimeState(box)), false, 'the runtime deleted its state');
      // Only this containerd's shim: another containerd on the host may run a task of the same name.
      assert.ok(await waitUntil(() => processesMentioning(`-id ${box} `).filter((l) => l.includes(containerd.socket)).length === 0, 5_000), 'the shim exited');
    });

    test('run -t: the task gets a tty through the console socket', CASE, async () => {
      const box = id('tty');
      const t = new Terminal('/usr/bin/ctr', ['--address', containerd.socket, '-n', CTR_NAMESPACE, 'run', '--rm', '-t',
        ...containerd.runFlags(rt.path, box), registryImage, box, 'sh', '-c',
        // ctr sets the window size just after the task starts: wait for it rather than race it.
        'tty; i=0; while [ "$(stty size 2>/dev/null)" != "24 80" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; stty size; exit 4'], process.env);
      try {
        await t.waitFor(/\/dev\/pts\/\d+\s+24 80/);
        assert.equal(await t.exit, 4);
      } finally {
        await t.close();
        await containerd.ctr(['task', 'delete', '-f', box]);
        await containerd.ctr(['container', 'delete', box]);
      }
    });
  });
}
