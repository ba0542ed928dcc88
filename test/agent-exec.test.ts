// exec, wait, signal, ps and orphan reaping against the real agent.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { isHutchError } from '../src/errors.js';
import type { AgentClient } from '../src/agent/index.js';
import { collect, execParams, procKb, startAgent, until, type TestAgent } from './agent-harness.test.js';

let agent: TestAgent;
let c: AgentClient;

before(async () => {
  agent = await startAgent();
  c = await agent.connect();
});
after(async () => {
  c.close();
  await agent.stop();
});

test('pipes: stdout, stderr, stdin and the exit code', { timeout: 60_000 }, async () => {
  const p = await c.exec(execParams(['sh', '-c', 'echo out; echo err >&2; read x; echo "got $x"; exit 3'], { stdin: true }));
  assert.ok(p.pid > 0);
  assert.equal(p.tty, false);
  p.stdin.end('hello\n');
  assert.deepEqual(await collect(p), { stdout: 'out\ngot hello\n', stderr: 'err\n', exitCode: 3, signal: null });
});

test('closing stdin ends the input of cat; 5 MB round trip intact', { timeout: 60_000 }, async () => {
  const data = randomBytes(5 * 1024 * 1024);
  const p = await c.exec(execParams(['cat'], { stdin: true }));
  const chunks: Buffer[] = [];
  p.stdout.on('data', (d: Buffer) => chunks.push(d));
  p.stdin.end(data);
  assert.deepEqual(await p.wait(), { exitCode: 0, signal: null });
  const out = Buffer.concat(chunks);
  assert.equal(out.length, data.length);
  assert.equal(createHash('sha256').update(out).digest('hex'), createHash('sha256').update(data).digest('hex'));
});

test('death by signal is reported by name', { timeout: 60_000 }, async () => {
  const self = await c.exec(execParams(['sh', '-c', 'kill -TERM $$']));
  assert.deepEqual(await collect(self), { stdout: '', stderr: '', exitCode: null, signal: 'SIGTERM' });
  const p = await c.exec(execParams(['sleep', '30']));
  await p.kill('SIGKILL');
  assert.deepEqual(await p.wait(), { exitCode: null, signal: 'SIGKILL' });
});

test('tty: output on the terminal, size from exec and from resize', { timeout: 60_000 }, async () => {
  const p = await c.exec(execParams(['sh', '-c', 'stty size; read x; stty size; tty >/dev/null && echo is-a-tty'], { stdin: true, tty: { cols: 100, rows: 30 } }));
  assert.equal(p.tty, true);
  let out = '';
  p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  await until(() => out.includes('30 100'), 5000, 'first stty size');
  await p.resize(120, 40);
  p.stdin.write('\n');
  const status = await p.wait();
  assert.deepEqual(status, { exitCode: 0, signal: null });
  assert.match(out, /30 100\r?\n[\s\S]*40 120\r?\n[\s\S]*is-a-tty/);
  await assert.rejects(c.resize(p.pid, 10, 10), (e) => isHutchError(e, 'ENOTFOUND'));
});

test('resize of a process without a terminal is EINVAL', { timeout: 60_000 }, async () => {
  const p = await c.exec(execParams(['sleep', '5']));
  await assert.rejects(p.resize(80, 24), (e) => isHutchError(e, 'EINVAL') && /no terminal/.test(e.message));
  await p.kill('SIGKILL');
  await p.wait();
});

