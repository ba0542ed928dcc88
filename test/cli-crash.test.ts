// Crash safety: hutch SIGKILLed at each point of create, start, run, exec and delete; the next
// `ls` tells the truth and `rm -f` removes everything. Platform-independent (testPlatforms), but for
// the two cases that kill runc itself.
import test, { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { HUTCH, cleanRoot, hutch, hutchCgroups, hutchOk, leftovers, platformRoot, rootEnv, testPlatforms } from './helpers.js';

for (const { name: platform, skip } of testPlatforms()) describe(`on ${platform}`, { ...(skip ? { skip } : {}) }, () => {
  const runcOnly = platform === 'container' ? {} : { skip: 'it kills runc itself: the container platform\'s executor' };
  let root: string;
  before(() => { root = platformRoot('crash', platform); });
  after(async () => {
    await cleanRoot(root);
    assert.deepEqual(leftovers(root), []);
  });

  type Listed = { id: string; status: string; note?: string };
  const list = async () => JSON.parse(await hutchOk(root, ['ls', '--json'])) as Listed[];

  /** Asserts that nothing of sandbox `id` is left: dir, mounts, cgroups, runc state. */
  function assertGone(id: string): void {
    assert.ok(!fs.existsSync(path.join(root, 'sandboxes', id)), 'sandbox dir removed');
    assert.ok(!fs.existsSync(path.join(root, 'runc', id)), 'runc state removed');
    assert.ok(!fs.existsSync(path.join(root, 'runsc', `${id}_sandbox:${id}.state`)), 'runsc state removed');
    assert.ok(!fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(id), 'no mount left');
    assert.deepEqual(hutchCgroups().filter((c) => c.includes(id)), [], 'no cgroup left');
  }

  for (const point of ['create:allocated', 'create:prepared', 'create:executor']) {
    test(`killed at ${point}: ls shows it stopped (interrupted create), rm -f removes it all`, async () => {
      const r = await hutch(root, ['create', '--name', `crash-${point.replace(':', '-')}`, 'busybox'], { env: { HUTCH_CRASH_AT: point } });
      assert.equal(r.signal, 'SIGKILL');
      const [s] = await list();
      assert.ok(s, 'the half-made sandbox is listed');
      assert.equal(s.status, 'stopped');
      assert.match(s.note ?? '', /interrupted create/);
      // The name is still taken until the sandbox is removed.
      assert.match((await hutch(root, ['create', '--name', `crash-${point.replace(':', '-')}`, 'busybox'])).stderr, /already in use/);
      await hutchOk(root, ['rm', '-f', s.id]);
      assertGone(s.id);
      assert.deepEqual(await list(), []);
    });
  }

  for (const point of ['start:executor', 'start:started']) {
    test(`killed at ${point} (${point === 'start:executor' ? 'waiting for the agent' : 'after it'}): ls says the start was interrupted, exec says how to finish, start finishes it`, async () => {
      const id = (await hutchOk(root, ['create', 'busybox', '--', 'sh', '-c', 'echo main ran > /tmp/main; exec sleep 1000'])).trim();
      const r = await hutch(root, ['start', id], { env: { HUTCH_CRASH_AT: point } });
      assert.equal(r.signal, 'SIGKILL');
      const [s] = await list();
      assert.equal(s!.status, 'ready');
      assert.match(s!.note ?? '', new RegExp(`interrupted start: .*hutch start ${id} finishes it`));
      const refused = await hutch(root, ['exec', id, '--', 'true']);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, new RegExp(`its start was interrupted; hutch start ${id} finishes it`));
      // start does not start the init twice: it waits for the agent and starts the main command.
      await hutchOk(root, ['start', id]);
      const [after] = await list();
      assert.equal(after!.status, 'running');
      assert.equal(after!.note, undefined);
      let main = '';
      for (let i = 0; i < 50 && main === ''; i++) {
        main = await hutchOk(root, ['exec', id, '--', 'sh', '-c', 'cat /tmp/main 2>/dev/null || true']);
        if (main === '') await new Promise((res) => setTimeout(res, 50));
      }
      assert.equal(main, 'main ran\n');
      await hutchOk(root, ['rm', '-f', id]);
      assertGone(id);
    });
  }

  for (const point of ['delete:deleting', 'delete:destroyed']) {
    const before = point === 'delete:deleting';
    test(`killed at ${point}: ls shows it ${before ? 'still running (its init was not killed yet)' : 'stopped'} (interrupted delete), rm -f finishes`, async () => {
      const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
      const r = await hutch(root, ['rm', '-f', id], { env: { HUTCH_CRASH_AT: point } });
      assert.equal(r.signal, 'SIGKILL');
      const s = (await list()).find((x) => x.id === id);
      assert.equal(s!.status, before ? 'running' : 'stopped');
      assert.match(s!.note ?? '', before ? /interrupted delete: it still runs; rm -f finishes it/ : /interrupted delete/);
      if (before) assert.equal(await hutchOk(root, ['exec', id, '--', 'echo', 'whole']), 'whole\n');
      await hutchOk(root, ['rm', '-f', id]);
      assertGone(id);
    });
  }

  test('a foreground run whose hutch is killed: the sandbox keeps running and shows so; rm -f removes it', async () => {
    // stdio ignored: the orphaned runc keeps whatever it inherited open.
    const child = spawn(process.execPath, [HUTCH, '--root', root, 'run', 'busybox', '--', 'sleep', '1000'], { stdio: 'ignore', env: { ...rootEnv(root), HUTCH_CRASH_AT: 'run:started' } });
    const signal = await new Promise((res) => child.on('exit', (_code, sig) => res(sig)));
    assert.equal(signal, 'SIGKILL');
    // runc, orphaned, may take a moment to finish creating the container.
    let s: Listed | undefined;
    for (let i = 0; i < 50; i++) {
      s = (await list())[0];
      if (s?.status === 'running') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(s?.status, 'running');
    await hutchOk(root, ['rm', '-f', s!.id]);
    assertGone(s!.id);
  });

  test('hutch exec killed mid-stream: the sandbox stays running and usable', async () => {
    const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
    const child = spawn(process.execPath, [HUTCH, '--root', root, 'exec', id, '--', 'sh', '-c', 'while true; do echo tick; sleep 0.05; done'], { stdio: ['ignore', 'pipe', 'pipe'], env: rootEnv(root) });
    await new Promise<void>((res) => child.stdout.once('data', () => res()));
    child.kill('SIGKILL');
    await new Promise((res) => child.on('close', res));
    assert.equal((await list()).find((x) => x.id === id)!.status, 'running');
    assert.equal(await hutchOk(root, ['exec', id, '--', 'echo', 'still here']), 'still here\n');
    await hutchOk(root, ['rm', '-f', id]);
    assertGone(id);
  });

  test('a sandbox whose agent dies is shown as stopped', async () => {
    const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
    const pid = Number(fs.readFileSync(path.join(root, 'sandboxes', id, 'init.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50 && fs.existsSync(`/proc/${pid}`); i++) await new Promise((res) => setTimeout(res, 20));
    const s = (await list()).find((x) => x.id === id)!;
    assert.equal(s.status, 'stopped');
    await hutchOk(root, ['rm', id]);
    assertGone(id);
  });

  test('runc killed by a signal during create: the error names the signal; rm -f removes it all', runcOnly, async () => {
    const bin = fs.mkdtempSync('/tmp/hutch-crash-runc-');
    try {
      const real = ['/usr/sbin/runc', '/usr/bin/runc'].find((p) => fs.existsSync(p))!;
      // A runc that dies by SIGKILL at `create`, as one killed by the OOM killer or an operator would.
      fs.writeFileSync(path.join(bin, 'runc'), `#!/bin/sh\nfor a in "$@"; do [ "$a" = create ] && kill -KILL $$; done\nexec ${real} "$@"\n`, { mode: 0o755 });
      const r = await hutch(root, ['run', '-d', '--name', 'crash-runc-signal', 'busybox'], { env: { PATH: `${bin}:${process.env.PATH}` } });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /runc create failed: killed by SIGKILL/);
      assert.doesNotMatch(r.stderr, /exit code null/);
      const left = (await list()).find((s) => s.id.length > 0 && (s as { name?: string }).name === 'crash-runc-signal');
      if (left) {
        await hutchOk(root, ['rm', '-f', left.id]);
        assertGone(left.id);
      }
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });

  test('runc killed during create after it made only some cgroups and a state dir: rm -f removes it all', runcOnly, async () => {
    const bin = fs.mkdtempSync('/tmp/hutch-crash-runc-');
    try {
      const real = ['/usr/sbin/runc', '/usr/bin/runc'].find((p) => fs.existsSync(p))!;
      // At create: the pids cgroup and an empty state dir exist (no freezer cgroup, no state.json), then SIGKILL.
      fs.writeFileSync(path.join(bin, 'runc'), `#!/bin/sh
  for a in "$@"; do
    if [ "$a" = create ]; then
      for id in "$@"; do :; done
      mkdir -p "/sys/fs/cgroup/pids/hutch-$id" "${root}/runc/$id"
      echo "$id" > ${bin}/id
      kill -KILL $$
    fi
  done
  exec ${real} "$@"
  `, { mode: 0o755 });
      const r = await hutch(root, ['run', '-d', '--name', 'crash-runc-partial', 'busybox'], { env: { PATH: `${bin}:${process.env.PATH}` } });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /killed by SIGKILL/);
      const left = (await list()).find((s) => (s as { name?: string }).name === 'crash-runc-partial');
      if (left) {
        assert.equal(left.status, 'stopped');
        await hutchOk(root, ['rm', '-f', left.id]);
      }
      assertGone(fs.readFileSync(path.join(bin, 'id'), 'utf8').trim());
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });
});
