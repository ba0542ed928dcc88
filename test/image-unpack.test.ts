// Layer unpacking: what a normal layer becomes on disk (types, modes, owners, times, long names,
// xattrs), the three compressions, whiteouts and opaque dirs through a real overlay mount, and hard
// links into lower layers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { unpackLayer, type UnpackOptions } from '../src/image/unpack/index.js';
import { lgetxattr, mount, umount2, MS_RDONLY } from '../src/linux/index.js';
import { isHutchError } from '../src/errors.js';
import {
  entryBlocks, metaEntry, opaque, paxRecords, TAR_END, whiteout, writeLayer, type Compression, type LayerEntry,
} from './image/tar-kit.js';

const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-unpack-test-')));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const BASE = 1_000_000_000;
const ids = { uidBase: BASE, gidBase: BASE, size: 65536 };
let n = 0;

/** A fresh dir below the test's temp dir. */
function freshDir(tag: string): string {
  const dir = path.join(tmp, `${tag}-${n++}`);
  fs.mkdirSync(dir);
  return dir;
}

/** Writes the layer and unpacks it into a new dir; returns the dir and the result. */
async function unpack(entries: LayerEntry[], compression: Compression = 'gzip', opts: Partial<UnpackOptions> = {}) {
  const dir = freshDir('layer');
  const layer = writeLayer(dir, entries, compression);
  const target = path.join(dir, 'root');
  const result = await unpackLayer(layer.path, target, { ids, lowerDirs: [], ...opts });
  return { target, result, layer, dir };
}

