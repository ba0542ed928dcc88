import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  bindMount, isMountPoint, mount, mountOverlay, mountsUnder, overlayOptions, parseMountinfo, readMountinfo,
  removeTreeSafely, unmountTree,
} from '../src/linux/index.js';
import { isHutchError } from '../src/errors.js';

const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-mounts-test-')));
after(() => {
  unmountTree(tmp);
  fs.rmSync(tmp, { recursive: true, force: true });
  assert.deepEqual(readMountinfo().filter((m) => m.mountPoint.startsWith(tmp)), [], 'mounts left behind');
});

/** A fresh dir below the test's temp dir. */
function mkdir(...parts: string[]): string {
  const dir = path.join(tmp, ...parts);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

test('parseMountinfo unescapes paths and splits the optional fields', () => {
  const [m] = parseMountinfo('36 35 98:0 /mnt1 /mnt/with\\040space\\011tab rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n');
  assert.ok(m);
  assert.equal(m.id, 36);
  assert.equal(m.parentId, 35);
  assert.equal(m.root, '/mnt1');
  assert.equal(m.mountPoint, '/mnt/with space\ttab');
  assert.deepEqual(m.optionalFields, ['master:1', 'shared:7']);
  assert.equal(m.fsType, 'ext3');
  assert.deepEqual(m.superOptions, ['rw', 'errors=continue']);
  assert.deepEqual(m.mountOptions, ['rw', 'noatime']);
});

test('unmountTree removes tmpfs, overlay, nested and stacked mounts, deepest first', () => {
  const base = mkdir('tree');
  mount('tmpfs', base, 'tmpfs', 0, 'size=4m');
  const lower = mkdir('tree', 'lower'), upper = mkdir('tree', 'upper'), work = mkdir('tree', 'work');
  const merged = mkdir('tree', 'merged');
  fs.writeFileSync(path.join(lower, 'from-lower'), 'x');
  mountOverlay({ lowerDirs: [lower], upperDir: upper, workDir: work, target: merged });
  assert.equal(fs.readFileSync(path.join(merged, 'from-lower'), 'utf8'), 'x');
  const nested = path.join(merged, 'nested dir');
  fs.mkdirSync(nested);
  mount('tmpfs', nested, 'tmpfs', 0, 'size=1m');
  mount('tmpfs', nested, 'tmpfs', 0, 'size=1m'); // stacked on the same point
  const found = mountsUnder(base).map((m) => m.mountPoint);
  assert.deepEqual(found, [nested, nested, merged, base]);
  assert.ok(isMountPoint(nested));
  assert.ok(!isMountPoint(lower));
  // A busy mount (a cwd or open file inside) falls back to a lazy unmount.
  const fd = fs.openSync(path.join(merged, 'from-lower'), 'r');
  try {
    assert.equal(unmountTree(base), 4);
  } finally {
    fs.closeSync(fd);
  }
  assert.deepEqual(mountsUnder(base), []);
  assert.equal(unmountTree(base), 0, 'idempotent');
  assert.equal(unmountTree(path.join(tmp, 'missing')), 0);
});

test('bindMount read-only, also recursively', () => {
  const src = mkdir('bind-src');
  const sub = mkdir('bind-src', 'sub');
  mount('tmpfs', sub, 'tmpfs', 0, 'size=1m');
  const plain = mkdir('bind-ro'), rec = mkdir('bind-rro');
  bindMount(src, plain, { readonly: true });
  assert.throws(() => fs.writeFileSync(path.join(plain, 'f'), 'x'), /EROFS/);
  bindMount(src, rec, { readonly: true, recursive: true });
  assert.throws(() => fs.writeFileSync(path.join(rec, 'sub', 'f'), 'x'), /EROFS/);
  fs.writeFileSync(path.join(src, 'sub', 'f'), 'still writable at the source');
  assert.equal(fs.readFileSync(path.join(rec, 'sub', 'f'), 'utf8'), 'still writable at the source');
  assert.equal(unmountTree(plain) + unmountTree(rec) + unmountTree(src), 4);
});

test('removeTreeSafely unmounts first and never follows symlinks out of the tree', async () => {
  const outside = mkdir('outside');
  const sentinel = path.join(outside, 'sentinel');
  fs.writeFileSync(sentinel, 'keep me');
  const tree = mkdir('doomed', 'a', 'b');
  const root = path.join(tmp, 'doomed');
  fs.symlinkSync(outside, path.join(tree, 'link-to-dir'));
  fs.symlinkSync(sentinel, path.join(tree, 'link-to-file'));
  fs.symlinkSync('../../../outside', path.join(tree, 'relative-link'));
  // A bind mount of the outside dir: rm -rf without unmounting would empty it.
  const bound = mkdir('doomed', 'bound');
  bindMount(outside, bound);
  const tm = mkdir('doomed', 'tmpfs');
  mount('tmpfs', tm, 'tmpfs', 0, 'size=1m');
  fs.writeFileSync(path.join(tm, 'f'), 'x');
  await removeTreeSafely(root);
  assert.equal(fs.existsSync(root), false);
  assert.equal(fs.readFileSync(sentinel, 'utf8'), 'keep me');
  assert.deepEqual(mountsUnder(tmp).filter((m) => m.mountPoint.startsWith(root)), []);
  await removeTreeSafely(root); // missing is fine
});

test('removeTreeSafely refuses dangerous paths', async () => {
  for (const p of ['/', '/tmp', '/usr']) {
    await assert.rejects(removeTreeSafely(p), (e: unknown) => isHutchError(e, 'EPERM'), p);
  }
  for (const p of ['relative/dir', '/tmp/../etc/x', '/tmp/x/', '/tmp//x', '']) {
    await assert.rejects(removeTreeSafely(p), (e: unknown) => isHutchError(e, 'EINVAL'), p);
  }
  const real = mkdir('real');
  fs.writeFileSync(path.join(real, 'f'), 'x');
  const link = path.join(tmp, 'link');
  fs.symlinkSync(real, link);
  await assert.rejects(removeTreeSafely(path.join(link, 'f')), (e: unknown) => isHutchError(e, 'EPERM'));
  await assert.rejects(removeTreeSafely(link), (e: unknown) => isHutchError(e, 'EPERM'));
  assert.ok(fs.existsSync(path.join(real, 'f')));
});

test('overlay options must fit one page and use plain paths', () => {
  const target = path.join(tmp, 'ov');
  assert.equal(overlayOptions({ lowerDirs: ['/a', '/b'], target }), 'lowerdir=/a:/b');
  assert.equal(overlayOptions({ lowerDirs: ['/a'], upperDir: '/u', workDir: '/w', target, extraOptions: ['xino=off'] }),
    'lowerdir=/a,upperdir=/u,workdir=/w,xino=off');
  const many = Array.from({ length: 80 }, (_, i) => `/var/lib/hutch/images/layers/sha256-${'0'.repeat(40)}${i}/fs`);
  assert.throws(() => overlayOptions({ lowerDirs: many, upperDir: '/u', workDir: '/w', target }), (e: unknown) => {
    assert.ok(isHutchError(e, 'EINVAL'));
    assert.equal(e.path, target);
    assert.match(e.message, /80 lower dirs.*4096/);
    return true;
  });
  assert.throws(() => overlayOptions({ lowerDirs: ['/a:b'], upperDir: '/u', workDir: '/w', target }), /contains/);
  assert.throws(() => overlayOptions({ lowerDirs: ['/a'], target }), /2 or more/);
  assert.throws(() => overlayOptions({ lowerDirs: ['/a'], upperDir: '/u', target }), /go together/);
  assert.throws(() => overlayOptions({ lowerDirs: ['/a'], upperDir: '/u', workDir: '/w', target, extraOptions: ['x,upperdir=/etc'] }), /bad extra option/);
});

test('a failed mount names its target', () => {
  const target = mkdir('fail');
  assert.throws(() => mount('none', target, 'no-such-fs', 0, null), (e: unknown) => {
    assert.ok(isHutchError(e));
    assert.equal(e.path, target);
    assert.match(e.message, /ENODEV/);
    return true;
  });
});

test('an overlay of 60 layers whose absolute paths overflow a page mounts, and its mountinfo names no host path', () => {
  const layers = mkdir('many-layers-with-a-long-parent-path', 'x'.repeat(60));
  const names = Array.from({ length: 60 }, (_, i) => `${i.toString().padStart(2, '0')}${'f'.repeat(62)}`);
  const dirs = names.map((n) => mkdir(path.relative(tmp, layers), n));
  dirs.forEach((d, i) => fs.writeFileSync(path.join(d, `only-${i}`), String(i)));
  fs.writeFileSync(path.join(dirs[0]!, 'shared'), 'top');
  fs.writeFileSync(path.join(dirs[59]!, 'shared'), 'bottom');
  assert.ok(dirs.join(':').length > 4096, 'absolute lower dirs overflow the page');
  const upper = mkdir('many-upper'), work = mkdir('many-work'), merged = mkdir('many-merged');
  const cwd = process.cwd();
  mountOverlay({ lowerDirs: dirs, upperDir: upper, workDir: work, target: merged });
  try {
    assert.equal(process.cwd(), cwd, 'the working dir is unchanged');
    const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.includes(` ${merged} `))!;
    assert.ok(!line.split(' - ')[1]!.includes(tmp), `mountinfo's options show host paths: ${line}`);
    assert.match(line, /lowerdir=\/proc\/self\/fd\/\d+/);
    assert.equal(fs.readFileSync(path.join(merged, 'shared'), 'utf8'), 'top');
    assert.equal(fs.readFileSync(path.join(merged, 'only-59'), 'utf8'), '59');
    assert.equal(fs.readdirSync(merged).filter((n) => n.startsWith('only-')).length, 60);
  } finally {
    unmountTree(merged);
  }
});
