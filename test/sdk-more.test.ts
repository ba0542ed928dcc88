// More of the SDK against a real hutchd: watching files, terminal resize, large stdin, spawn's
// timeout and abort; and a hutchd with a warm pool: creates are claims, never a used sandbox.
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { makeRoot, cleanRoot, hutchOk, testPlatforms } from './helpers.js';
import { daemonFixture, startDaemon } from './server-kit.js';
import { Sandbox, Transport, TimeoutError, AbortError, NotFoundError, events, type FileChange } from '../src/sdk/index.js';

// Platform-independent: one hutchd per platform (testPlatforms), the same cases.
for (const { name: platform, skip } of testPlatforms()) describe(`on ${platform}`, { ...(skip ? { skip } : {}) }, () => {
  const fx = daemonFixture(`sdkmore-${platform}`, ['--platform', platform]);
  const root = fx.root;

  test('watch: created, modified and removed files are reported', async () => {
    const sb = await Sandbox.create({ transport: fx.t });
    try {
      await sb.files.mkdir('/watched/sub', { parents: true });
      await sb.files.write('/watched/old.txt', 'old');
      const w = await sb.files.watch('/watched', { intervalMs: 100, recursive: true });
      const seen: FileChange[] = [];
      const collecting = (async () => {
        for await (const c of w) {
          // A poll may land inside a write (after its truncation): the same change can show twice.
          const last = seen.at(-1);
          if (!last || last.kind !== c.kind || last.path !== c.path) seen.push(c);
          if (c.kind === 'removed') break;
        }
      })();
      await sb.files.write('/watched/sub/new.txt', 'new');
      await new Promise((r) => setTimeout(r, 300));
      await sb.files.write('/watched/old.txt', 'changed size');
      await new Promise((r) => setTimeout(r, 300));
      await sb.files.remove('/watched/sub/new.txt');
      await collecting;
      assert.deepEqual(seen, [
        { kind: 'created', path: '/watched/sub/new.txt' },
        { kind: 'modified', path: '/watched/old.txt' },
        { kind: 'removed', path: '/watched/sub/new.txt' },
      ]);
      await assert.rejects(sb.files.watch('relative'), (e: unknown) => (e as { status?: number }).status === 400);
    } finally {
      await sb.kill();
    }
  });

  test('tty resize, large stdin, spawn timeout and abort', async () => {
    const sb = await Sandbox.create({ transport: fx.t });
    try {
      const p = await sb.spawn('read x; stty size', { tty: { cols: 80, rows: 24 }, stdin: true });
      p.resize(120, 40);
      await new Promise((r) => setTimeout(r, 200));
      p.writeStdin('go\r');
      let out = '';
      for await (const d of p.stdout) out += d.toString();
      assert.match(out, /40 120/);

      const big = 'x'.repeat(3 * 1024 * 1024 + 5);
      // Not a speed check: a socket left paused once stdin ended made these last exactly ws's 30 s close timeout.
      let t0 = Date.now();
      assert.equal((await sb.exec('wc -c', { stdin: big })).stdout.trim(), String(big.length));
      assert.ok(Date.now() - t0 < 15_000, `large stdin exec stalled for ${Date.now() - t0} ms`);
      t0 = Date.now();
      const streamed = await sb.exec('wc -c', { stdin: big, onStdout: () => undefined });
      assert.equal(streamed.stdout.trim(), String(big.length));
      assert.ok(Date.now() - t0 < 15_000, `large streamed stdin exec stalled for ${Date.now() - t0} ms`);

      const slow = await sb.spawn('sleep 30', { timeoutMs: 300 });
      await assert.rejects(slow.wait(), (e: unknown) => e instanceof TimeoutError);
      const ac = new AbortController();
      const aborted = await sb.spawn('sleep 30', { signal: ac.signal });
      ac.abort();
      await assert.rejects(aborted.wait(), (e: unknown) => e instanceof AbortError);
      await assert.rejects(sb.spawn('true', { signal: AbortSignal.abort() }), (e: unknown) => e instanceof AbortError);
      // By argv, not comm: a `sh -c 'sleep 30'` not yet exec'd into sleep is still called sh (a gVisor flake).
      const sleeping = async () => (await sb.processes.ps()).some((x) => x.comm === 'sleep' || x.argv.join(' ').includes('sleep 30'));
      for (let i = 0; i < 50 && (await sleeping()); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(!(await sleeping()), 'sleeps of timed-out and aborted streams were killed');
      await assert.rejects(sb.spawn('true', { cwd: 'not/absolute' }), (e: unknown) => (e as { code?: string }).code === 'EINVAL');
    } finally {
      await sb.kill();
    }
  });

  test('warm pool: creates are claims of fresh sandboxes, and the pool refills', async () => {
    const poolRoot = makeRoot('sdkpool'); // one hutchd per state root
    const pooled = await startDaemon(poolRoot, ['--platform', platform, '--pool', 'busybox=2']);
    const pt = new Transport({ socketPath: pooled.socketPath });
    const metric = async () => {
      const res = await pt.request({ method: 'GET', path: '/metrics' });
      let text = '';
      for await (const c of res) text += String(c);
      return Number(/^hutch_pool_ready\{image="busybox"\} (\d+)/m.exec(text)?.[1] ?? NaN);
    };
    const untilReady = async (n: number) => {
      for (let i = 0; i < 300 && (await metric()) < n; i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok((await metric()) >= n, `pool has ${n} ready`);
    };
    try {
      await untilReady(2);
      const ac = new AbortController();
      const claimed: string[] = [];
      const listening = (async () => {
        for await (const e of events({ transport: pt, signal: ac.signal })) if (e.type === 'pool-claimed') claimed.push(e.sandboxId);
      })();
      await new Promise((r) => setTimeout(r, 100));
      const first = await Sandbox.create({ transport: pt, labels: { who: 'first' }, env: { MARK: 'one' } });
      assert.deepEqual(first.info.labels, { who: 'first' });
      assert.equal((await first.exec('echo $MARK')).stdout, 'one\n');
      await first.files.write('/tmp/used', 'by the first client');
      await first.kill();
      await untilReady(2);
      const second = await Sandbox.create({ transport: pt });
      assert.notEqual(second.id, first.id);
      assert.equal(await second.files.exists('/tmp/used'), false, 'a claimed sandbox is never one that was used');
      assert.deepEqual((await Sandbox.list({ transport: pt })).map((s) => s.id), [second.id], 'unclaimed pool sandboxes are not listed');
      await second.kill();
      ac.abort();
      await listening;
      assert.deepEqual(claimed, [first.id, second.id]);
      // A create that the pool cannot serve (other limits) is made cold.
      const cold = await Sandbox.create({ transport: pt, limits: { memoryBytes: 128 * 1024 * 1024 } });
      assert.equal(cold.info.limits.memoryBytes, 128 * 1024 * 1024);
      await cold.kill();
      await assert.rejects(Sandbox.connect(cold.id, { transport: pt }), (e: unknown) => e instanceof NotFoundError);
    } finally {
      pt.close();
      await pooled.stop();
      await cleanRoot(poolRoot);
    }
  });

  test('a create aborted by its client leaves no sandbox behind', async () => {
    const before = (await Sandbox.list({ transport: fx.t })).length;
    const ac = new AbortController();
    const creating = Sandbox.create({ transport: fx.t, signal: ac.signal, labels: { aborted: 'yes' } });
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(creating, (e: unknown) => e instanceof AbortError);
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      if ((await Sandbox.list({ transport: fx.t })).length === before && !(await hutchOk(root, ['ls', '-q'])).trim()) break;
    }
    assert.deepEqual(await Sandbox.list({ transport: fx.t, labels: { aborted: 'yes' } }), []);
    assert.equal((await hutchOk(root, ['ls', '-q'])).trim(), '', 'the sandbox made for the aborted create was removed');
  });

  test('a hutchd that cannot be reached is ENETWORK; connection options from the environment', async () => {
    const nowhere = new Transport({ socketPath: path.join(root, 'nobody-listens.sock') });
    await assert.rejects(Sandbox.list({ transport: nowhere }), (e: unknown) => (e as { code?: string; status?: number }).code === 'ENETWORK' && (e as { status?: number }).status === 0);
    nowhere.close();
    const saved = process.env['HUTCH_SOCKET'];
    process.env['HUTCH_SOCKET'] = fx.daemon.socketPath;
    try {
      const fromEnv = new Transport();
      assert.equal(fromEnv.socketPath, fx.daemon.socketPath);
      assert.ok(Array.isArray(await Sandbox.list({ transport: fromEnv })));
      fromEnv.close();
    } finally {
      if (saved === undefined) delete process.env['HUTCH_SOCKET'];
      else process.env['HUTCH_SOCKET'] = saved;
    }
  });

  test('exec as another user: one request, streamed, and a bad user refused', async () => {
    const sb = await Sandbox.create({ transport: fx.t });
    try {
      assert.equal((await sb.exec('echo $(id -u):$(id -g)', { user: '1000:1001' })).stdout, '1000:1001\n');
      let streamed = '';
      await sb.exec('id -u', { user: 1234, onStdout: (d) => { streamed += d.toString(); } });
      assert.equal(streamed, '1234\n');
      assert.equal((await sb.exec('id -u')).stdout, '0\n', 'the default stays the sandbox\'s user');
      assert.equal((await sb.exec('echo $(id -u):$(id -g)', { user: 'nobody:root' })).stdout, '65534:0\n', 'names from the sandbox\'s /etc/passwd and /etc/group');
      await assert.rejects(sb.exec('true', { user: 'nosuch' }), (e: Error & { code?: string }) => e.code === 'EINVAL' && /unknown user "nosuch"/.test(e.message));
      await assert.rejects(sb.exec('true', { user: 'a:b:c' }), (e: Error & { code?: string }) => e.code === 'EINVAL' && /invalid user "a:b:c"/.test(e.message));
    } finally {
      await sb.kill();
    }
  });
});
