// The SDK against a real hutchd: create, exec (one request and streamed), spawn with iterators and
// stdin, tty, files, tar upload/download, pause/resume, TTL, kill, typed errors, abort and timeout.
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { daemonFixture } from './server-kit.js';
import { testPlatforms } from './helpers.js';
import { Sandbox, NotFoundError, TimeoutError, AbortError, HutchApiError, events } from '../src/sdk/index.js';
import { Header } from 'tar';


/** A tar archive in memory from [name, content | null (dir)] pairs. */
function tarOf(entries: [string, string | null][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, content] of entries) {
    const body = content === null ? Buffer.alloc(0) : Buffer.from(content);
    const block = Buffer.alloc(512);
    new Header({ path: name, mode: content === null ? 0o755 : 0o644, size: body.length, type: content === null ? 'Directory' : 'File', mtime: new Date() }).encode(block, 0);
    parts.push(block, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

// Platform-independent: one hutchd per platform (testPlatforms), the same cases.
for (const { name: platform, skip } of testPlatforms()) describe(`on ${platform}`, { ...(skip ? { skip } : {}) }, () => {
  const fx = daemonFixture(`sdk-${platform}`, ['--platform', platform]);

  test('create, exec, exit codes, env and cwd, then kill', async () => {
    const sb = await Sandbox.create({ transport: fx.t, labels: { suite: 'sdk' }, env: { GREETING: 'hello' } });
    assert.equal(sb.info.status, 'running');
    assert.equal(sb.info.image, 'busybox');
    assert.deepEqual(sb.info.labels, { suite: 'sdk' });
    assert.ok(sb.info.expiresAt && Date.parse(sb.info.expiresAt) > Date.now());
    assert.deepEqual(await sb.exec('echo hi'), { pid: (await sb.exec('true')).pid - 1, exitCode: 0, signal: null, stdout: 'hi\n', stderr: '' });
    const r = await sb.exec('echo $GREETING $EXTRA; pwd; echo oops >&2; exit 7', { env: { EXTRA: 'there' }, cwd: '/tmp' });
    assert.equal(r.stdout, 'hello there\n/tmp\n');
    assert.equal(r.stderr, 'oops\n');
    assert.equal(r.exitCode, 7);
    assert.equal((await sb.exec(['printf', '%s|', 'a b', 'c'])).stdout, 'a b|c|');
    assert.equal((await sb.exec('cat', { stdin: 'piped in' })).stdout, 'piped in');
    const listed = await Sandbox.list({ transport: fx.t, labels: { suite: 'sdk' } });
    assert.deepEqual(listed.map((s) => s.id), [sb.id]);
    assert.deepEqual(await Sandbox.list({ transport: fx.t, labels: { suite: 'other' } }), []);
    assert.equal((await Sandbox.connect(sb.id, { transport: fx.t })).id, sb.id);
    await sb.kill();
    await assert.rejects(Sandbox.connect(sb.id, { transport: fx.t }), (e: unknown) => e instanceof NotFoundError && e.status === 404);
    await assert.rejects(sb.exec('true'), (e: unknown) => e instanceof HutchApiError && e.code === 'ENOTFOUND');
  });

  test('streaming: callbacks, async iterators, stdin, signals, tty', async () => {
    const sb = await Sandbox.create({ transport: fx.t });
    try {
      const seen: string[] = [];
      const r = await sb.exec('for i in 1 2 3; do echo $i; sleep 0.05; done; echo done >&2', { onStdout: (d) => seen.push(d.toString()), onStderr: (d) => seen.push(`E:${d.toString()}`) });
      assert.equal(r.stdout, '1\n2\n3\n');
      assert.equal(r.stderr, 'done\n');
      assert.ok(seen.length >= 3, `output came in pieces: ${JSON.stringify(seen)}`);
      assert.equal(seen.join('').replace(/E:done\n/, ''), '1\n2\n3\n');

      const p = await sb.spawn('cat; echo bye >&2', { stdin: true });
      assert.ok(p.pid > 1);
      p.writeStdin('line one\n');
      p.writeStdin(Buffer.from('line two\n'));
      p.closeStdin();
      const chunks: string[] = [];
      for await (const c of p) chunks.push(`${c.stream}:${c.data.toString()}`);
      assert.deepEqual(await p.wait(), { exitCode: 0, signal: null });
      assert.ok(chunks.join('').includes('line one\n'), chunks.join(''));
      assert.ok(chunks.some((c) => c === 'stderr:bye\n'), chunks.join(''));

      const sleeper = await sb.spawn('sleep 30');
      sleeper.kill('SIGKILL');
      assert.deepEqual(await sleeper.wait(), { exitCode: null, signal: 'SIGKILL' });

      const tty = await sb.spawn('stty size; tty', { tty: { cols: 100, rows: 30 } });
      let text = '';
      for await (const d of tty.stdout) text += d.toString();
      assert.match(text, /30 100/);
      assert.match(text, /\/dev\/pts\//);
      await tty.wait();
    } finally {
      await sb.kill();
    }
  });

  test('files: write, read, list, stat, mkdir, remove, upload and download tar', async () => {
    const sb = await Sandbox.create({ transport: fx.t });
    try {
      await sb.files.mkdir('/work/a/b', { parents: true });
      assert.equal(await sb.files.write('/work/a/b/f.txt', 'content\n', { mode: 0o600 }), 8);
      assert.equal(await sb.files.read('/work/a/b/f.txt', { encoding: 'utf8' }), 'content\n');
      await sb.files.write('/work/a/b/f.txt', 'more\n', { append: true });
      assert.equal((await sb.exec('cat /work/a/b/f.txt')).stdout, 'content\nmore\n');
      const st = await sb.files.stat('/work/a/b/f.txt');
      assert.equal(st.type, 'file');
      assert.equal(st.size, 13);
      assert.equal(st.mode & 0o777, 0o600);
      assert.deepEqual((await sb.files.list('/work/a')).map((e) => [e.name, e.type]), [['b', 'dir']]);
      const big = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
      await sb.files.write('/work/big.bin', Readable.from([big.subarray(0, 1000), big.subarray(1000)]));
      assert.ok((await sb.files.read('/work/big.bin')).equals(big));
      await assert.rejects(sb.files.read('/work/missing'), (e: unknown) => e instanceof NotFoundError);
      assert.equal(await sb.files.exists('/work/missing'), false);

      const up = await sb.files.upload('/work', tarOf([['up/', null], ['up/one.txt', 'one'], ['up/deep/two.txt', 'two']]));
      assert.deepEqual({ files: up.files, dirs: up.dirs, bytes: up.bytes }, { files: 2, dirs: 1, bytes: 6 });
      assert.equal((await sb.exec('cat /work/up/one.txt /work/up/deep/two.txt')).stdout, 'onetwo');

      const tar = await sb.files.download('/work/up');
      const names: string[] = [];
      const { Parser } = await import('tar');
      const parser = new Parser();
      parser.on('entry', (e: { path: string; resume: () => void }) => { names.push(e.path); e.resume(); });
      for await (const c of tar) parser.write(c as Buffer);
      parser.end();
      assert.deepEqual(names.sort(), ['up/', 'up/deep/', 'up/deep/two.txt', 'up/one.txt']);

      await sb.files.remove('/work/up', { recursive: true });
      assert.equal(await sb.files.exists('/work/up'), false);
    } finally {
      await sb.kill();
    }
  });

  test('pause and resume, TTL, stats; abort and timeout of calls', async () => {
    const sb = await Sandbox.create({ transport: fx.t, ttlMs: 60_000 });
    try {
      const firstExpiry = Date.parse(sb.info.expiresAt!);
      assert.ok(firstExpiry - Date.now() <= 60_000 && firstExpiry - Date.now() > 50_000);
      const later = await sb.setTimeout(120_000);
      assert.ok(Date.parse(later) > firstExpiry);
      assert.equal((await sb.refresh()).expiresAt, later);
      await sb.pause();
      assert.equal(sb.info.status, 'paused');
      await assert.rejects(sb.exec('true'), (e: unknown) => e instanceof HutchApiError && e.code === 'ESTATE' && e.status === 409);
      await sb.resume();
      assert.equal(sb.info.status, 'running');
      const stats = await sb.stats();
      assert.ok(typeof stats === 'object' && stats !== null);

      await assert.rejects(sb.exec('sleep 10', { timeoutMs: 300 }), (e: unknown) => e instanceof TimeoutError);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 200);
      const t0 = Date.now();
      await assert.rejects(sb.exec('sleep 10', { signal: ac.signal }), (e: unknown) => e instanceof AbortError);
      assert.ok(Date.now() - t0 < 5000);
      await assert.rejects(Sandbox.list({ transport: fx.t, signal: AbortSignal.abort() }), (e: unknown) => e instanceof AbortError);
      // Both sleeps were killed when their calls ended.
      for (let i = 0; i < 50; i++) {
        const ps = await sb.processes.ps();
        if (!ps.some((p) => p.comm === 'sleep' || p.argv.join(' ').includes('sleep 10'))) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(!(await sb.processes.ps()).some((p) => p.comm === 'sleep' || p.argv.join(' ').includes('sleep 10')), 'the timed-out and aborted commands were killed');
    } finally {
      await sb.kill();
    }
  });

  test('events: created, started, exec and removed of one sandbox', async () => {
    const ac = new AbortController();
    const seen: string[] = [];
    const sb = await Sandbox.create({ transport: fx.t });
    const listening = (async () => {
      for await (const e of events({ transport: fx.t, sandboxId: sb.id, signal: ac.signal })) {
        seen.push(e.type);
        if (e.type === 'removed') break;
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    await sb.exec('true');
    await sb.kill();
    await listening;
    ac.abort();
    assert.deepEqual(seen.filter((t) => t !== 'ttl-extended'), ['exec-started', 'exec-exited', 'removed']);
  });
});
