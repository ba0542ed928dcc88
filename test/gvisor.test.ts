// What the gvisor platform adds (the host kernel out of reach), and checkpoint, restore and fork.
// The platform-independent verbs run on gvisor in the shared suites (cli-lifecycle...); this file
// is what only gVisor has.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanRoot, hutch, hutchOk, leftovers, makeRoot, platformRoot, testPlatforms } from './helpers.js';
import { buildTestImage } from './e2e/oci-image.js';

const gvisor = testPlatforms().find((p) => p.name === 'gvisor');
const skip = gvisor === undefined ? 'gvisor is not in HUTCH_TEST_PLATFORMS' : gvisor.skip;
let root: string;
let runcRoot: string;
let snapRoot: string;
let tmp: string;
let env: NodeJS.ProcessEnv;

before(() => {
  root = platformRoot('gvisor', 'gvisor');
  runcRoot = makeRoot('gvisor-runc');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-gvisor-'));
  // Snapshots go in a store of the test's own, so that it counts and removes only its own.
  snapRoot = path.join(tmp, 'snapshots');
  // A private image store too: the image test loads one of its own.
  env = { HUTCH_SNAPSHOT_ROOT: snapRoot, HUTCH_IMAGE_ROOT: path.join(tmp, 'images') };
});
after(async () => {
  const snapshotsLeft = fs.existsSync(snapRoot) ? fs.readdirSync(snapRoot) : [];
  try {
    await cleanRoot(root);
    await cleanRoot(runcRoot);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true }); // a failed clean-up must not leave it behind too
  }
  assert.deepEqual(leftovers(root), []);
  assert.deepEqual(snapshotsLeft, [], 'every snapshot was removed');
});

const gv = (args: string[]) => hutchOk(root, args, { env });
const gvRaw = (args: string[]) => hutch(root, args, { env });

/** A static program that calls copy_file_range(2) on bad fds: EBADF where the syscall exists, ENOSYS where it does not. */
function syscallProbe(): string | null {
  const src = path.join(tmp, 'probe.c');
  const bin = path.join(tmp, 'probe');
  fs.writeFileSync(src, '#include <errno.h>\n#include <stdio.h>\n#include <unistd.h>\n#include <sys/syscall.h>\nint main(void){long r=syscall(SYS_copy_file_range,-1,0,-1,0,1,0);printf("%ld %d\\n",r,r<0?errno:0);return 0;}\n');
  const cc = spawnSync('gcc', ['-static', '-O2', '-o', bin, src], { encoding: 'utf8' });
  return cc.status === 0 ? bin : null;
}

test('gvisor: the host kernel is out of reach: its version, and a syscall the host has but the sentry does not', { skip }, async () => {
  const hostRelease = os.release();
  const inGvisor = await gv(['run', '--rm', 'busybox', '--', 'sh', '-c', 'uname -r; cat /proc/version']);
  const [release, version] = inGvisor.trim().split('\n');
  assert.notEqual(release, hostRelease, 'uname -r is the sentry\'s, not the host\'s');
  assert.doesNotMatch(version!, new RegExp(hostRelease.replace(/[.+]/g, '\\$&')));
  const inContainer = (await hutchOk(runcRoot, ['run', '--rm', 'busybox', '--', 'uname', '-r'])).trim();
  assert.equal(inContainer, hostRelease, 'a container shares the host kernel');
  const probe = syscallProbe();
  if (probe === null) return test.skip?.('gcc -static is not available: the syscall probe is not built');
  const sb = (await gv(['run', '-d', 'busybox'])).trim();
  const ct = (await hutchOk(runcRoot, ['run', '-d', 'busybox'])).trim();
  try {
    await gv(['cp', probe, `${sb}:/probe`]);
    await hutchOk(runcRoot, ['cp', probe, `${ct}:/probe`]);
    assert.equal((await gv(['exec', sb, '--', '/probe'])).trim(), '-1 38', 'copy_file_range is ENOSYS in the sentry');
    assert.equal((await hutchOk(runcRoot, ['exec', ct, '--', '/probe'])).trim(), '-1 9', 'the host kernel has it (EBADF on bad fds)');
  } finally {
    await gv(['rm', '-f', sb]);
    await hutchOk(runcRoot, ['rm', '-f', ct]);
  }
});

