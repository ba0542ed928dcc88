// hutchd's limits: limits.diskBytes/diskInodes in a create, --default-memory, --default-cpus and
// --default-disk for a create that gives none (pooled sandboxes too), 0 = no limit; bad values refused.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { makeRoot, cleanRoot } from './helpers.js';
import { daemonFixture, serveFails } from './server-kit.js';
import { HutchApiError, Sandbox } from '../src/sdk/index.js';

const MiB = 1024 * 1024;
const fx = daemonFixture('srvdisk', ['--default-memory', '64m', '--default-cpus', '1', '--default-disk', '8m', '--pool', 'busybox=1']);

/** Mount points of the disk tmpfs under the daemon's sandboxes. */
function diskMounts(): string[] {
  const dir = path.join(fx.root, 'sandboxes') + '/';
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .filter((l) => l.includes(' - tmpfs hutch-disk ')).map((l) => l.split(' ')[4]!).filter((p) => p.startsWith(dir));
}

async function refused(p: Promise<unknown>): Promise<[number, string, string]> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HutchApiError, String(e));
    assert.ok(!e.message.includes('\n'), e.message);
    return [e.status, e.code, e.message];
  }
  assert.fail('the request was expected to fail');
}

test('the pool is filled with the default limits', async () => {
  for (let waited = 0; diskMounts().length === 0; waited += 100) {
    assert.ok(waited < 30_000, 'a pooled sandbox with a disk tmpfs');
    await new Promise((r) => setTimeout(r, 100));
  }
});

test('a create without limits gets the defaults, enforced; 0 = no limit; given limits win', async () => {
  const sb = await Sandbox.create({ transport: fx.t });
  try {
    assert.deepEqual(sb.info.limits, { memoryBytes: 64 * MiB, cpus: 1, diskBytes: 8 * MiB, diskInodes: 4096, pids: 1024 });
    const full = await sb.exec('dd if=/dev/zero of=/big bs=1M count=20');
    assert.notEqual(full.exitCode, 0);
    assert.match(full.stderr, /No space left on device/);
    const stats = await sb.stats();
    assert.equal(stats.diskLimitBytes, 8 * MiB);
    assert.ok(stats.diskBytes! > 7 * MiB);
    assert.equal(stats.diskInodesLimit, 4096);
    assert.ok(stats.diskInodes! > 0);
    assert.equal(stats.memoryLimitBytes, 64 * MiB);
    assert.equal((await sb.exec('rm /big && echo ok > /f && cat /f')).stdout, 'ok\n');
    // A file written through the API past the limit: 507 ENOSPC, and the sandbox goes on.
    const e = await sb.files.write('/upload', Buffer.alloc(12 * MiB, 7)).then(() => null, (err: unknown) => err);
    assert.ok(e instanceof HutchApiError, String(e));
    assert.deepEqual([e.status, e.code], [507, 'ENOSPC']);
    assert.equal((await sb.exec('rm -f /upload; echo ok')).stdout, 'ok\n');
  } finally {
    await sb.kill();
  }
  const unlimited = await Sandbox.create({ transport: fx.t, limits: { diskBytes: 0, memoryBytes: 0, cpus: 0 } });
  try {
    assert.deepEqual(unlimited.info.limits, { pids: 1024 });
    const stats = await unlimited.stats();
    assert.equal(stats.diskLimitBytes, null);
    assert.equal(stats.memoryLimitBytes, null);
    assert.equal((await unlimited.exec('dd if=/dev/zero of=/big bs=1M count=12 2>/dev/null && echo wrote')).stdout, 'wrote\n');
  } finally {
    await unlimited.kill();
  }
  const own = await Sandbox.create({ transport: fx.t, limits: { diskBytes: 16 * MiB, diskInodes: 200 } });
  try {
    assert.deepEqual(own.info.limits, { memoryBytes: 64 * MiB, cpus: 1, diskBytes: 16 * MiB, diskInodes: 200, pids: 1024 });
    const r = await own.exec('i=0; while touch /tmp/f$i 2>/dev/null; do i=$((i+1)); done; echo $i');
    const files = Number(r.stdout.trim());
    assert.ok(files > 150 && files < 200, `files: ${files}`);
    assert.equal((await own.stats()).diskInodesLimit, 200);
  } finally {
    await own.kill();
  }
});

test('bad disk limits in a request: 400 EINVAL, one line', async () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ diskBytes: 'big' }, /diskBytes must be a number/],
    [{ diskBytes: -1 }, /diskBytes must be a number from 0/],
    [{ diskBytes: 512 }, /disk limit 512 bytes is out of range/],
    [{ diskBytes: 2 ** 52 }, /more than this machine's memory/],
    [{ diskBytes: 0, diskInodes: 1000 }, /an inode limit \(1000\) needs a disk limit too/],
    [{ diskInodes: 5 }, /disk inode limit 5 is out of range/],
    [{ disk: 5 }, /unknown limit disk: use memoryBytes, cpus, pids, diskBytes, diskInodes/],
  ];
  for (const [limits, want] of bad) {
    const [status, code, message] = await refused(fx.t.json({ method: 'POST', path: '/v1/sandboxes', json: { limits } }));
    assert.deepEqual([status, code], [400, 'EINVAL'], JSON.stringify(limits));
    assert.match(message, want);
  }
});

test('hutchd refuses bad --default-disk, --default-memory, --default-cpus in one line', async () => {
  const root = makeRoot('srvdisk-bad');
  try {
    const cases: [string[], RegExp][] = [
      [['--default-disk', 'abc'], /invalid --default-disk "abc"/],
      [['--default-disk', '-1'], /invalid --default-disk "-1"/],
      [['--default-disk', '100t'], /disk limit 109951162777600 bytes is more than this machine's memory/],
      [['--default-memory', '1k'], /memory limit 1024 bytes is too small/],
      [['--default-cpus', 'lots'], /invalid --default-cpus "lots"/],
      [['--default-cpus', '9999'], /cpus 9999 is out of range/],
    ];
    for (const [flags, want] of cases) {
      const r = await serveFails(root, ['--socket', path.join(root, 'x.sock'), ...flags]);
      assert.notEqual(r.code, 0, flags.join(' '));
      assert.match(r.stderr, want);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  } finally {
    await cleanRoot(root);
  }
});