test('a missing command is ENOEXEC naming it; a bad cwd is EINVAL (not ENOTFOUND: the API would say 404)', { timeout: 60_000 }, async () => {
  await assert.rejects(c.exec(execParams(['no-such-command-xyz'])), (e) => isHutchError(e, 'ENOEXEC') && /no-such-command-xyz/.test(e.message));
  await assert.rejects(c.exec(execParams(['/nonexistent/bin/tool'])), (e) => isHutchError(e, 'ENOEXEC') && e.path === '/nonexistent/bin/tool');
  await assert.rejects(c.exec(execParams(['true'], { cwd: '/nonexistent-dir' })), (e) => isHutchError(e, 'EINVAL') && e.path === '/nonexistent-dir' && /does not exist in the sandbox/.test(e.message));
  await assert.rejects(c.exec(execParams(['true'], { cwd: '/etc/hostname' })), (e) => isHutchError(e, 'EINVAL'));
  const plain = path.join(agent.dir, 'not-executable');
  fs.writeFileSync(plain, 'data', { mode: 0o644 });
  await assert.rejects(c.exec(execParams([plain])), (e) => isHutchError(e, 'EPERM') && e.path === plain);
  await assert.rejects(c.exec(execParams(['true'], { cwd: 'relative' })), (e) => isHutchError(e, 'EINVAL') && /absolute/.test(e.message));
  await assert.rejects(c.exec(execParams(['sh'], { tty: { cols: 80, rows: 24 }, env: { PATH: '/nowhere' } })), (e) => isHutchError(e, 'ENOEXEC'));
});

test('argv[0] and the environment are passed as given', { timeout: 60_000 }, async () => {
  const p = await c.exec(execParams(['sh', '-c', 'echo "$0 $FOO"; pwd'], { env: { PATH: '/usr/bin:/bin', FOO: 'bar baz' }, cwd: '/tmp' }));
  assert.equal((await collect(p)).stdout, 'sh bar baz\n/tmp\n');
});

test('100 concurrent execs each get their own output and status', { timeout: 60_000 }, async () => {
  const runs = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
    const p = await c.exec(execParams(['sh', '-c', `echo ${i}; exit ${i % 7}`]));
    return { i, r: await collect(p) };
  }));
  for (const { i, r } of runs) assert.deepEqual(r, { stdout: `${i}\n`, stderr: '', exitCode: i % 7, signal: null });
});

test('20 MB of output through a slow reader: all arrives, the agent does not buffer it', { timeout: 60_000 }, async () => {
  const total = 20 * 1000 * 1000;
  const p = await c.exec(execParams(['head', '-c', String(total), '/dev/zero']));
  const rssBefore = procKb(agent.child.pid!, 'status', 'VmRSS');
  let received = 0, maxRss = 0, chunks = 0;
  p.stderr.resume();
  const slow = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, done) {
      received += chunk.length;
      if (++chunks % 50 === 0) maxRss = Math.max(maxRss, procKb(agent.child.pid!, 'status', 'VmRSS'));
      setTimeout(done, chunks % 10 === 0 ? 1 : 0);
    },
  });
  p.stdout.pipe(slow);
  // While nobody reads, the producer must block instead of the agent buffering 20 MB.
  p.stdout.pause();
  await new Promise((r) => setTimeout(r, 500));
  maxRss = Math.max(maxRss, procKb(agent.child.pid!, 'status', 'VmRSS'));
  assert.ok(received < 4 * 1024 * 1024, `only a window's worth arrives while paused (got ${received})`);
  p.stdout.resume();
  assert.deepEqual(await p.wait(), { exitCode: 0, signal: null });
  await finished(slow); // pipe() ends it once the buffered rest is written
  assert.equal(received, total);
  assert.ok(maxRss - rssBefore < 40 * 1024, `agent RSS grew by ${maxRss - rssBefore} kB`);
});

test('wait: after exit from the table, from another connection, and while running', { timeout: 60_000 }, async () => {
  const p = await c.exec(execParams(['sh', '-c', 'exit 5']));
  const status = await p.wait();
  assert.deepEqual(await c.wait(p.pid), status);
  const other = await agent.connect();
  try {
    assert.deepEqual(await other.wait(p.pid), { exitCode: 5, signal: null });
    const q = await c.exec(execParams(['sleep', '0.3']));
    assert.deepEqual(await other.wait(q.pid), { exitCode: 0, signal: null });
    await q.wait();
    await assert.rejects(other.wait(999_999), (e) => isHutchError(e, 'ENOTFOUND'));
    const ac = new AbortController();
    const r = await c.exec(execParams(['sleep', '5']));
    const waiting = other.wait(r.pid, { signal: ac.signal });
    ac.abort();
    await assert.rejects(waiting, (e) => isHutchError(e, 'ETIMEDOUT') && /aborted/.test(e.message));
    await r.kill('SIGKILL');
    await r.wait();
  } finally {
    other.close();
  }
});

