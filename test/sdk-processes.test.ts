// The SDK's processes against a real hutchd: wait() after kill() with unread output, detached
// processes that outlive their client (a separate node program), processes.list/connect/wait/kill.
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { testPlatforms } from './helpers.js';
import { daemonFixture } from './server-kit.js';
import { Sandbox, NotFoundError, HutchApiError, type StartedProcess } from '../src/sdk/index.js';

// Platform-independent: one hutchd per platform (testPlatforms), the same cases.
for (const { name: platform, skip } of testPlatforms()) describe(`on ${platform}`, { ...(skip ? { skip } : {}) }, () => {
  const fx = daemonFixture(`sdkproc-${platform}`, ['--platform', platform]);
  const SDK_URL = new URL('../src/sdk/index.js', import.meta.url).href;

  /** Fails with `what` unless `p` settles within `ms` (a timer that keeps node running meanwhile). */
  async function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_r, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms); });
    try {
      return await Promise.race([p, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs an SDK program in a node of its own (the client that goes away); resolves to its stdout. */
  function runClient(source: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', source], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HUTCH_SOCKET: fx.daemon.socketPath } });
      let out = '', err = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(out); else reject(new Error(`client exited ${code}: ${err}`));
      });
    });
  }

  test('wait() after kill() resolves although the output was never read', async () => {
    const sb = await Sandbox.create({ transport: fx.t });
    try {
      // `yes` fills the SDK's 8 MiB of unread output at once; the stream then paused, and wait()
      // never saw the exit (node even exited, a paused socket keeping nothing alive).
      const p = await sb.spawn(['yes', 'some output nobody reads']);
      await new Promise((r) => setTimeout(r, 1500));
      p.kill('SIGKILL');
      const exit = await within('wait after kill', 20_000, p.wait());
      assert.equal(exit.signal, 'SIGKILL');
      assert.ok(p.droppedBytes > 0, 'output past the cap was dropped, not held');
      // Waiting first, then never reading, does not stall a process that ends by itself either.
      const q = await sb.spawn('head -c 30000000 /dev/zero');
      assert.deepEqual(await within('wait of unread output', 30_000, q.wait()), { exitCode: 0, signal: null });
      // A reader still gets everything (nothing is dropped while someone iterates).
      const r = await sb.spawn('head -c 20000000 /dev/zero');
      let bytes = 0;
      const reading = (async () => { for await (const d of r.stdout) bytes += d.length; })();
      assert.deepEqual(await within('wait while reading', 30_000, r.wait()), { exitCode: 0, signal: null });
      await reading;
      assert.equal(bytes, 20_000_000);
      assert.equal(r.droppedBytes, 0);
    } finally {
      await sb.kill();
    }
  });

  test('a detached process outlives its client; list, connect, wait and kill it by pid', async () => {
    const sb = await Sandbox.create({ transport: fx.t });
    try {
      // The client: spawns, reads the first line, and exits without closing anything.
      const out = await runClient(`
        import { Sandbox } from ${JSON.stringify(SDK_URL)};
        const sb = await Sandbox.connect(${JSON.stringify(sb.id)});
        const p = await sb.spawn('i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done', { detached: true });
        for await (const d of p.stdout) { if (d.toString().includes('tick 1')) break; }
        console.log(JSON.stringify({ pid: p.pid, detached: p.detached }));
        process.exit(0);
      `);
      const { pid, detached } = JSON.parse(out) as { pid: number; detached: boolean };
      assert.ok(pid > 1 && detached);
      await new Promise((r) => setTimeout(r, 500));
      const listed = (await sb.processes.list()).find((p) => p.pid === pid);
      assert.ok(listed, `pid ${pid} listed`);
      assert.deepEqual({ ...listed, startedAt: typeof listed.startedAt }, {
        pid, argv: ['/bin/sh', '-c', 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done'], tty: false,
        detached: true, attached: false, startedAt: 'string', running: true, exitCode: null, signal: null,
      } satisfies StartedProcess);
      assert.ok((await sb.processes.ps()).some((p) => p.pid === pid), 'it still runs');

      // Reattach: the output kept while nobody was attached comes first, then the live output.
      let text = '';
      const again = await sb.processes.connect(pid, { onStdout: (d) => { text += d.toString(); } });
      assert.equal(again.pid, pid);
      await assert.rejects(sb.processes.connect(pid), (e: unknown) => e instanceof HutchApiError && e.status === 409);
      const before = text;
      await new Promise((r) => setTimeout(r, 400));
      assert.match(before + text, /tick 2\n/, 'kept output from before the reattach');
      assert.ok(text.length > before.length, 'live output after it');
      // A second disconnect and connect, then the end through the SDK.
      await again.disconnect();
      await assert.rejects(again.wait(), (e: unknown) => (e as HutchApiError).code === 'ESTATE');
      const third = await sb.processes.connect(pid);
      const waited = sb.processes.wait(pid);
      await sb.processes.kill(pid, 'SIGKILL');
      assert.deepEqual(await within('wait of the reattached process', 10_000, third.wait()), { exitCode: null, signal: 'SIGKILL' });
      assert.deepEqual(await waited, { exitCode: null, signal: 'SIGKILL' });
      const ended = (await sb.processes.list()).find((p) => p.pid === pid);
      assert.deepEqual([ended?.running, ended?.signal, ended?.attached], [false, 'SIGKILL', false]);
    } finally {
      await sb.kill();
    }
  });

  test('a process that is not detached dies with its client; connect refuses unknown pids', async () => {
    const sb = await Sandbox.create({ transport: fx.t });
    try {
      const out = await runClient(`
        import { Sandbox } from ${JSON.stringify(SDK_URL)};
        const sb = await Sandbox.connect(${JSON.stringify(sb.id)});
        const p = await sb.spawn(['sleep', '60']);
        console.log(p.pid);
        process.exit(0);
      `);
      const pid = Number(out.trim());
      for (let i = 0; i < 50 && (await sb.processes.ps()).some((p) => p.pid === pid); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(!(await sb.processes.ps()).some((p) => p.pid === pid), 'killed when its client left');
      assert.equal((await sb.processes.list()).find((p) => p.pid === pid)?.detached, false);
      await assert.rejects(sb.processes.connect(999_999), NotFoundError);
      await assert.rejects(sb.processes.connect(-1), (e: unknown) => (e as HutchApiError).code === 'EINVAL');
      await assert.rejects(sb.processes.wait(0), (e: unknown) => (e as HutchApiError).status === 400);
      // A detached process whose own client disconnects (not exits) runs on too, and its exit code is kept.
      const p = await sb.spawn('sleep 0.5; echo finished; exit 3', { detached: true });
      await p.disconnect();
      assert.deepEqual(await sb.processes.wait(p.pid), { exitCode: 3, signal: null });
      let late = '';
      const q = await sb.processes.connect(p.pid, { onStdout: (d) => { late += d.toString(); } });
      assert.deepEqual(await q.wait(), { exitCode: 3, signal: null });
      assert.equal(late, 'finished\n', 'a late connect gets the kept output and the exit');
    } finally {
      await sb.kill();
    }
  });

  test('a detached process never blocks on unread output: hutchd keeps its last 1 MiB', async () => {
    const sb = await Sandbox.create({ transport: fx.t });
    try {
      // Through the API's background start: 3 MB with no client at all, then its end.
      const { pid } = await fx.t.json<{ pid: number }>({ method: 'POST', path: `/v1/sandboxes/${sb.id}/processes`, json: { cmd: 'head -c 3000000 /dev/zero | tr "\\0" x; echo; echo end', detached: true } });
      assert.deepEqual(await within('a detached process with 3 MB unread', 20_000, sb.processes.wait(pid)), { exitCode: 0, signal: null });
      let kept = '';
      const p = await sb.processes.connect(pid, { onStdout: (d) => { kept += d.toString(); } });
      assert.deepEqual(await p.wait(), { exitCode: 0, signal: null });
      assert.equal(kept.length, 1024 * 1024, 'the last 1 MiB');
      assert.ok(kept.endsWith('xxx\nend\n'));
      // Bad values of the flag are refused.
      await assert.rejects(fx.t.json({ method: 'POST', path: `/v1/sandboxes/${sb.id}/processes`, json: { cmd: 'true', detached: 'yes' } }), (e: unknown) => (e as HutchApiError).status === 400);
    } finally {
      await sb.kill();
    }
  });

  test('processes of a removed sandbox are not found', async () => {
    const sb = await Sandbox.create({ transport: fx.t });
    await sb.kill();
    await assert.rejects(sb.processes.list(), NotFoundError);
  });
});
