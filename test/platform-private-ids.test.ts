// --userns private: each such sandbox gets a host id range of its own (a slot), its base layers seen
// through idmapped mounts; removal unmounts them and frees the slot; a crashed create's slot is reclaimed.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanRoot, hutch, hutchOk, leftovers, makeRoot, type Result } from './helpers.js';
import { processesOnHost } from './host-scan.js';
import { suiteRun } from './suite-run.js';
import { buildImage, busyboxEntries, dockerArchive } from './image-store-kit.js';
import { claimIdSlot, hostIdRange, idSlotRange, idSlotsInUse, ID_RANGE_SIZE, maxIdSlot, releaseIdSlot, unmountTree } from '../src/linux/index.js';
import { ID_SLOTS_DIR, probeIdmappedLayers } from '../src/platform/container/private-ids.js';
import { Engine } from '../src/engine/index.js';
import { isHutchError } from '../src/errors.js';

let root: string;
let tmp: string;
let env: NodeJS.ProcessEnv;
const shared = hostIdRange();

before(() => {
  root = makeRoot('privids');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-privids-'));
  env = { HUTCH_IMAGE_ROOT: path.join(tmp, 'store') };
});
after(async () => {
  await cleanRoot(root);
  fs.rmSync(tmp, { recursive: true, force: true });
  assert.deepEqual(leftovers(root), []);
  assert.deepEqual(idmapHelpers(), [], 'no unshare helper process is left');
});