test('a process outlives the connection that started it; its status stays available', { timeout: 60_000 }, async () => {
  const first = await agent.connect();
  const p = await first.exec(execParams(['sh', '-c', 'sleep 0.3; echo lost-output; exit 4'], { stdin: true }));
  first.close();
  await assert.rejects(p.wait(), (e) => isHutchError(e, 'ESTATE'));
  assert.deepEqual(await c.wait(p.pid), { exitCode: 4, signal: null });
});

test('signal to a process group and to all processes', { timeout: 60_000 }, async () => {
  const group = await c.exec(execParams(['sh', '-c', 'sleep 30 & sleep 30 & wait']));
  await until(async () => (await c.ps()).filter((x) => x.pgid === group.pid).length === 3, 5000, 'group of 3');
  assert.equal(await c.signal('TERM', { pgid: group.pid }), 3);
  assert.deepEqual(await group.wait(), { exitCode: null, signal: 'SIGTERM' });
  await until(async () => (await c.ps()).every((x) => x.pgid !== group.pid), 5000, 'group gone');

  const procs = await Promise.all([1, 2, 3].map(() => c.exec(execParams(['sleep', '30']))));
  assert.ok((await c.signal(9, { all: true })) >= 3);
  for (const p of procs) assert.deepEqual(await p.wait(), { exitCode: null, signal: 'SIGKILL' });

  await assert.rejects(c.signal('SIGTERM', { pid: process.pid }), (e) => isHutchError(e, 'ENOTFOUND'));
  await assert.rejects(c.signal('SIGTERM', { pid: agent.child.pid! }), (e) => isHutchError(e, 'EINVAL'));
  await assert.rejects(c.signal('SIGNOPE', { all: true }), (e) => isHutchError(e, 'EINVAL') && /unknown signal/.test(e.message));
});

test('ps lists the sandbox processes with argv, ppid and uid', { timeout: 60_000 }, async () => {
  const p = await c.exec(execParams(['sleep', '7']));
  const list = await c.ps();
  const me = list.find((x) => x.pid === p.pid);
  assert.ok(me, 'the exec\'d process is listed');
  assert.deepEqual(me.argv, ['sleep', '7']);
  assert.equal(me.ppid, agent.child.pid);
  assert.equal(me.uid, process.getuid!());
  assert.ok(list.some((x) => x.pid === agent.child.pid), 'the agent itself is listed');
  assert.ok(!list.some((x) => x.pid === process.pid), 'processes outside the sandbox are not');
  await p.kill('SIGKILL');
  await p.wait();
});

test('stats report processes, memory and uptime', { timeout: 60_000 }, async () => {
  const s = await c.stats();
  assert.ok(s.processes >= 1);
  assert.ok(s.memory.totalBytes > 0 && s.memory.availableBytes > 0);
  assert.ok(s.uptimeMs > 0 && s.systemUptimeMs > 0);
  assert.equal(s.loadavg.length, 3);
});

test('an orphan left by a shell that exits is adopted and reaped: no zombie remains', { timeout: 60_000 }, async () => {
  const p = await c.exec(execParams(['sh', '-c', 'sleep 0.4 & echo $!']));
  const r = await collect(p);
  assert.equal(r.exitCode, 0);
  const orphan = Number(r.stdout.trim());
  await until(async () => (await c.ps()).find((x) => x.pid === orphan)?.ppid === agent.child.pid, 2000, 'orphan re-parented to the agent');
  await until(async () => !(await c.ps()).some((x) => x.pid === orphan), 5000, 'orphan reaped');
  // Several at once, exiting together.
  const many = await c.exec(execParams(['sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do sleep 0.2 & done']));
  await many.wait();
  await new Promise((res) => setTimeout(res, 600));
  const zombies = (await c.ps()).filter((x) => x.state === 'Z');
  assert.deepEqual(zombies, []);
});
