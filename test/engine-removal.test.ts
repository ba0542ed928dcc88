// Removing a sandbox: gone at once (renamed aside), its files removed without blocking hutchd's
// event loop, trash of an interrupted removal finished later, and possible on a full disk.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { cleanRoot, hutch, hutchOk, leftovers, makeRoot } from './helpers.js';
import { SandboxStore } from '../src/engine/store.js';
import { daemonFixture, startDaemon } from './server-kit.js';
import { HutchApiError, Sandbox, Transport } from '../src/sdk/index.js';

test('trash a dead process left is removed by the next removal; ids() never lists it', async () => {
  const root = makeRoot('trash');
  try {
    const store = new SandboxStore(root);
    const deadPid = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout.trim();
    const trash = path.join(store.sandboxesDir, `.trash-0123456789abcdef.${deadPid}`);
    const live = path.join(store.sandboxesDir, `.trash-fedcba9876543210.1`);
    for (const d of [trash, live]) fs.mkdirSync(path.join(d, 'upper', 'deep'), { recursive: true });
    fs.writeFileSync(path.join(trash, 'upper', 'deep', 'f'), 'x');
    assert.deepEqual(store.ids(), []);
    const { record, lock } = await store.allocate('trash-test', (id, name) => ({ id, name } as never));
    await store.remove(record.id, record.name);
    lock.release();
    assert.ok(!fs.existsSync(trash), 'the dead process\'s trash is gone');
    assert.ok(fs.existsSync(live), 'a live process\'s trash is its own to finish');
    assert.deepEqual(store.ids(), []);
    assert.ok(!fs.existsSync(path.join(store.namesDir, 'trash-test')));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('rm -f works when the sandbox filled the disk of the state root', async () => {
  const root = makeRoot('fulldisk');
  assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'hutch-test-fulldisk', root]).status, 0);
  try {
    const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
    const fill = await hutch(root, ['exec', id, '--', 'sh', '-c', 'dd if=/dev/zero of=/fill bs=1M count=64 2>&1; df -k / | tail -1']);
    assert.match(fill.stdout, /No space left on device/);
    const rm = await hutch(root, ['rm', '-f', id]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.deepEqual((await hutchOk(root, ['ls', '-q'])).trim(), '');
  } finally {
    await cleanRoot(root).catch(() => undefined);
    spawnSync('umount', [root]);
    fs.rmSync(root, { recursive: true, force: true });
  }
  assert.deepEqual(leftovers(root), []);
});

test('hutchd on a full state root: a file write is 507 ENOSPC, and removal still works', async () => {
  const root = makeRoot('fulldisk-api');
  assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'hutch-test-fulldisk-api', root]).status, 0);
  const daemon = await startDaemon(root);
  const t = new Transport({ socketPath: daemon.socketPath });
  try {
    const a = await Sandbox.create({ transport: t });
    const b = await Sandbox.create({ transport: t });
    const e = await a.files.write('/fill', Buffer.alloc(32 * 1024 * 1024, 7)).then(() => null, (err: unknown) => err);
    assert.ok(e instanceof HutchApiError, String(e));
    assert.deepEqual([e.status, e.code], [507, 'ENOSPC']);
    assert.match(e.message, /ENOSPC|no space/i);
    await a.kill();
    await b.kill();
    assert.deepEqual((await t.json<{ sandboxes: unknown[] }>({ method: 'GET', path: '/v1/sandboxes' })).sandboxes, []);
  } finally {
    t.close();
    await daemon.stop();
    await cleanRoot(root).catch(() => undefined);
    spawnSync('umount', [root]);
    fs.rmSync(root, { recursive: true, force: true });
  }
  assert.deepEqual(leftovers(root), []);
});

const fx = daemonFixture('removal');

test('hutchd answers while it removes a sandbox with 100k files', async () => {
  const sb = await Sandbox.create({ transport: fx.t });
  const made = await sb.exec(['sh', '-c', 'mkdir /many && cd /many && seq 1 100000 | xargs touch && ls | wc -l']);
  assert.equal(made.stdout.trim(), '100000');
  let worst = 0;
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const t0 = performance.now();
      await fx.t.json({ method: 'GET', path: '/healthz' });
      worst = Math.max(worst, performance.now() - t0);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const t0 = performance.now();
  await sb.kill();
  const took = performance.now() - t0;
  polling = false;
  await poll;
  assert.ok(worst < Math.max(300, took / 4), `/healthz took up to ${worst.toFixed(0)} ms while a delete took ${took.toFixed(0)} ms`);
  assert.deepEqual(fs.readdirSync(path.join(fx.root, 'sandboxes')).filter((n) => n.startsWith('.trash-')), []);
});