const h = (args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Result> => hutch(root, args, { env: { ...env, ...extraEnv }, timeoutMs: 120_000 });
async function ok(args: string[]): Promise<string> {
  const r = await h(args);
  assert.equal(r.code, 0, `hutch ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Mount lines of this test's state root. */
const mountsOfRoot = (): string[] => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(root));
/** The slot files of this test's sandboxes: slot number → the sandbox id written in it. */
function slots(): Map<number, string> {
  const out = new Map<number, string>();
  for (const [n, owner] of idSlotsInUse(ID_SLOTS_DIR)) if (owner?.dir.startsWith(`${root}/`)) out.set(n, owner.id);
  return out;
}
/**
 * Processes of the idmapping helper (`unshare --user sleep 10`, `sleep 10` once unshare has run) that
 * this run started: other hutch processes on the host make their own.
 */
const idmapHelpers = (): string[] => processesOnHost()
  .filter((p) => /^(unshare --user )?sleep 10$/.test(p.command) && p.environ.includes(suiteRun().mark)).map((p) => `${p.pid} ${p.command}`);
/** The host uid and gid the init of sandbox `id` runs as. */
async function initIds(id: string): Promise<{ uid: number; gid: number }> {
  const [s] = (JSON.parse(await ok(['ls', '--json'])) as { id: string; pid?: number }[]).filter((x) => x.id === id);
  assert.ok(s?.pid, `sandbox ${id} has an init pid`);
  const status = fs.readFileSync(`/proc/${s.pid}/status`, 'utf8');
  return { uid: Number(/^Uid:\s+(\d+)/m.exec(status)![1]), gid: Number(/^Gid:\s+(\d+)/m.exec(status)![1]) };
}

test('two private sandboxes at once: each root is a host uid of its own, outside the shared range; shared stays the default', async () => {
  const a = (await ok(['run', '-d', '--userns', 'private', 'busybox'])).trim();
  const b = (await ok(['run', '-d', '--userns', 'private', 'busybox'])).trim();
  const c = (await ok(['run', '-d', 'busybox'])).trim();
  const d = (await ok(['run', '-d', '--userns', 'shared', 'busybox'])).trim();
  try {
    const [ia, ib, ic, id] = [await initIds(a), await initIds(b), await initIds(c), await initIds(d)];
    assert.deepEqual(ic, { uid: shared.hostUid, gid: shared.hostGid }, 'the default is the shared range');
    assert.deepEqual(id, ic, '--userns shared is the default');
    assert.notEqual(ia.uid, ib.uid, 'two private sandboxes differ');
    for (const [x, ids] of [[a, ia], [b, ib]] as const) {
      const slot = [...slots()].find(([, owner]) => owner === x)?.[0];
      assert.ok(slot !== undefined && slot >= 1, `sandbox ${x} holds a slot`);
      assert.deepEqual(ids, { uid: shared.hostUid + slot * ID_RANGE_SIZE, gid: shared.hostGid + slot * ID_RANGE_SIZE });
      // Inside: the busybox rootfs is root's, and root can write.
      assert.match(await ok(['exec', x, '--', 'ls', '-ln', '/bin/busybox']), /^\S+\s+\d+\s+0\s+0\s/);
      assert.equal(await ok(['exec', x, '--', 'sh', '-c', `echo ${x} > /made-here && cat /made-here && id -u`]), `${x}\n0\n`);
      // On the host, what root made is owned by the sandbox's own range.
      const made = fs.statSync(path.join(root, 'sandboxes', x, 'upper', 'made-here'));
      assert.deepEqual({ uid: made.uid, gid: made.gid }, ids);
    }
    // The shared sandbox's files stay in the shared range.
    await ok(['exec', c, '--', 'touch', '/made-here']);
    assert.equal(fs.statSync(path.join(root, 'sandboxes', c, 'upper', 'made-here')).uid, shared.hostUid);
    assert.equal(mountsOfRoot().filter((l) => l.split(' - ')[0]!.includes('idmapped')).length, 2, 'one idmapped lower mount per private sandbox');
  } finally {
    await hutchOk(root, ['rm', '-f', a, b, c, d]);
  }
  assert.deepEqual(mountsOfRoot(), [], 'removal leaves no mounts');
  assert.deepEqual([...slots()], [], 'removal frees the slots');
  assert.deepEqual(idmapHelpers(), []);
});

test('run --rm --userns private busybox -- id: works, and leaves nothing; --read-only works too', async () => {
  const id = await ok(['run', '--rm', '--userns', 'private', 'busybox', '--', 'id']);
  assert.match(id, /^uid=0\(root\) gid=0\(root\)/);
  assert.equal(id, await ok(['run', '--rm', 'busybox', '--', 'id']), 'the same as in a shared sandbox');
  const ro = await h(['run', '--rm', '--read-only', '--userns', 'private', 'busybox', '--', 'sh', '-c', 'ls -ln /bin/busybox; touch /x']);
  assert.match(ro.stdout, /^\S+\s+\d+\s+0\s+0\s/);
  assert.match(ro.stderr, /Read-only file system/);
  assert.notEqual(ro.code, 0);
  assert.deepEqual(fs.readdirSync(path.join(root, 'sandboxes')), []);
  assert.deepEqual(mountsOfRoot(), []);
  assert.deepEqual([...slots()], []);
});

test('an image of several layers: every layer is idmapped; its files keep their owners inside', async () => {
  const img = buildImage([busyboxEntries(), [{ name: 'data/' }, { name: 'data/app-file', content: 'from layer 2\n', uid: 1234, gid: 2345 }]]);
  await ok(['load', '-i', writeTmp('img.tar', dockerArchive([{ image: img, tags: ['privids:1'] }]))]);
  const out = await ok(['run', '--rm', '--userns', 'private', 'privids:1', '--', 'sh', '-c', 'cat /data/app-file; stat -c %u:%g /data/app-file /bin/busybox; echo w > /data/new && cat /data/new']);
  assert.equal(out, 'from layer 2\n1234:2345\n0:0\nw\n');
  const id = (await ok(['create', '--userns', 'private', 'privids:1'])).trim();
  try {
    const dir = path.join(root, 'sandboxes', id);
    const lowers = mountsOfRoot().filter((l) => l.split(' ')[4]!.startsWith(`${dir}/lower/`));
    assert.equal(lowers.length, 2, 'one idmapped mount per layer');
    for (const l of lowers) assert.match(l.split(' ')[5]!, /(^|,)ro(,|$)/, 'lower mounts are read-only');
    for (const l of lowers) assert.match(l.split(' - ')[0]!, /idmapped/);
  } finally {
    await hutchOk(root, ['rm', '-f', id]);
  }
  await ok(['rmi', 'privids:1']);
  assert.deepEqual(mountsOfRoot(), []);
  assert.deepEqual([...slots()], []);
});

test('killed mid-create: rm -f removes its mounts, and its slot is reclaimed by the next private sandbox', async () => {
  const r = await h(['create', '--userns', 'private', 'busybox'], { HUTCH_CRASH_AT: 'create:prepared' });
  assert.equal(r.signal, 'SIGKILL');
  const [crashed] = (JSON.parse(await ok(['ls', '--json'])) as { id: string }[]);
  assert.ok(crashed);
  const held = [...slots()].find(([, owner]) => owner === crashed.id);
  assert.ok(held, 'the crashed create holds a slot');
  assert.ok(mountsOfRoot().some((l) => l.includes(`${crashed.id}/lower/0`)), 'its idmapped mount is there');
  await ok(['rm', '-f', crashed.id]);
  assert.deepEqual(mountsOfRoot(), [], 'rm -f unmounts the idmapped lower dirs');
  assert.deepEqual([...slots()], [], 'rm -f freed the slot');
  const next = (await ok(['create', '--userns', 'private', 'busybox'])).trim();
  try {
    // Which slot it gets depends on the other private sandboxes on the host; that a stale slot is
    // reclaimed is tested on a slots dir of the test's own below.
    assert.deepEqual([...slots()].map(([, owner]) => owner), [next], 'the next sandbox holds a slot');
  } finally {
    await hutchOk(root, ['rm', '-f', next]);
  }
  assert.deepEqual([...slots()], []);
  assert.deepEqual(idmapHelpers(), []);
});

test('bad input: --userns bogus, --userns private --no-userns, a base that cannot be idmapped: one-line errors; nothing is made or held', async () => {
  for (const args of [['--userns', 'bogus'], ['--userns', 'private', '--no-userns'], ['--userns', 'shared', '--no-userns']]) {
    for (const verb of ['run', 'create']) {
      const r = await h([verb, ...args, 'busybox', '--', 'true']);
      assert.notEqual(r.code, 0, `${verb} ${args.join(' ')}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^hutch: (invalid --userns "bogus": use shared, private or host|--userns (private|shared) contradicts --no-userns)$/m);
    }
  }
  // A base on a filesystem that cannot be idmapped (sysfs): a clear error, the slot freed, nothing left.
  for (const verb of ['run', 'create']) {
    const r = await h([verb, '--userns', 'private', '/sys/kernel', '--', 'true']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^hutch: mount_setattr on \/sys\/kernel failed: EINVAL \(its filesystem or this kernel does not support idmapped mounts\)\n$/);
    assert.deepEqual(mountsOfRoot(), []);
  }
  // Through the engine (no CLI check in front): the record's check refuses it too.
  const engine = new Engine({ root });
  await assert.rejects(engine.create({ rootfs: 'busybox', hardening: { userns: false, idRange: 'private' } }),
    (e: unknown) => isHutchError(e, 'EINVAL') && /private id range needs a user namespace/.test(e.message));
  assert.deepEqual(fs.readdirSync(path.join(root, 'sandboxes')), []);
  assert.deepEqual([...slots()], []);
});

