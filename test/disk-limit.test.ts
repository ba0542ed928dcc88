// The disk limit (--disk, --disk-inodes; limits.diskBytes/diskInodes in the API): a sandbox's
// writable layer on a tmpfs of its own. Past it the sandbox gets ENOSPC and the host's filesystem
// nothing; the sandbox keeps working; stats show it; removal leaves no mount. Also the direct-mode
// init.log, which a sandbox writes itself, stays bounded on the host.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { cleanRoot, hutch, hutchOk, leftovers, makeRoot } from './helpers.js';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { checkLimits } from '../src/engine/index.js';
import { isHutchError } from '../src/errors.js';
import { DEFAULT_HARDENING, builtinPlatforms } from '../src/platform/index.js';
import { INIT_LOG_CAP_BYTES, RUN_DIR_CAP_BYTES } from '../src/platform/container/disk.js';
import { AGENT_LOG_CAP_BYTES, cappedLog } from '../src/agent/capped-log.js';

const MiB = 1024 * 1024;
const TMPFS_MAGIC = 0x01021994;
const DATA_ROOT = process.env['HUTCH_DATA_ROOT'] ?? '/var/lib/hutch';

let root: string;
before(() => { root = makeRoot('disk'); });
after(async () => {
  await cleanRoot(root);
  assert.deepEqual(leftovers(root), []);
});

/** The mounts under `dir` (mount point and fs type), from this process's mountinfo. */
function mountsIn(dir: string): { point: string; fsType: string; source: string }[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => {
    const f = l.split(' ');
    const sep = f.indexOf('-', 6);
    return { point: f[4]!, fsType: f[sep + 1]!, source: f[sep + 2]! };
  }).filter((m) => m.point === dir || m.point.startsWith(dir + '/'));
}

test('a one-shot run: dd past --disk fails with ENOSPC, a file-count loop stops at --disk-inodes', async () => {
  const r = await hutch(root, ['run', '--rm', '--disk', '8m', '--disk-inodes', '300', 'busybox', '--', 'sh', '-c',
    'dd if=/dev/zero of=/big bs=1M count=20 2>&1; echo "dd=$?"; ls -l /big | awk \'{print "size=" $5}\'; rm -f /big; ' +
    'i=0; while touch /tmp/f$i 2>/tmp/err; do i=$((i+1)); done; echo "files=$i"; cat /tmp/err 2>&1 || true; rm -f /tmp/f*; ' +
    'echo again > /again && cat /again']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /No space left on device/);
  assert.match(r.stdout, /dd=1\n/);
  const size = Number(/size=(\d+)/.exec(r.stdout)?.[1]);
  assert.ok(size > 7 * MiB && size <= 8 * MiB, `the file stopped at the limit: ${size}`);
  const files = Number(/files=(\d+)/.exec(r.stdout)?.[1]);
  // 300 inodes, less the root, upper, work, /tmp, the mount points and the error file.
  assert.ok(files > 250 && files < 300, `the inode limit stopped the loop: ${files}`);
  assert.match(r.stdout, /again\n$/, 'writes work again once space is freed');
});

test('a sandbox that fills its disk keeps working, its host side is a tmpfs, stats show it, rm -f works and leaves no mount', async () => {
  const id = (await hutchOk(root, ['run', '-d', '--disk', '16m', 'busybox'])).trim();
  const dir = path.join(root, 'sandboxes', id);
  const disk = mountsIn(dir).find((m) => m.point === path.join(dir, 'disk'));
  assert.equal(disk?.fsType, 'tmpfs', JSON.stringify(mountsIn(dir)));
  assert.equal(disk?.source, 'hutch-disk');
  assert.equal(fs.statfsSync(path.join(dir, 'disk')).type, TMPFS_MAGIC);
  assert.equal(fs.existsSync(path.join(dir, 'upper')), false, 'no upper dir on the state root\'s filesystem');
  const full = await hutch(root, ['exec', id, '--', 'sh', '-c', 'dd if=/dev/zero of=/fill bs=1M count=64']);
  assert.notEqual(full.code, 0);
  assert.match(full.stderr, /No space left on device/);
  // What the sandbox wrote is on its tmpfs, not in the state root's filesystem.
  assert.ok(fs.statSync(path.join(dir, 'disk', 'upper', 'fill')).size > 15 * MiB);
  const stats = JSON.parse(await hutchOk(root, ['stats', '--json', id])) as Record<string, number | null>;
  assert.equal(stats['diskLimitBytes'], 16 * MiB);
  assert.ok(stats['diskBytes']! > 15 * MiB, `used: ${stats['diskBytes']}`);
  assert.equal(stats['diskInodesLimit'], 4096, 'the default inode limit of a 16m disk');
  assert.ok(stats['diskInodes']! >= 3 && stats['diskInodes']! < 50, `inodes used: ${stats['diskInodes']}`);
  const table = await hutchOk(root, ['stats', id]);
  assert.match(table.split('\n')[0]!, /DISK +DISK LIMIT +INODES +INODES LIMIT/);
  assert.match(table, /16\.0MiB +16\.0MiB/);
  // Full, it still runs commands, removes a file and writes again.
  assert.equal((await hutchOk(root, ['exec', id, '--', 'sh', '-c', 'echo alive; rm /fill && echo small > /f && cat /f'])), 'alive\nsmall\n');
  await hutchOk(root, ['exec', id, '--', 'sh', '-c', 'dd if=/dev/zero of=/fill bs=1M count=64 2>/dev/null; true']);
  await hutchOk(root, ['rm', '-f', id]);
  assert.deepEqual(mountsIn(dir), []);
  assert.equal(fs.existsSync(dir), false);
});