const MTIME = 1_600_000_000;
const longName = `deep/${'n'.repeat(120)}/${'m'.repeat(90)}.txt`;
const NORMAL: LayerEntry[] = [
  { name: './', mode: 0o755, mtime: MTIME },
  { name: 'etc/', mode: 0o755, mtime: MTIME },
  { name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n', mtime: MTIME },
  { name: 'etc/shadow', content: 'secret', mode: 0o640, uid: 0, gid: 42 },
  { name: 'bin/su', content: 'SU', mode: 0o4755 },
  { name: 'bin/wall', content: 'WALL', mode: 0o2755, gid: 5 },
  { name: 'tmp/', mode: 0o1777 },
  { name: 'home/user/file', content: 'mine', uid: 1000, gid: 1000, mode: 0o600 },
  { name: 'home/alien', content: 'big id', uid: 70000, gid: 99999 },
  { name: 'bin/sh', type: 'symlink', linkname: 'busybox', mtime: MTIME },
  { name: 'bin/abs', type: 'symlink', linkname: '/etc/passwd' },
  { name: 'bin/up', type: 'symlink', linkname: '../../../../etc' },
  { name: 'bin/abs-hard', type: 'link', linkname: 'bin/abs' },
  { name: 'bin/busybox', content: 'BB', mode: 0o755 },
  { name: 'bin/ls', type: 'link', linkname: 'bin/busybox' },
  { name: 'run/pipe', type: 'fifo', mode: 0o620 },
  { name: 'dev/null', type: 'char', devmajor: 1, devminor: 3 },
  { name: 'dev/sda', type: 'block', devmajor: 8, devminor: 0 },
  { name: longName, content: 'pax long name' },
  { name: `gnu/${'g'.repeat(150)}`, content: 'gnu long name', longNames: 'gnu' },
  { name: 'links/pax', type: 'symlink', linkname: `/${'t'.repeat(140)}` },
  { name: 'links/gnu', type: 'symlink', linkname: `/${'k'.repeat(140)}`, longNames: 'gnu' },
  { name: 'links/hard-long', type: 'link', linkname: longName },
  { name: 'xattrs', content: 'x', pax: { 'SCHILY.xattr.user.note': 'hello', 'SCHILY.xattr.security.capability': 'cap' } },
  { name: 'frac', content: 'f', pax: { mtime: '1600000000.5' } },
];

for (const compression of ['none', 'gzip', 'zstd'] as const) {
  test(`a ${compression} layer unpacks with its types, modes, owners, times and long names`, async () => {
    const { target, result, layer } = await unpack(NORMAL, compression);
    assert.equal(result.compression, compression);
    assert.equal(result.diffId, layer.diffId, 'diffId is the sha256 of the uncompressed tar');
    assert.equal(result.entries, NORMAL.length);
    const at = (p: string): fs.Stats => fs.lstatSync(path.join(target, p));
    const read = (p: string): string => fs.readFileSync(path.join(target, p), 'utf8');

    assert.equal(read('etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
    assert.equal(at('etc/passwd').mtimeMs, MTIME * 1000);
    assert.equal(at('etc/shadow').mode & 0o7777, 0o640);
    assert.equal(at('etc/shadow').gid, BASE + 42);
    assert.equal(at('bin/su').mode & 0o7777, 0o4755, 'setuid survives the chown');
    assert.equal(at('bin/wall').mode & 0o7777, 0o2755, 'setgid survives the chown');
    assert.equal(at('tmp').mode & 0o7777, 0o1777, 'sticky dir');
    assert.equal(at('home/user/file').uid, BASE + 1000);
    assert.equal(at('home/user/file').gid, BASE + 1000);
    assert.equal(at('home/alien').uid, BASE + 65534, 'an id past the mapping becomes nobody');
    assert.equal(at('home/alien').gid, BASE + 65534);
    assert.equal(at('home').uid, BASE, 'implied parents belong to the mapped root');
    assert.equal(at('home').mode & 0o7777, 0o755);

    assert.ok(at('bin/sh').isSymbolicLink());
    assert.equal(fs.readlinkSync(path.join(target, 'bin/sh')), 'busybox');
    assert.equal(fs.readlinkSync(path.join(target, 'bin/abs')), '/etc/passwd', 'symlink text is kept as it is');
    assert.equal(fs.readlinkSync(path.join(target, 'bin/up')), '../../../../etc');
    assert.equal(at('bin/sh').mtimeMs, MTIME * 1000, 'symlink times are set (lutimes)');
    assert.ok(at('bin/abs-hard').isSymbolicLink(), 'a hard link to a symlink links the symlink, not what it points at');
    assert.equal(at('bin/abs-hard').ino, at('bin/abs').ino);
    assert.equal(fs.lstatSync('/etc/passwd').nlink, 1);
    assert.equal(at('bin/sh').uid, BASE);
    assert.equal(at('bin/ls').ino, at('bin/busybox').ino, 'a hard link shares the inode');
    assert.equal(at('bin/ls').nlink, 2);
    assert.ok(at('run/pipe').isFIFO());
    assert.equal(at('run/pipe').mode & 0o7777, 0o620);
    assert.ok(!fs.existsSync(path.join(target, 'dev/null')));
    assert.deepEqual(result.skipped.filter((s) => s.name.startsWith('dev/')).map((s) => s.name), ['dev/null', 'dev/sda']);
    assert.match(result.skipped[0]!.reason, /character device 1:3 not made/);

    assert.equal(read(longName), 'pax long name');
    assert.equal(read(`gnu/${'g'.repeat(150)}`), 'gnu long name');
    assert.equal(fs.readlinkSync(path.join(target, 'links/pax')), `/${'t'.repeat(140)}`);
    assert.equal(fs.readlinkSync(path.join(target, 'links/gnu')), `/${'k'.repeat(140)}`);
    assert.equal(at('links/hard-long').ino, at(longName).ino);

    assert.equal(lgetxattr(path.join(target, 'xattrs'), 'user.note')?.toString(), 'hello');
    assert.equal(lgetxattr(path.join(target, 'xattrs'), 'security.capability'), null);
    assert.ok(result.skipped.some((s) => s.name === 'xattrs' && /security\.capability not applied/.test(s.reason)));
    assert.equal(at('frac').mtimeMs, 1_600_000_000_500, 'pax fractional mtime');

    // Dir times are set after their contents are written; the root got the './' entry's.
    assert.equal(at('etc').mtimeMs, MTIME * 1000);
    assert.equal(at('.').mtimeMs, MTIME * 1000);
    assert.equal(at('.').mode & 0o7777, 0o755);
    assert.equal(at('.').uid, BASE);
    assert.deepEqual(fs.readdirSync(path.dirname(target)).sort(), [path.basename(layer.path), 'root'].sort(), 'no temp dir left');
  });
}

test('later entries replace earlier ones at the same path', async () => {
  const { target } = await unpack([
    { name: 'a', content: 'file first' },
    { name: 'a/', mode: 0o700 },
    { name: 'a/inner', content: 'in' },
    { name: 'b/', mode: 0o755 },
    { name: 'b/child', content: 'gone with b' },
    { name: 'b', content: 'now a file' },
    { name: 'c', content: 'c' },
    { name: 'c', type: 'symlink', linkname: '/nowhere' },
    { name: 'c', content: 'file again' },
    { name: 'd/', mode: 0o755, uid: 1 },
    { name: 'd/keep', content: 'kept' },
    { name: 'd/', mode: 0o750, uid: 2 },
    { name: 'orig', content: 'old' },
    { name: 'h1', type: 'link', linkname: 'orig' },
    { name: 'orig', content: 'new' },
    { name: 'wh', content: 'file' },
    whiteout('wh'),
    { name: 'tree/a/b/' }, { name: 'tree/a/b/c', content: 'c' },
    { name: 'tree', content: 'flat' },
    { name: 'tree2/sub/' }, { name: 'tree2', content: 'flat' }, { name: 'tree2/' }, { name: 'tree2/sub/' },
  ], 'none');
  assert.ok(fs.lstatSync(path.join(target, 'a')).isDirectory());
  assert.equal(fs.readFileSync(path.join(target, 'a/inner'), 'utf8'), 'in');
  assert.equal(fs.readFileSync(path.join(target, 'b'), 'utf8'), 'now a file');
  assert.ok(fs.lstatSync(path.join(target, 'c')).isFile());
  assert.equal(fs.readFileSync(path.join(target, 'c'), 'utf8'), 'file again');
  assert.equal(fs.readFileSync(path.join(target, 'h1'), 'utf8'), 'old', 'a hard link keeps the inode its target had');
  assert.equal(fs.readFileSync(path.join(target, 'orig'), 'utf8'), 'new');
  assert.ok(fs.lstatSync(path.join(target, 'wh')).isCharacterDevice(), 'a whiteout replaces an earlier entry');
  assert.ok(fs.lstatSync(path.join(target, 'tree')).isFile());
  assert.ok(fs.lstatSync(path.join(target, 'tree2/sub')).isDirectory(), 'a tree can be made again after its removal');
  const d = fs.lstatSync(path.join(target, 'd'));
  assert.equal(d.mode & 0o7777, 0o750, 'a later dir entry updates the mode');
  assert.equal(d.uid, BASE + 2, 'and the owner');
  assert.equal(fs.readFileSync(path.join(target, 'd/keep'), 'utf8'), 'kept', 'and keeps the contents');
});

test('whiteouts and opaque dirs work in a real overlay mount', async () => {
  const lower = await unpack([
    { name: 'a/' }, { name: 'a/keep', content: 'keep' }, { name: 'a/gone', content: 'gone' },
    { name: 'a/gonedir/' }, { name: 'a/gonedir/x', content: 'x' },
    { name: 'o/' }, { name: 'o/old', content: 'old' }, { name: 'o/sub/x', content: 'x' },
    { name: 'top', content: 'top' },
  ]);
  const upper = await unpack([
    whiteout('a/gone'), whiteout('a/gonedir'), whiteout('top'),
    { name: 'a/.wh..wh.plnk/' }, // aufs hard link dir: ignored
    opaque('o'), { name: 'o/new', content: 'new' },
  ], 'zstd');
  assert.ok(fs.lstatSync(path.join(upper.target, 'a/gone')).isCharacterDevice());
  assert.equal(fs.lstatSync(path.join(upper.target, 'a/gone')).rdev, 0);
  assert.equal(lgetxattr(path.join(upper.target, 'o'), 'trusted.overlay.opaque')?.toString(), 'y');
  assert.ok(!fs.existsSync(path.join(upper.target, 'a/.wh..wh.plnk')));

  const merged = freshDir('merged');
  mount('overlay', merged, 'overlay', MS_RDONLY, `lowerdir=${upper.target}:${lower.target}`);
  try {
    const ls = (p: string): string[] => fs.readdirSync(path.join(merged, p)).sort();
    assert.deepEqual(ls('a'), ['keep'], 'whited-out file and dir are gone');
    assert.deepEqual(ls('o'), ['new'], 'the opaque dir hides what the lower layer had');
    assert.deepEqual(ls('.'), ['a', 'o']);
    assert.equal(fs.readFileSync(path.join(merged, 'a/keep'), 'utf8'), 'keep');
  } finally {
    assert.equal(umount2(merged), null);
  }
});

test('a hard link to a lower layer file is copied; one to a deleted or hidden file is refused', async () => {
  const lower = await unpack([
    { name: 'usr/', mode: 0o751, uid: 3, mtime: MTIME },
    { name: 'usr/lib/', mode: 0o755 },
    { name: 'usr/lib/libc.so', content: 'LIBC', mode: 0o4711, uid: 7, mtime: MTIME },
    { name: 'usr/lib/gone', content: 'g' },
    { name: 'usr/lib/libz.so', type: 'symlink', linkname: '/etc/passwd' },
    { name: 'hidden/x', content: 'x' },
  ]);
  const middle = await unpack([whiteout('usr/lib/gone'), opaque('hidden')], 'gzip', { lowerDirs: [lower.target] });
  const lowerDirs = [middle.target, lower.target];
  const { target } = await unpack([
    { name: 'usr/lib/libc.so.6', type: 'link', linkname: 'usr/lib/libc.so' },
    { name: 'usr/lib/libz.so.1', type: 'link', linkname: 'usr/lib/libz.so' },
  ], 'gzip', { lowerDirs });
  assert.equal(fs.readlinkSync(path.join(target, 'usr/lib/libz.so.1')), '/etc/passwd', 'a lower symlink is copied as a symlink');
  const copy = fs.lstatSync(path.join(target, 'usr/lib/libc.so.6'));
  assert.equal(fs.readFileSync(path.join(target, 'usr/lib/libc.so.6'), 'utf8'), 'LIBC');
  assert.equal(copy.mode & 0o7777, 0o4711, 'the copy keeps the lower file mode');
  assert.equal(copy.uid, BASE + 7);
  assert.equal(copy.mtimeMs, MTIME * 1000);
  assert.ok(!fs.existsSync(path.join(target, 'usr/lib/libc.so')), 'only the link is in this layer');
  const usr = fs.lstatSync(path.join(target, 'usr'));
  assert.equal(usr.mode & 0o7777, 0o751, 'an implied parent takes the lower dir owner and mode');
  assert.equal(usr.uid, BASE + 3);
  assert.equal(usr.mtimeMs, MTIME * 1000);

  for (const [linkname, why] of [['usr/lib/gone', 'whited out'], ['hidden/x', 'under an opaque dir'], ['nowhere', 'missing']] as const) {
    const dir = freshDir('refused');
    const layer = writeLayer(dir, [{ name: 'l', type: 'link', linkname }], 'gzip');
    await assert.rejects(unpackLayer(layer.path, path.join(dir, 'root'), { ids, lowerDirs }), (e: unknown) => {
      assert.ok(isHutchError(e, 'ENOTFOUND'), `${why}: ${String(e)}`);
      assert.match(e.message, new RegExp(`entry "l" is a hard link to "${linkname}", which no earlier entry or lower layer has`));
      return true;
    });
    assert.deepEqual(fs.readdirSync(dir), [path.basename(layer.path)], `${why}: nothing left`);
  }
});

test('an empty layer (just the end-of-archive marker, as Docker writes for ENV or WORKDIR steps) unpacks to an empty dir', async () => {
  const { target, result, layer } = await unpack([], 'gzip');
  assert.deepEqual(fs.readdirSync(target), []);
  assert.equal(result.entries, 0);
  assert.equal(result.diffId, layer.diffId);
  assert.equal(fs.lstatSync(target).mode & 0o7777, 0o755);
  assert.equal(fs.lstatSync(target).uid, BASE);
});

test('a global pax header is checked but not applied (as Docker reads layers)', async () => {
  const dir = freshDir('global');
  const tar = Buffer.concat([
    metaEntry('g', paxRecords({ comment: 'git commit', path: 'renamed', uid: '5' })),
    entryBlocks({ name: 'a', content: 'A' }), entryBlocks({ name: 'b', content: 'B' }), TAR_END,
  ]);
  const layer = writeLayer(dir, tar, 'gzip');
  const target = path.join(dir, 'root');
  const result = await unpackLayer(layer.path, target, { ids, lowerDirs: [] });
  assert.deepEqual(fs.readdirSync(target).sort(), ['a', 'b']);
  assert.equal(fs.lstatSync(path.join(target, 'a')).uid, BASE);
  assert.equal(result.entries, 2);
  assert.equal(result.diffId, layer.diffId);
});

test('the expected diffId is checked, and an existing target is refused', async () => {
  const dir = freshDir('diffid');
  const layer = writeLayer(dir, [{ name: 'f', content: 'x' }]);
  const target = path.join(dir, 'root');
  const wrong = `sha256:${'0'.repeat(64)}`;
  await assert.rejects(unpackLayer(layer.path, target, { ids, lowerDirs: [], diffId: wrong, name: 'sha256:abc' }),
    (e: unknown) => isHutchError(e, 'EINTEGRITY') && e.message === `layer sha256:abc has diffId ${layer.diffId}, not the expected ${wrong}`);
  assert.deepEqual(fs.readdirSync(dir), [path.basename(layer.path)]);
  await unpackLayer(layer.path, target, { ids, lowerDirs: [], diffId: layer.diffId, sync: true });
  assert.equal(fs.readFileSync(path.join(target, 'f'), 'utf8'), 'x');
  await assert.rejects(unpackLayer(layer.path, target, { ids, lowerDirs: [] }), (e: unknown) => isHutchError(e, 'EEXIST'));
  await assert.rejects(unpackLayer(path.join(dir, 'missing'), path.join(dir, 'r2'), { ids, lowerDirs: [] }),
    (e: unknown) => isHutchError(e, 'ENOTFOUND') && /does not exist/.test(e.message));
  assert.deepEqual(fs.readdirSync(dir).sort(), [path.basename(layer.path), 'root'].sort());
});

test('a zstd layer without the zstd tool is refused as unsupported, nothing left', async () => {
  const dir = freshDir('nozstd');
  const layer = writeLayer(dir, [{ name: 'f', content: 'x' }], 'zstd');
  const pathBefore = process.env.PATH;
  process.env.PATH = path.join(dir, 'no-tools-here');
  try {
    await assert.rejects(unpackLayer(layer.path, path.join(dir, 'root'), { ids, lowerDirs: [], name: 'Z' }),
      (e: unknown) => isHutchError(e, 'EUNSUPPORTED') && e.message === 'layer Z is zstd-compressed and the zstd tool is not installed (apt install zstd)');
  } finally {
    process.env.PATH = pathBefore;
  }
  assert.deepEqual(fs.readdirSync(dir), [path.basename(layer.path)]);
});