test('slots: bounded by the subid entries, lowest free first, ESTATE when all are taken, stale ones reclaimed', async () => {
  const files = { subuid: writeTmp('subuid', Buffer.from('other:100000:65536\nhutch:200000:262144\n')), subgid: writeTmp('subgid', Buffer.from('hutch:300000:196608\n')) };
  assert.equal(maxIdSlot(files), 2, '4 and 3 ranges of ids: slot 0 is the shared one, so 2 private');
  assert.equal(maxIdSlot({ subuid: path.join(tmp, 'none'), subgid: path.join(tmp, 'none') }), Math.floor((2 ** 31 - 1e9) / ID_RANGE_SIZE) - 1, 'without entries: up to 2^31');
  // An entry near the top of the id space: slots end below 2^32 - 1, whatever its count says.
  const highFile = writeTmp('subid-high', Buffer.from(`hutch:${2 ** 32 - 20 * ID_RANGE_SIZE}:${100 * ID_RANGE_SIZE}\n`));
  const high = { subuid: highFile, subgid: highFile };
  assert.equal(maxIdSlot(high), 18, '20 ranges up to 2^32 (the last one reaching the invalid id 2^32 - 1): the shared one and 18 private');
  assert.ok(idSlotRange(18, high).hostUid + ID_RANGE_SIZE - 1 < 2 ** 32 - 1);
  const dir = path.join(tmp, 'slots');
  const owner = (name: string) => {
    const d = path.join(tmp, name);
    fs.mkdirSync(d);
    return { id: name, dir: d };
  };
  const a = owner('a'), b = owner('b'), c = owner('c');
  assert.deepEqual(await claimIdSlot(dir, a, files), { slot: 1, range: { hostUid: 200000 + ID_RANGE_SIZE, hostGid: 300000 + ID_RANGE_SIZE, size: ID_RANGE_SIZE } });
  assert.equal((await claimIdSlot(dir, b, files)).slot, 2);
  await assert.rejects(claimIdSlot(dir, c, files), (e: unknown) => isHutchError(e, 'ESTATE') && /no free private id range: all 2 are in use/.test(e.message));
  await releaseIdSlot(dir, 1, 'b');
  assert.equal(idSlotsInUse(dir).get(1)?.id, 'a', 'a slot is freed only by its owner');
  fs.rmSync(a.dir, { recursive: true });
  assert.equal((await claimIdSlot(dir, c, files)).slot, 1, 'the slot of an owner whose dir is gone is reclaimed');
  fs.writeFileSync(path.join(dir, '2'), '{"id":');
  assert.equal((await claimIdSlot(dir, owner('d'), files)).slot, 2, 'a torn slot file (a claim cut short) is reclaimed');
  await releaseIdSlot(dir, 1, 'c');
  assert.deepEqual([...idSlotsInUse(dir).keys()], [2]);
  // A slots dir others could write (they could free a slot in use), or a symlink: refused, nothing made.
  const open = path.join(tmp, 'slots-open');
  fs.mkdirSync(open);
  fs.chmodSync(open, 0o777);
  const link = path.join(tmp, 'slots-link');
  fs.symlinkSync(dir, link);
  for (const [bad, why] of [[open, /is owned by uid \d+ with mode 777: id slots need a directory of uid \d+ that no one else can write; refusing$/], [link, /is a symlink:/]] as const) {
    await assert.rejects(claimIdSlot(bad, owner(`x${path.basename(bad)}`), files), (e: unknown) => isHutchError(e, 'EPERM') && why.test(e.message) && e.message.includes(bad));
    await assert.rejects(releaseIdSlot(bad, 2, 'd'), (e: unknown) => isHutchError(e, 'EPERM'));
  }
  assert.deepEqual(fs.readdirSync(open), [], 'nothing made in the open dir');
  assert.deepEqual([...idSlotsInUse(dir).keys()], [2], 'the slot is not freed through the symlink');
  const small = { subuid: writeTmp('small', Buffer.from('hutch:200000:65536\n')), subgid: files.subgid };
  await assert.rejects(claimIdSlot(dir, owner('e'), small), (e: unknown) => isHutchError(e, 'EUNSUPPORTED') && /room for no private id range/.test(e.message));
});

