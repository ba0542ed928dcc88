// hutchd's sandboxes outlive it: after kill -9 a new hutchd serves the running (and paused) ones
// again and removes what was half made; sandboxes whose TTL runs out are removed with events.
// Platform-independent: run on every platform (testPlatforms).
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { platformRoot, cleanRoot, hutch, hutchOk, testPlatforms } from './helpers.js';
import { startDaemon } from './server-kit.js';
import { Sandbox, Transport, events, NotFoundError } from '../src/sdk/index.js';

for (const { name: platform, skip } of testPlatforms()) describe(`on ${platform}`, { ...(skip ? { skip } : {}) }, () => {
  const root = platformRoot('restart', platform);

  test.after(async () => {
    await cleanRoot(root);
  });

  test('kill -9 of hutchd: the next one serves the running sandboxes and cleans the half-made', async () => {
    const first = await startDaemon(root);
    let t = new Transport({ socketPath: first.socketPath });
    const running = await Sandbox.create({ transport: t, labels: { role: 'running' } });
    const paused = await Sandbox.create({ transport: t, labels: { role: 'paused' } });
    await running.files.write('/tmp/kept', 'kept across restarts');
    const bg = await t.json<{ pid: number }>({ method: 'POST', path: `/v1/sandboxes/${running.id}/processes`, json: { cmd: 'sleep 1000' } });
    await paused.pause();
    await first.stop('SIGKILL');
    t.close();
    assert.ok(fs.existsSync(first.socketPath), 'a killed hutchd leaves its socket behind');
    // A create that died half-way, as hutchd's own would have (labelled as its sandboxes are).
    const crashed = await hutch(root, ['create', '--name', 'half-made', '-l', 'dev.hutch.managed-by=hutchd', 'busybox'], { env: { HUTCH_CRASH_AT: 'create:executor' } });
    assert.notEqual(crashed.code, 0);
    assert.match(await hutchOk(root, ['ls']), /half-made/);

    const second = await startDaemon(root);
    t = new Transport({ socketPath: second.socketPath });
    try {
      assert.match(second.stderr(), /recovered 2 sandbox\(es\), removed 1/);
      const listed = await Sandbox.list({ transport: t });
      assert.deepEqual(listed.map((s) => [s.id, s.status]).sort(), [[running.id, 'running'], [paused.id, 'paused']].sort());
      assert.doesNotMatch(await hutchOk(root, ['ls']), /half-made/);
      const again = await Sandbox.connect(running.id, { transport: t });
      assert.equal((await again.exec('echo after restart')).stdout, 'after restart\n');
      assert.equal(await again.files.read('/tmp/kept', { encoding: 'utf8' }), 'kept across restarts');
      assert.ok((await again.processes.ps()).some((p) => p.pid === bg.pid), 'its processes still run');
      const p2 = await Sandbox.connect(paused.id, { transport: t });
      await p2.resume();
      assert.equal((await p2.exec('echo thawed')).stdout, 'thawed\n');
      await again.kill();
      await p2.kill();
    } finally {
      t.close();
      await second.stop();
    }
  });

  test('hutchd killed in the middle of a create: the next one removes the half-made sandbox', async () => {
    // start:started: runc started the sandbox, the engine has not recorded it (as if killed right then).
    const dying = await startDaemon(root, [], undefined, { HUTCH_CRASH_AT: 'start:started' });
    const t = new Transport({ socketPath: dying.socketPath });
    await assert.rejects(Sandbox.create({ transport: t }), (e: unknown) => (e as { code?: string }).code === 'ENETWORK');
    t.close();
    await dying.stop();
    const leftover = (await hutchOk(root, ['ls', '-q'])).trim();
    assert.ok(leftover, 'the killed create left a sandbox behind');
    const next = await startDaemon(root);
    try {
      assert.match(next.stderr(), /removed 1 left over/);
      assert.equal((await hutchOk(root, ['ls', '-q'])).trim(), '');
    } finally {
      await next.stop();
    }
  });

  test('hutchd killed in the middle of a delete: the next one finishes it', async () => {
    const dying = await startDaemon(root, [], undefined, { HUTCH_CRASH_AT: 'delete:renamed' });
    const t = new Transport({ socketPath: dying.socketPath });
    const sb = await Sandbox.create({ transport: t });
    await sb.exec('mkdir /many && cd /many && seq 1 2000 | xargs touch');
    await assert.rejects(sb.kill(), (e: unknown) => (e as { code?: string }).code === 'ENETWORK');
    t.close();
    await dying.stop();
    const trash = () => fs.readdirSync(`${root}/sandboxes`).filter((n) => n.startsWith('.trash-'));
    assert.equal(trash().length, 1, 'the killed delete left its renamed dir');
    assert.equal((await hutchOk(root, ['ls', '-q'])).trim(), '', 'already gone from ls');
    const next = await startDaemon(root);
    try {
      for (let i = 0; i < 100 && trash().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(trash(), [], 'recovery finished the removal');
    } finally {
      await next.stop();
    }
  });

  test('TTL: an expired sandbox is removed and the events say so; extending keeps it', async () => {
    const d = await startDaemon(root, ['--sweep-interval', '200ms']);
    const t = new Transport({ socketPath: d.socketPath });
    try {
      const short = await Sandbox.create({ transport: t, ttlMs: 1500 });
      const kept = await Sandbox.create({ transport: t, ttlMs: 1500 });
      const seen: string[] = [];
      const ac = new AbortController();
      const listening = (async () => {
        for await (const e of events({ transport: t, sandboxId: short.id, signal: ac.signal })) {
          seen.push(e.type);
          if (e.type === 'removed') return;
        }
      })();
      await kept.setTimeout(60_000);
      await listening;
      ac.abort();
      assert.deepEqual(seen, ['expired', 'removed']);
      await assert.rejects(Sandbox.connect(short.id, { transport: t }), (e: unknown) => e instanceof NotFoundError);
      assert.equal((await kept.exec('echo alive')).stdout, 'alive\n');
      await kept.kill();
    } finally {
      t.close();
      await d.stop();
    }
  });
});
