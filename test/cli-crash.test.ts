// Crash safety: hutch SIGKILLed at each point of create, start, run, exec and delete; the next
// `ls` tells the truth and `rm -f` removes everything.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { HUTCH, cleanRoot, hutch, hutchCgroups, hutchOk, leftovers, makeRoot } from './helpers.js';

let root: string;
before(() => { root = makeRoot('crash'); });
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

test('killed right after start: the sandbox is running and usable; rm -f removes it', async () => {
  const id = (await hutchOk(root, ['create', 'busybox'])).trim();
  const r = await hutch(root, ['start', id], { env: { HUTCH_CRASH_AT: 'start:started' } });
  assert.equal(r.signal, 'SIGKILL');
  // The record still says ready, but the agent runs: a later start is refused, not doubled.
  assert.equal((await list())[0]!.status, 'ready');
  await hutchOk(root, ['rm', '-f', id]);
  assertGone(id);
});

for (const point of ['delete:deleting', 'delete:destroyed']) {
  test(`killed at ${point}: ls shows it stopped (interrupted delete), rm -f finishes`, async () => {
    const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
    const r = await hutch(root, ['rm', '-f', id], { env: { HUTCH_CRASH_AT: point } });
    assert.equal(r.signal, 'SIGKILL');
    const [s] = await list();
    assert.equal(s!.status, 'stopped');
    assert.match(s!.note ?? '', /interrupted delete/);
    await hutchOk(root, ['rm', '-f', id]);
    assertGone(id);
  });
}

test('a foreground run whose hutch is killed: the sandbox keeps running and shows so; rm -f removes it', async () => {
  // stdio ignored: the orphaned runc keeps whatever it inherited open.
  const child = spawn(process.execPath, [HUTCH, '--root', root, 'run', 'busybox', '--', 'sleep', '1000'], { stdio: 'ignore', env: { ...process.env, HUTCH_CRASH_AT: 'run:started' } });
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
  const child = spawn(process.execPath, [HUTCH, '--root', root, 'exec', id, '--', 'sh', '-c', 'while true; do echo tick; sleep 0.05; done'], { stdio: ['ignore', 'pipe', 'pipe'] });
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

test('runc killed by a signal during create: the error names the signal; rm -f removes it all', async () => {
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