/** Writes a file in the test's temp dir; returns its path. */
function writeTmp(name: string, data: Buffer): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, data);
  return file;
}

test('the probe hutchd runs at start: an idmapped bind of the busybox rootfs works here, one of sysfs does not; nothing is left', async () => {
  const engine = new Engine({ root });
  assert.equal(await engine.privateIdsProblem(), null);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-idprobe-'));
  try {
    // A probe killed midway (its process gone) left its scratch dir and mount: the next probe removes them.
    const dead = spawnSync('true').pid;
    const stale = path.join(scratch, `.idmap-probe-${dead}-abc123`);
    fs.mkdirSync(path.join(stale, 'lower'), { recursive: true });
    assert.equal(spawnSync('mount', ['--bind', '-o', 'ro', tmp, path.join(stale, 'lower')]).status, 0);
    const alive = path.join(scratch, `.idmap-probe-${process.pid}-def456`);
    fs.mkdirSync(alive);
    const why = await probeIdmappedLayers('/sys/kernel', scratch);
    assert.ok(why !== null && why.length > 0 && !why.includes('\n'), `one line of why: ${why}`);
    assert.deepEqual(fs.readdirSync(scratch), [path.basename(alive)], 'the probe removes its scratch dir, and a dead probe\'s; not a live one\'s');
    assert.equal(fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(stale), false, 'the dead probe\'s mount is gone');
    assert.deepEqual(fs.readdirSync(root).filter((n) => n.startsWith('.idmap-probe-')), []);
    // Only probes in this test's dirs: hutchd and `hutch info` elsewhere on the host probe too.
    assert.deepEqual(fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes('.idmap-probe-') && (l.includes(scratch) || l.includes(root))), [], 'no probe mount left');
  } finally {
    unmountTree(scratch); // what a failed probe left: the rm below must not reach into a mount
    fs.rmSync(scratch, { recursive: true, force: true });
  }
});