test('gvisor: checkpoint and restore keep the processes with their memory, the writable layer, labels and limits', { skip }, async () => {
  const id = (await gv(['run', '-d', '--name', 'ck', '--memory', '256m', '--pids', '200', '-l', 'team=a', 'busybox', '--', 'sh', '-c',
    'i=0; while true; do i=$((i+1)); echo $i > /root/n; sleep 0.1; done'])).trim();
  await gv(['exec', id, '--', 'sh', '-c', 'echo disk > /root/file; echo memory > /tmp/in-memory']);
  await new Promise((r) => setTimeout(r, 500));
  const snap = (await gv(['checkpoint', 'ck'])).trim();
  assert.match(snap, /^[0-9a-f]{16}$/);
  const [stopped] = JSON.parse(await gv(['inspect', 'ck'])) as { status: string; note: string }[];
  assert.equal(stopped!.status, 'stopped');
  assert.match(stopped!.note, new RegExp(`checkpointed to snapshot ${snap}`));
  const atCheckpoint = Number(fs.readFileSync(path.join(root, 'sandboxes', id, 'upper', 'root', 'n'), 'utf8'));
  const restored = (await gv(['restore', '--name', 'ck2', snap])).trim();
  const [n, file, mem] = (await gv(['exec', 'ck2', '--', 'sh', '-c', 'cat /root/n /root/file /tmp/in-memory'])).trim().split('\n');
  assert.ok(Number(n) >= atCheckpoint && Number(n) < atCheckpoint + 20, `the loop goes on from ${atCheckpoint} (now ${n}), not from 1`);
  assert.equal(file, 'disk');
  assert.equal(mem, 'memory', 'the sentry\'s own tmpfs (/tmp) came back from the image');
  const [info] = JSON.parse(await gv(['inspect', restored])) as { status: string; labels: Record<string, string>; limits: { memoryBytes: number; pids: number }; platform: string }[];
  assert.equal(info!.status, 'running');
  assert.equal(info!.platform, 'gvisor');
  assert.equal(info!.labels['team'], 'a');
  assert.deepEqual([info!.limits.memoryBytes, info!.limits.pids], [256 * 1024 * 1024, 200]);
  const ps = (await gv(['ps', 'ck2'])).split('\n').filter((l) => /while true/.test(l));
  assert.equal(ps.length, 1, 'the main command is one process of the restored sandbox');
  await gv(['rm', '-f', 'ck', 'ck2']);
  await gv(['snapshot', 'rm', snap]);
});

test('gvisor: a fork (two restores of one snapshot) shares nothing writable; --leave-running goes on; --to DIR', { skip }, async () => {
  await gv(['run', '-d', '--name', 'src', 'busybox']);
  await gv(['exec', 'src', '--', 'sh', '-c', 'echo base > /root/f']);
  const snapDir = path.join(tmp, 'snap-to');
  assert.equal((await gv(['checkpoint', '--leave-running', '--to', snapDir, 'src'])).trim(), snapDir);
  assert.equal((await gv(['exec', 'src', '--', 'cat', '/root/f'])).trim(), 'base', 'the source runs on');
  const a = (await gv(['restore', snapDir])).trim();
  const b = (await gv(['restore', snapDir])).trim();
  await gv(['exec', a, '--', 'sh', '-c', 'echo from-a > /root/f; echo a > /root/only-a']);
  assert.equal((await gv(['exec', b, '--', 'cat', '/root/f'])).trim(), 'base', 'b does not see a\'s writes');
  assert.match((await gvRaw(['exec', b, '--', 'cat', '/root/only-a'])).stderr + (await gvRaw(['exec', b, '--', 'cat', '/root/only-a'])).stdout, /No such file/);
  assert.equal((await gv(['exec', 'src', '--', 'cat', '/root/f'])).trim(), 'base', 'nor does the source');
  const names = (await gv(['ls', '-q'])).trim().split('\n');
  assert.equal(names.length, 3);
  await gv(['rm', '-f', 'src', a, b]);
  assert.ok(fs.existsSync(path.join(snapDir, 'snapshot.json')), 'a snapshot outlives its sandboxes');
  await gv(['snapshot', 'rm', snapDir]);
  assert.ok(!fs.existsSync(snapDir));
});

