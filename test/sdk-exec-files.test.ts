// The SDK's results as an agent developer reads them, against a real hutchd: a missing command is
// exit 127 whether given as a string or a list (every way of running it), files.write makes missing
// parent directories unless told not to, and stats() has its typed fields.
import test from 'node:test';
import assert from 'node:assert/strict';
import { daemonFixture } from './server-kit.js';
import { Sandbox, NotFoundError, HutchApiError, type SandboxStats, type ExecResult } from '../src/sdk/index.js';

const fx = daemonFixture('sdkexec');

test('a missing command exits 127 with the reason on stderr, as a string or as a list', async () => {
  const sb = await Sandbox.create({ transport: fx.t });
  try {
    const shape = (r: ExecResult) => ({ exitCode: r.exitCode, signal: r.signal, stdout: r.stdout, mentions: r.stderr.includes('no-such-tool') });
    const expected = { exitCode: 127, signal: null, stdout: '', mentions: true };
    // One request, and streamed (a callback makes exec stream over the socket).
    assert.deepEqual(shape(await sb.exec('no-such-tool --flag')), expected);
    assert.deepEqual(shape(await sb.exec(['no-such-tool', '--flag'])), expected);
    assert.deepEqual(shape(await sb.exec(['no-such-tool'], { onStdout: () => undefined })), expected);
    assert.deepEqual(shape(await sb.exec(['/opt/no-such-tool'], { onStderr: () => undefined })).exitCode, 127);
    assert.match((await sb.exec(['no-such-tool'])).stderr, /^hutch: command not found: no-such-tool\n$/);
    // With a terminal the message comes on stdout, the terminal's one stream.
    const tty = await sb.exec(['no-such-tool'], { tty: true });
    assert.deepEqual([tty.exitCode, tty.stdout.includes('no-such-tool')], [127, true]);
    // spawn, detached or not: a process (pid 0: never started) that exits 127.
    for (const detached of [false, true]) {
      const p = await sb.spawn(['no-such-tool'], { detached });
      let err = '';
      for await (const c of p) err += c.data.toString();
      assert.equal(p.pid, 0);
      assert.deepEqual(await p.wait(), { exitCode: 127, signal: null });
      assert.match(err, /no-such-tool/);
    }
    assert.equal((await sb.processes.list()).some((p) => p.pid === 0), false, 'a command that never started is not listed');
    // The API's background start (only a pid in the answer) has no result to put 127 in: it refuses.
    await assert.rejects(fx.t.json({ method: 'POST', path: `/v1/sandboxes/${sb.id}/processes`, json: { cmd: ['no-such-tool'] } }),
      (e: unknown) => e instanceof HutchApiError && e.code === 'ENOEXEC' && e.status === 422);
    // Not an error of the sandbox: it still works, and a missing cwd is still an error.
    assert.equal((await sb.exec(['echo', 'fine'])).stdout, 'fine\n');
    await assert.rejects(sb.exec(['true'], { cwd: '/no/such/dir' }), (e: unknown) => e instanceof HutchApiError && e.status >= 400);
  } finally {
    await sb.kill();
  }
});

test('files.write makes missing parent directories; parents: false does not', async () => {
  const sb = await Sandbox.create({ transport: fx.t });
  try {
    assert.equal(await sb.files.write('/deep/er/still/file.txt', 'made'), 4);
    assert.equal(await sb.files.read('/deep/er/still/file.txt', { encoding: 'utf8' }), 'made');
    assert.equal((await sb.files.stat('/deep/er')).type, 'dir');
    assert.equal((await sb.files.stat('/deep/er')).mode & 0o777, 0o755);
    // Existing parents are fine; appending too.
    await sb.files.write('/deep/er/still/file.txt', '!', { append: true });
    assert.equal(await sb.files.read('/deep/er/still/file.txt', { encoding: 'utf8' }), 'made!');
    await assert.rejects(sb.files.write('/absent/file.txt', 'x', { parents: false }), NotFoundError);
    assert.equal(await sb.files.exists('/absent'), false, 'parents: false made nothing');
    // A parent that is a file cannot be made.
    await assert.rejects(sb.files.write('/deep/er/still/file.txt/below', 'x'), (e: unknown) => e instanceof HutchApiError && e.status >= 400 && e.status < 500);
    // The API without the flag keeps its old meaning; a bad flag value is refused.
    await assert.rejects(fx.t.json({ method: 'PUT', path: `/v1/sandboxes/${sb.id}/files`, query: { path: '/other/x' }, body: 'x' }), NotFoundError);
    await assert.rejects(fx.t.json({ method: 'PUT', path: `/v1/sandboxes/${sb.id}/files`, query: { path: '/other/x', parents: 'maybe' }, body: 'x' }),
      (e: unknown) => e instanceof HutchApiError && e.status === 400);
    // Still only paths of the sandbox.
    await assert.rejects(sb.files.write('relative/x', 'x'), (e: unknown) => e instanceof HutchApiError && e.status === 400);
  } finally {
    await sb.kill();
  }
});

test('stats() is typed: cpu, memory and pids with their limits', async () => {
  const sb = await Sandbox.create({ transport: fx.t, limits: { memoryBytes: 256 * 1024 * 1024, pids: 100 } });
  try {
    const s: SandboxStats = await sb.stats();
    assert.equal(typeof s.cpuUsageNs, 'number');
    assert.ok((s.memoryBytes ?? 0) > 0);
    assert.equal(s.memoryLimitBytes, 256 * 1024 * 1024);
    assert.ok((s.pids ?? 0) >= 1);
    assert.equal(s.pidsLimit, 100);
    const known = new Set<string>(['cpuUsageNs', 'memoryBytes', 'memoryLimitBytes', 'memoryMaxBytes', 'pids', 'pidsLimit', 'oomKills', 'diskBytes', 'diskLimitBytes', 'diskInodes', 'diskInodesLimit'] satisfies (keyof SandboxStats)[]);
    assert.deepEqual(Object.keys(s).filter((k) => !known.has(k)), [], 'every field hutchd returns is in SandboxStats');
  } finally {
    await sb.kill();
  }
});