test('a create the executor fails (its container left behind) keeps its slot until the container and its mounts are gone', async () => {
  const realRunc = spawnSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).stdout.trim();
  const wrapDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-runc-wrap-'));
  // runc makes the container (its init waits, with the range's ids), then the call fails all the same.
  fs.writeFileSync(path.join(wrapDir, 'runc'), [
    '#!/bin/sh',
    `case " $* " in *" create "*) '${realRunc}' "$@"; echo 'create failed: made up for the test' >&2; exit 1 ;; esac`,
    `exec '${realRunc}' "$@"`, '',
  ].join('\n'), { mode: 0o755 });
  const freedWith: string[][] = [];
  const unlink = fs.unlinkSync;
  // When a slot file goes: what of its sandbox is still mounted?
  fs.unlinkSync = (file: fs.PathLike) => {
    const name = String(file);
    if (path.dirname(name) === ID_SLOTS_DIR && /^\d+$/.test(path.basename(name))) {
      const owner = JSON.parse(fs.readFileSync(name, 'utf8')) as { dir: string };
      if (owner.dir.startsWith(`${root}/`)) freedWith.push(mountsOfRoot().filter((l) => l.includes(`${owner.dir}/`)));
    }
    unlink(file);
  };
  const savedPath = process.env.PATH;
  process.env.PATH = `${wrapDir}:${savedPath ?? ''}`;
  try {
    const engine = new Engine({ root });
    await assert.rejects(engine.create({ rootfs: 'busybox', hardening: { idRange: 'private' } }), (e: unknown) => isHutchError(e, 'EEXEC') && /made up for the test/.test(e.message));
  } finally {
    process.env.PATH = savedPath;
    fs.unlinkSync = unlink;
    fs.rmSync(wrapDir, { recursive: true, force: true });
  }
  assert.deepEqual(freedWith, [[]], 'the slot was freed once, with nothing of its sandbox mounted');
  assert.deepEqual(fs.readdirSync(path.join(root, 'sandboxes')), []);
  assert.deepEqual(mountsOfRoot(), []);
  assert.deepEqual([...slots()], []);
});