test('gvisor: --leave-running whose restore in place fails keeps the snapshot, stops the sandbox and says so', { skip }, async () => {
  const id = (await gv(['run', '-d', 'busybox', '--', 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done'])).trim();
  // A runsc that refuses `restore`: the checkpoint is saved, the going-on fails.
  const bin = fs.mkdtempSync(path.join(tmp, 'bin-'));
  const real = spawnSync('sh', ['-c', 'command -v runsc'], { encoding: 'utf8' }).stdout.trim();
  fs.writeFileSync(path.join(bin, 'runsc'), `#!/bin/sh\nfor a in "$@"; do [ "$a" = restore ] && { echo "restore refused by the test" >&2; exit 1; }; done\nexec ${real} "$@"\n`, { mode: 0o755 });
  await new Promise((r) => setTimeout(r, 400));
  const r = await hutch(root, ['checkpoint', '--leave-running', id], { env: { ...env, PATH: `${bin}:${process.env.PATH}` } });
  assert.notEqual(r.code, 0);
  const snap = /checkpointed to snapshot ([0-9a-f]{16}) but could not go on/.exec(r.stderr)?.[1];
  assert.ok(snap, r.stderr);
  const [info] = JSON.parse(await gv(['inspect', id])) as { status: string; note: string }[];
  assert.equal(info!.status, 'stopped');
  assert.match(info!.note, new RegExp(`checkpointed to snapshot ${snap}; it could not go on`));
  const back = (await gv(['restore', snap])).trim();
  assert.ok(Number(await gv(['exec', back, '--', 'cat', '/tmp/n'])) > 1, 'the saved state is whole');
  await gv(['rm', '-f', id, back]);
  await gv(['snapshot', 'rm', snap]);
});

test('checkpoint and restore: what cannot be done says so in one line and leaves nothing', { skip }, async () => {
  const ct = (await hutchOk(runcRoot, ['run', '-d', 'busybox'])).trim();
  const r = await hutch(runcRoot, ['checkpoint', ct], { env });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^hutch: checkpoint is not supported on the container platform: runc checkpoints only through CRIU.*--platform gvisor\n$/);
  await hutchOk(runcRoot, ['rm', '-f', ct]);
  assert.match((await gvRaw(['checkpoint', 'nope'])).stderr, /nope/);
  assert.match((await gvRaw(['restore', '0123456789abcdef'])).stderr, /snapshot 0123456789abcdef not found/);
  assert.match((await gvRaw(['restore', 'not-a-snapshot'])).stderr, /give a snapshot id .* or a snapshot dir/);
  const bad = path.join(tmp, 'bad-snap');
  fs.mkdirSync(bad);
  fs.writeFileSync(path.join(bad, 'snapshot.json'), '{"version":1,"id":"x"}');
  assert.match((await gvRaw(['restore', bad])).stderr, /is not a hutch snapshot record/);
  const created = (await gv(['create', 'busybox'])).trim();
  assert.match((await gvRaw(['checkpoint', created])).stderr, /cannot checkpoint sandbox .*: it is ready \(needs running or paused\)/);
  const busy = path.join(tmp, 'busy');
  fs.mkdirSync(busy);
  fs.writeFileSync(path.join(busy, 'x'), '');
  await gv(['start', created]);
  assert.match((await gvRaw(['checkpoint', '--to', busy, created])).stderr, /exists and is not an empty directory/);
  assert.equal((JSON.parse(await gv(['inspect', created])) as { status: string }[])[0]!.status, 'running', 'a refused checkpoint leaves the sandbox as it was');
  await gv(['rm', '-f', created]);
  assert.deepEqual(fs.readdirSync(snapRoot), [], 'no half-made snapshot is left');
});

test('gvisor: an image (its layers as the rootfs, its Cmd and Env) runs as on the container platform', { skip }, async () => {
  const image = buildTestImage(path.join(tmp, 'image'), { name: 'localhost/hutch-test/gv:1', cmd: ['sh', '-c', 'echo "from the image: $(uname -r)"'] });
  await gv(['load', '-i', image.archivePath]);
  assert.equal((await gv(['run', '--rm', 'localhost/hutch-test/gv:1'])).trim(), 'from the image: 4.4.0');
  const id = (await gv(['run', '-d', 'localhost/hutch-test/gv:1', '--', 'sleep', '600'])).trim();
  assert.equal((await gv(['exec', id, '--', 'sh', '-c', 'echo layered > /f; cat /f'])).trim(), 'layered');
  // A snapshot holds the image's layers as its sandbox did: a restore needs them.
  const snap = (await gv(['checkpoint', id])).trim();
  await gv(['rm', '-f', id]);
  assert.match((await gvRaw(['rmi', 'localhost/hutch-test/gv:1'])).stderr, new RegExp(`used by sandbox snapshot ${snap}`));
  const restored = (await gv(['restore', snap])).trim();
  assert.equal((await gv(['exec', restored, '--', 'cat', '/f'])).trim(), 'layered');
  await gv(['rm', '-f', restored]);
  await gv(['snapshot', 'rm', snap]);
  await gv(['rmi', 'localhost/hutch-test/gv:1']);
});
