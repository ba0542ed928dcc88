import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_HOST_ID_BASE, hostIdRange, mount, shiftOwnership, unmountTree, type IdRange } from '../src/linux/index.js';
import { isHutchError } from '../src/errors.js';
import './suite-run.js'; // marks the processes this file starts as this run's (test/suite-run.ts)

const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-idmap-test-')));
after(() => {
  unmountTree(tmp);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const range: IdRange = { hostUid: 1_000_000_000, hostGid: 1_000_100_000, size: 65536 };

/** Writes subuid/subgid files with the given lines and returns their paths. */
function subidFiles(name: string, uidLines: string, gidLines: string): { subuid: string; subgid: string } {
  const subuid = path.join(tmp, `${name}.subuid`), subgid = path.join(tmp, `${name}.subgid`);
  fs.writeFileSync(subuid, uidLines);
  fs.writeFileSync(subgid, gidLines);
  return { subuid, subgid };
}

test('hostIdRange: the hutch entries of subuid/subgid, else the default', () => {
  const none = subidFiles('none', 'alice:100000:65536\n', '');
  assert.deepEqual(hostIdRange(none), { hostUid: DEFAULT_HOST_ID_BASE, hostGid: DEFAULT_HOST_ID_BASE, size: 65536 });
  const missing = { subuid: path.join(tmp, 'no-such-file'), subgid: path.join(tmp, 'no-such-file') };
  assert.equal(hostIdRange(missing).hostUid, DEFAULT_HOST_ID_BASE);
  const own = subidFiles('own', 'alice:100000:65536\nhutch:200000:65536\n', 'hutch:300000:131072\n');
  assert.deepEqual(hostIdRange(own), { hostUid: 200000, hostGid: 300000, size: 65536 });
  const small = subidFiles('small', 'hutch:200000:1000\n', '');
  assert.throws(() => hostIdRange(small), (e: unknown) => isHutchError(e, 'EINVAL') && e.path === small.subuid);
  const r = hostIdRange(); // the real files: whatever they say, the range is usable
  assert.equal(r.size, 65536);
  assert.ok(r.hostUid > 0 && r.hostUid + r.size <= 0xffffffff);
});

/** A small rootfs owned by host root with a few awkward entries. */
function makeRootfs(dir: string): void {
  for (const d of ['bin', 'etc', 'home/user', 'tmp']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.copyFileSync('/usr/bin/busybox', path.join(dir, 'bin/busybox'));
  for (const a of ['sh', 'ls', 'cat']) fs.symlinkSync('busybox', path.join(dir, 'bin', a));
  fs.writeFileSync(path.join(dir, 'bin/su'), 'setuid');
  fs.chmodSync(path.join(dir, 'bin/su'), 0o4755);
  fs.writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
  fs.linkSync(path.join(dir, 'etc/passwd'), path.join(dir, 'etc/passwd-hardlink'));
  fs.writeFileSync(path.join(dir, 'home/user/file'), 'x');
  fs.chownSync(path.join(dir, 'home/user'), 1000, 1000);
  fs.chownSync(path.join(dir, 'home/user/file'), 1000, 100);
  fs.chownSync(path.join(dir, 'tmp'), 65534, 65534);
}

test('shiftOwnership moves every owner into the host range without following symlinks', async () => {
  const outside = path.join(tmp, 'outside-sentinel');
  fs.writeFileSync(outside, 'host file');
  const rootfs = path.join(tmp, 'rootfs');
  fs.mkdirSync(rootfs);
  makeRootfs(rootfs);
  fs.symlinkSync(outside, path.join(rootfs, 'etc/evil-link'));
  fs.symlinkSync(tmp, path.join(rootfs, 'etc/evil-dir-link'));
  const changed = await shiftOwnership(rootfs, range);
  // The rootfs, 5 dirs, 10 files and links, less the hard link's second name (already shifted through the first).
  assert.equal(changed, 15);
  const st = (p: string) => fs.lstatSync(path.join(rootfs, p));
  assert.deepEqual([st('.').uid, st('.').gid], [range.hostUid, range.hostGid]);
  assert.deepEqual([st('bin/sh').uid, st('bin/sh').gid], [range.hostUid, range.hostGid]);
  assert.deepEqual([st('home/user').uid, st('home/user/file').gid], [range.hostUid + 1000, range.hostGid + 100]);
  assert.deepEqual([st('tmp').uid, st('tmp').gid], [range.hostUid + 65534, range.hostGid + 65534]);
  assert.equal(st('bin/su').mode & 0o7777, 0o4755, 'set-uid bit restored');
  assert.equal(st('etc/evil-link').uid, range.hostUid, 'the link itself is shifted');
  assert.equal(fs.statSync(outside).uid, 0, 'the link target outside is not');
  assert.equal(fs.statSync(tmp).uid, 0);
  assert.equal(await shiftOwnership(rootfs, range), 0, 'a second run changes nothing');
});

test('shiftOwnership refuses unmappable ids and mounts inside', async () => {
  const rootfs = path.join(tmp, 'bad');
  fs.mkdirSync(path.join(rootfs, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(rootfs, 'sub/far'), '');
  fs.chownSync(path.join(rootfs, 'sub/far'), 70000, 0);
  await assert.rejects(shiftOwnership(rootfs, range), (e: unknown) => isHutchError(e, 'EINVAL') && e.path === path.join(rootfs, 'sub/far'));
  fs.rmSync(path.join(rootfs, 'sub/far'));
  mount('tmpfs', path.join(rootfs, 'sub'), 'tmpfs', 0, 'size=1m');
  try {
    await assert.rejects(shiftOwnership(rootfs, range), /another filesystem/);
  } finally {
    unmountTree(path.join(rootfs, 'sub'));
  }
  await assert.rejects(shiftOwnership(path.join(tmp, 'missing'), range), (e: unknown) => isHutchError(e, 'ENOTFOUND'));
  await assert.rejects(shiftOwnership('rel/path', range), (e: unknown) => isHutchError(e, 'EINVAL'));
});

test('setup.sh reserves hutch\'s ids in subuid/subgid once, at hutch\'s default base, and never over another user\'s entry', async () => {
  const { execFileSync } = await import('node:child_process');
  const setup = fs.readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), '../../scripts/setup.sh'), 'utf8');
  const snippet = /^subid_start=[\s\S]*?^done$/m.exec(setup)?.[0];
  assert.ok(snippet, 'the subid part of setup.sh');
  const run = (files: string[]) => execFileSync('bash', ['-c', snippet], { env: { ...process.env, HUTCH_SUBID_FILES: files.join(' ') }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const dir = fs.mkdtempSync(path.join(tmp, 'subid-'));
  const [free, taken, overlapping] = ['free', 'taken', 'overlapping'].map((n) => path.join(dir, n));
  fs.writeFileSync(free, 'alice:100000:65536\n');
  fs.writeFileSync(taken, 'hutch:200000:131072\n');
  fs.writeFileSync(overlapping, 'bob:2000000000:65536\n');
  run([free, taken, overlapping]);
  run([free, taken, overlapping]); // twice: nothing more
  assert.equal(fs.readFileSync(free, 'utf8'), 'alice:100000:65536\nhutch:1000000000:1147469824\n');
  assert.equal(fs.readFileSync(taken, 'utf8'), 'hutch:200000:131072\n', 'an existing hutch entry is kept');
  assert.equal(fs.readFileSync(overlapping, 'utf8'), 'bob:2000000000:65536\n', 'no entry over another user\'s ids');
  // The reserved entry gives the default base, and the private ranges up to below 2^31.
  const files = { subuid: free, subgid: free };
  assert.equal(hostIdRange(files).hostUid, DEFAULT_HOST_ID_BASE);
  const { maxIdSlot, idSlotRange } = await import('../src/linux/index.js');
  const last = idSlotRange(maxIdSlot(files), files);
  assert.ok(last.hostUid + last.size - 1 < 2 ** 31, `last private id ${last.hostUid + last.size - 1}`);
  assert.equal(maxIdSlot(files), 17508, "as many private ranges as without an entry");
});
