// Attacks from inside a sandbox that once got through (docs/security.md): each must now fail, and
// each check would pass again if its defence were taken out.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanRoot, hutch, hutchOk, leftovers, makeRoot } from './helpers.js';

let root: string;
let id: string;
before(async () => {
  root = makeRoot('escapes');
  id = (await hutchOk(root, ['run', '-d', 'busybox', '--', 'sleep', '600'])).trim();
});
after(async () => {
  await cleanRoot(root);
  assert.deepEqual(leftovers(root), []);
});

test("the agent's host-side stdio cannot be reopened through /proc/<agent>/fd", async () => {
  const initLog = path.join(root, 'sandboxes', id, 'init.log');
  const before = fs.existsSync(initLog) ? fs.statSync(initLog).size : 0;
  // The agent is the sandbox's pid 1, running as the sandbox's root: same uid as this shell.
  const write = await hutch(root, ['exec', id, '--', 'sh', '-c', 'echo planted >> /proc/1/fd/1']);
  assert.notEqual(write.code, 0, 'appending to the agent\'s stdout must fail');
  const link = await hutch(root, ['exec', id, '--', 'readlink', '/proc/1/fd/1']);
  assert.notEqual(link.code, 0, `the agent's stdout must not name its host path: ${link.stdout}`);
  const mem = await hutch(root, ['exec', id, '--', 'sh', '-c', 'head -c 1 /proc/1/environ']);
  assert.notEqual(mem.code, 0, 'the agent\'s environment must not be readable');
  if (fs.existsSync(initLog)) {
    assert.ok(!fs.readFileSync(initLog, 'utf8').includes('planted'), 'nothing reached the host file');
    assert.ok(fs.statSync(initLog).size - before < 4096);
  }
  // The sandbox's own processes stay inspectable to each other, as before.
  assert.equal((await hutchOk(root, ['exec', id, '--', 'sh', '-c', 'sleep 30 & readlink /proc/$!/fd/0 >/dev/null && echo ok; kill $!'])).trim(), 'ok');
});

test('mount points that are symlinks (a rootfs dir, or an image layer) lead nothing of runc\'s out of the rootfs', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-escapes-'));
  try {
    fs.chmodSync(tmp, 0o755);
    // Host dirs owned by the sandboxes' shared host uid, as the shared busybox base layer is.
    const owner = fs.statSync(path.join(process.env.HUTCH_DATA_ROOT ?? '/var/lib/hutch', 'rootfs', 'busybox'));
    const rootfs = path.join(tmp, 'rootfs');
    fs.mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
    fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin/busybox'));
    fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
    fs.symlinkSync('busybox', path.join(rootfs, 'bin/sh'));
    const victims: string[] = [];
    const plant = (name: string) => {
      const victim = path.join(tmp, `victim-${name}`);
      fs.mkdirSync(victim);
      fs.chownSync(victim, owner.uid, owner.gid);
      fs.rmSync(path.join(rootfs, name), { recursive: true, force: true });
      fs.symlinkSync(victim, path.join(rootfs, name));
      victims.push(victim);
    };
    const runBoth = async () => {
      for (const args of [['run', '--rm', rootfs, '--', '/bin/sh', '-c', 'echo hi > /tmp/x && test -c /dev/null'], ['run', '-d', rootfs]]) {
        const r = await hutch(root, args);
        assert.equal(r.code, 0, r.stderr);
        if (args[1] === '-d') {
          const sid = r.stdout.trim();
          assert.equal((await hutchOk(root, ['exec', sid, '--', '/bin/sh', '-c', 'ls /dev/null /proc/1/stat >/dev/null && echo ok'])).trim(), 'ok');
          await hutchOk(root, ['rm', '-f', sid]);
        }
      }
      for (const v of victims) assert.deepEqual(fs.readdirSync(v), [], `${v} was written through the rootfs's symlink`);
    };
    // runc itself refuses /proc and /sys symlinks, but follows /dev's when it makes /dev/fd, /dev/ptmx…
    fs.mkdirSync(path.join(rootfs, 'proc'));
    fs.mkdirSync(path.join(rootfs, 'sys'));
    for (const name of ['dev', 'tmp', '.hutch']) plant(name);
    await runBoth();
    for (const name of ['proc', 'sys']) plant(name);
    await runBoth();
    for (const name of ['dev', 'proc', 'sys', 'tmp', '.hutch']) assert.ok(fs.lstatSync(path.join(rootfs, name)).isSymbolicLink(), 'the base is not changed');
    const ro = await hutch(root, ['run', '--rm', '--read-only', rootfs, '--', '/bin/sh', '-c', 'true']);
    assert.notEqual(ro.code, 0);
    assert.match(ro.stderr, /rootfs: \/(proc|sys|dev) is a symlink, not a directory/);
    assert.equal(ro.stderr.trim().split('\n').length, 1, ro.stderr);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test("the sandbox's mountinfo shows no host path for its rootfs layers", async () => {
  const info = await hutchOk(root, ['exec', id, '--', 'cat', '/proc/self/mountinfo']);
  const rootLine = info.split('\n').find((l) => / \/ \/ /.test(l) && l.includes(' - overlay '));
  assert.ok(rootLine, info);
  assert.match(rootLine, /lowerdir=\/proc\/self\/fd\/\d+/);
  assert.ok(!rootLine.includes(root) && !rootLine.includes('/var/lib/hutch'), rootLine);
});