test('without --disk (or with --disk 0) nothing changes: no mount of its own, disk stats null', async () => {
  for (const flags of [[], ['--disk', '0']]) {
    const id = (await hutchOk(root, ['run', '-d', ...flags, 'busybox'])).trim();
    try {
      const dir = path.join(root, 'sandboxes', id);
      assert.deepEqual(mountsIn(dir).map((m) => m.fsType).sort(), ['overlay', 'tmpfs'], 'the rootfs, and the run dir\'s own small tmpfs');
      assert.ok(fs.existsSync(path.join(dir, 'upper')));
      const stats = JSON.parse(await hutchOk(root, ['stats', '--json', id])) as Record<string, unknown>;
      assert.equal(stats['diskBytes'], null);
      assert.equal(stats['diskLimitBytes'], null);
      const [info] = JSON.parse(await hutchOk(root, ['inspect', id])) as { limits: Record<string, unknown> }[];
      assert.deepEqual(info!.limits, { pids: 1024 });
    } finally {
      await hutchOk(root, ['rm', '-f', id]);
    }
  }
});

test('bad disk limits get one line and exit code 125; nothing is made', async () => {
  const cases: [string[], RegExp][] = [
    [['--disk', 'abc'], /^hutch: invalid --disk "abc": use a size such as 512m or 2g/],
    [['--disk', '-1'], /^hutch: invalid --disk "-1"/],
    [['--disk', '100t'], /^hutch: disk limit 109951162777600 bytes is more than this machine's memory/],
    [['--disk', '9'.repeat(30) + 't'], /^hutch: disk limit .* is more than this machine's memory/],
    [['--disk', '512k'], /^hutch: disk limit 524288 bytes is out of range: .*at least 1m/],
    [['--disk-inodes', '1000'], /^hutch: an inode limit \(1000\) needs a disk limit too/],
    [['--disk', '8m', '--disk-inodes', '10'], /^hutch: disk inode limit 10 is out of range: use 64 to 4294967295/],
    [['--disk', '8m', '--disk-inodes', 'many'], /^hutch: invalid --disk-inodes "many"/],
    [['--disk', '8m', '--read-only'], /^hutch: a disk limit needs a writable layer/],
  ];
  for (const [flags, want] of cases) {
    for (const verb of [['run', '--rm'], ['create']]) {
      const r = await hutch(root, [...verb, ...flags, 'busybox', '--', 'true']);
      assert.equal(r.code, 125, `${flags.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, want);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  }
  assert.deepEqual((await hutchOk(root, ['ls', '-q'])).trim(), '');
  // The engine's own check: a typed error.
  assert.throws(() => checkLimits({ diskBytes: 1.5 * MiB + 0.5 }), (e: unknown) => isHutchError(e, 'EINVAL'));
  assert.throws(() => checkLimits({ diskBytes: Number.POSITIVE_INFINITY }), (e: unknown) => isHutchError(e, 'EINVAL'));
  assert.deepEqual(checkLimits({ diskBytes: 0, memoryBytes: 0, cpus: 0 }), { pids: 1024 });
  assert.deepEqual(checkLimits({ diskBytes: 64 * MiB }), { diskBytes: 64 * MiB, diskInodes: 16384, pids: 1024 });
});

test('a direct-mode init.log (the command writes it itself) stays bounded on the host', async () => {
  // The engine makes direct-mode sandboxes in the foreground only (their output is the caller's);
  // the platform's create of one writes init.log, which is what is checked here.
  const platform = await builtinPlatforms['container']!.load({ stateRoot: root, dataRoot: DATA_ROOT, executor: 'runc' });
  const id = `d${randomBytes(7).toString('hex')}`;
  const dir = path.join(root, 'sandboxes', id);
  fs.mkdirSync(dir, { recursive: true, mode: 0o711 }); // as the store makes it: runc, in the user ns, goes through
  let handle = platform.handleFor(id, dir);
  try {
    handle = await platform.create({
      id, name: id, mode: 'direct', rootfs: path.join(DATA_ROOT, 'rootfs', 'busybox'), env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 },
      limits: { pids: 64 }, hardening: DEFAULT_HARDENING, dir,
      command: ['sh', '-c', `head -c ${3 * INIT_LOG_CAP_BYTES} /dev/zero; echo "head=$?" >&2; echo still here >&2; sleep 600`],
    });
    await platform.start(handle, 'direct');
    const log = path.join(dir, 'init-log', 'init.log');
    for (let waited = 0; !fs.existsSync(log) || fs.statSync(log).size < INIT_LOG_CAP_BYTES - 65536; waited += 50) {
      assert.ok(waited < 20_000, 'the command wrote its output');
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(fs.statSync(log).size <= INIT_LOG_CAP_BYTES, `init.log is ${fs.statSync(log).size} bytes`);
    assert.equal(fs.existsSync(path.join(dir, 'init.log')), false);
    assert.equal(fs.statfsSync(path.dirname(log)).type, TMPFS_MAGIC);
  } finally {
    try {
      await platform.destroy(handle);
      assert.deepEqual(mountsIn(dir), []);
    } finally {
      if (mountsIn(dir).length === 0) fs.rmSync(dir, { recursive: true, force: true });
    }
  }
});

test("the agent's init.log stays bounded however often a sandbox makes the agent log", async () => {
  const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
  try {
    const dir = path.join(root, 'sandboxes', id);
    // Any process of the sandbox can do this: the socket is bind-mounted at /.hutch/run/agent.sock.
    const sock = path.join(dir, 'run', 'agent.sock');
    const n = Math.ceil((AGENT_LOG_CAP_BYTES * 1.5) / 80); // each costs the agent a line of ~90 bytes
    for (let i = 0; i < n; i += 50) {
      await Promise.all(Array.from({ length: 50 }, () => new Promise<void>((resolve) => {
        const c = net.connect(sock);
        c.on('connect', () => { c.end(Buffer.alloc(64, 0xff)); c.resume(); });
        c.on('error', () => resolve());
        c.on('close', () => resolve());
      })));
    }
    const text = fs.readFileSync(path.join(dir, 'init.log'), 'utf8');
    assert.ok(text.length <= AGENT_LOG_CAP_BYTES + 200, `init.log is ${text.length} bytes`);
    assert.ok(text.length > AGENT_LOG_CAP_BYTES / 2, `the connections were logged: ${text.length} bytes`);
    assert.match(text, /log cap of 262144 bytes reached: nothing more is logged\n$/);
    assert.equal(await hutchOk(root, ['exec', id, '--', 'echo', 'fine']), 'fine\n');
  } finally {
    await hutchOk(root, ['rm', '-f', id]);
  }
});

test("the sandbox's run dir (/.hutch/run, writable by its root) is bounded: a flood gets ENOSPC, the host disk nothing", async () => {
  const id = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
  try {
    const runDir = path.join(root, 'sandboxes', id, 'run');
    assert.equal(fs.statfsSync(runDir).type, TMPFS_MAGIC, 'a tmpfs of its own');
    const r = await hutch(root, ['exec', id, '--', 'sh', '-c', 'dd if=/dev/zero of=/.hutch/run/flood bs=1M count=100 2>&1; ls /.hutch/run']);
    assert.match(r.stdout, /No space left on device/);
    assert.ok(fs.statSync(path.join(runDir, 'flood')).size <= RUN_DIR_CAP_BYTES);
    // The agent still serves over its socket there.
    assert.equal(await hutchOk(root, ['exec', id, '--', 'echo', 'still']), 'still\n');
  } finally {
    await hutchOk(root, ['rm', '-f', id]);
  }
  assert.ok(!fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(id), 'no mount left');
});

test('cappedLog: past its cap one notice, then nothing', () => {
  const lines: string[] = [];
  const log = cappedLog((l) => lines.push(l), 'p: ', 100);
  for (let i = 0; i < 50; i++) log(`message ${i}`);
  log('x'.repeat(10_000));
  const total = lines.join('').length;
  assert.ok(total <= 100 + 60, `${total} bytes`);
  assert.equal(lines.at(-1), 'p: log cap of 100 bytes reached: nothing more is logged\n');
  assert.equal(lines[0], 'p: message 0\n');
});

test('a create killed once its disk is mounted (create:prepared, delete:deleting) leaves nothing after rm -f', async () => {
  const made = await hutch(root, ['create', '--disk', '8m', 'busybox'], { env: { HUTCH_CRASH_AT: 'create:prepared' } });
  assert.equal(made.signal, 'SIGKILL');
  const ids = (await hutchOk(root, ['ls', '-q'])).trim().split('\n').filter(Boolean);
  assert.equal(ids.length, 1);
  const dir = path.join(root, 'sandboxes', ids[0]!);
  assert.ok(mountsIn(dir).some((m) => m.source === 'hutch-disk'), 'the disk was mounted before the crash');
  await hutchOk(root, ['rm', '-f', ids[0]!]);
  assert.deepEqual(mountsIn(dir), []);
  const id = (await hutchOk(root, ['run', '-d', '--disk', '8m', 'busybox'])).trim();
  await hutch(root, ['exec', id, '--', 'dd', 'if=/dev/zero', 'of=/fill', 'bs=1M', 'count=16']);
  const r = await hutch(root, ['rm', '-f', id], { env: { HUTCH_CRASH_AT: 'delete:deleting' } });
  assert.equal(r.signal, 'SIGKILL');
  await hutchOk(root, ['rm', '-f', id]);
  assert.equal(fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(id), false, 'no mount left');
  assert.equal((await hutchOk(root, ['ls', '-q'])).trim(), '');
});
