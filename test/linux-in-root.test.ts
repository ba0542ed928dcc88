// Paths walked inside a rootfs from the host (readFileInRoot, mkdirInRoot): links resolve against the
// rootfs, never the host; loops, fifos, devices, huge files and files in the way are clear errors.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mkdirInRoot, readFileInRoot } from '../src/linux/in-root.js';
import { lookupUser } from '../src/linux/users.js';
import { isHutchError } from '../src/errors.js';

function tree(t: test.TestContext): { root: string; host: string } {
  const top = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-in-root-'));
  t.after(() => fs.rmSync(top, { recursive: true, force: true }));
  const root = path.join(top, 'rootfs');
  const host = path.join(top, 'host');
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.mkdirSync(host);
  fs.writeFileSync(path.join(host, 'passwd'), 'host:x:1:1::/:/bin/sh\n');
  fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'inside:x:2:2::/home/inside:/bin/sh\n');
  return { root, host };
}

const einval = (re: RegExp) => (e: unknown) => isHutchError(e, 'EINVAL') && re.test(e.message);

test('links resolve inside the rootfs: absolute, relative with .. past the top, through a linked dir', (t) => {
  const { root, host } = tree(t);
  const inside = 'inside:x:2:2::/home/inside:/bin/sh\n';
  fs.symlinkSync(`${host}/passwd`, path.join(root, 'abs'));
  fs.symlinkSync(`../../../../../../..${host}/passwd`, path.join(root, 'etc', 'rel'));
  fs.symlinkSync('/etc', path.join(root, 'etclink'));
  fs.symlinkSync('../../../../../../../../etc', path.join(root, 'up'));
  assert.equal(readFileInRoot(root, 'abs', 1024), null, 'the host file is not reached: the rootfs has no such path');
  assert.equal(readFileInRoot(root, 'etc/rel', 1024), null);
  assert.equal(readFileInRoot(root, 'etclink/passwd', 1024)?.toString(), inside);
  assert.equal(readFileInRoot(root, 'up/passwd', 1024)?.toString(), inside, '.. stops at the rootfs\'s top');
  assert.equal(readFileInRoot(root, '/../../etc/./passwd', 1024)?.toString(), inside);
  assert.equal(readFileInRoot(root, 'etc/nothing', 1024), null);
  assert.throws(() => readFileInRoot(root, 'etc/passwd/more', 1024), einval(/etc\/passwd\/more in the sandbox's rootfs: passwd is not a directory/));
  assert.equal(lookupUser('inside', (rel) => readFileInRoot(root, rel, 1024)?.toString() ?? '').home, '/home/inside');
});

test('loops, fifos, devices and files over the limit are refused with one line', (t) => {
  const { root } = tree(t);
  fs.symlinkSync('l2', path.join(root, 'l1'));
  fs.symlinkSync('l1', path.join(root, 'l2'));
  assert.throws(() => readFileInRoot(root, 'l1', 1024), einval(/l1 in the sandbox's rootfs: too many symlinks/));
  fs.mkdirSync(path.join(root, 'dev'));
  fs.symlinkSync('/dev/zero', path.join(root, 'zero'));
  assert.equal(readFileInRoot(root, 'zero', 1024), null, '/dev/zero of the rootfs, which it lacks');
  fs.writeFileSync(path.join(root, 'big'), Buffer.alloc(2048));
  assert.throws(() => readFileInRoot(root, 'big', 1024), einval(/big in the sandbox's rootfs is larger than 1024 bytes/));
  assert.equal(readFileInRoot(root, 'big', 2048)?.length, 2048);
  assert.throws(() => readFileInRoot(root, 'etc', 1024), einval(/not a regular file/));
  execFileSync('mkfifo', [path.join(root, 'fifo')]);
  assert.throws(() => readFileInRoot(root, 'fifo', 1024), einval(/fifo in the sandbox's rootfs is not a regular file/), 'refused, without blocking on the open');
});

test('mkdirInRoot makes missing dirs with their owner and mode, inside the rootfs even through an absolute link', (t) => {
  const { root, host } = tree(t);
  fs.symlinkSync(host, path.join(root, 'out'));
  assert.equal(mkdirInRoot(root, '/out/app/sub', { uid: 4321, gid: 765, mode: 0o755 }), true);
  assert.deepEqual(fs.readdirSync(host), ['passwd'], 'nothing made on the host');
  const made = path.join(root, host, 'app', 'sub');
  const st = fs.statSync(made);
  assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [4321, 765, 0o755]);
  assert.equal(mkdirInRoot(root, '/out/app/sub', { uid: 0, gid: 0, mode: 0o700 }), false, 'already there: nothing made');
  assert.equal(fs.statSync(made).uid, 4321);
  assert.throws(() => mkdirInRoot(root, '/etc/passwd/x', { uid: 0, gid: 0, mode: 0o755 }), einval(/passwd is not a directory/));
  assert.throws(() => mkdirInRoot(root, '/etc/passwd', { uid: 0, gid: 0, mode: 0o755 }), einval(/is not a directory/));
});
