// Hostile layers: each is refused with an error that names the entry (or where the stream broke),
// nothing is written outside the target, and no temp dir or target is left behind.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { unpackLayer, type UnpackOptions } from '../src/image/unpack/index.js';
import { isHutchError, type ErrorCode } from '../src/errors.js';
import {
  compress, entryBlocks, metaEntry, paxRecords, tarHeader, tarOf, TAR_END, type Compression, type LayerEntry,
} from './image/tar-kit.js';
import './suite-run.js'; // marks the processes this file starts as this run's (test/suite-run.ts)

const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-unpack-hostile-')));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ids = { uidBase: 1_000_000_000, gidBase: 1_000_000_000, size: 65536 };
const etcPasswd = fs.statSync('/etc/passwd');
let n = 0;

/**
 * Unpacks `layer` (entries, or raw tar bytes) into <case>/store/layer and insists it is refused with
 * `code` and a message matching `message`; then checks that the store is empty and the sentinel
 * beside it untouched.
 */
async function refused(layer: LayerEntry[] | Buffer, code: ErrorCode, message: RegExp, opts: { compression?: Compression; unpack?: Partial<UnpackOptions>; raw?: boolean } = {}): Promise<void> {
  const dir = path.join(tmp, `case-${n++}`);
  const store = path.join(dir, 'store');
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(store, { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'sentinel'), 'untouched');
  const tar = Buffer.isBuffer(layer) ? layer : tarOf(layer);
  const blob = path.join(dir, 'blob');
  fs.writeFileSync(blob, opts.raw ? tar : compress(tar, opts.compression ?? 'gzip'));
  const fdsBefore = openFds();
  await assert.rejects(unpackLayer(blob, path.join(store, 'layer'), { ids, lowerDirs: [], name: 'L', ...opts.unpack }), (e: unknown) => {
    assert.ok(isHutchError(e), `not a HutchError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
  assert.deepEqual(openFds(), fdsBefore, 'no fd left open');
  assert.deepEqual(fs.readdirSync(store), [], 'no target and no temp dir left');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['blob', 'outside', 'store']);
  assert.deepEqual(fs.readdirSync(outside), ['sentinel']);
  assert.equal(fs.readFileSync(path.join(outside, 'sentinel'), 'utf8'), 'untouched');
  const passwd = fs.statSync('/etc/passwd');
  assert.equal(passwd.mtimeMs, etcPasswd.mtimeMs, '/etc/passwd untouched');
  assert.equal(passwd.ino, etcPasswd.ino);
  fs.rmSync(dir, { recursive: true });
}

const file = (name: string, content = 'evil'): LayerEntry => ({ name, content });

/** This process's open fds and what they are (but /dev/null, which the first spawn opens for good). */
function openFds(): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const what = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (what !== '/dev/null') out.push(`${fd} ${what}`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // ENOENT: the fd readdir itself used, closed by now
    }
  }
  return out;
}

test('names that climb out or are absolute are refused', async () => {
  await refused([file('ok'), file('../x')], 'EPERM', /^layer L: entry "\.\.\/x" name has a "\.\." component: refused/);
  await refused([file('/etc/x')], 'EPERM', /^layer L: entry "\/etc\/x" name is absolute: refused/);
  await refused([file('a/../../x')], 'EPERM', /entry "a\/\.\.\/\.\.\/x" name has a "\.\." component/);
  await refused([file('a/b/..')], 'EPERM', /entry "a\/b\/\.\." name has a "\.\." component/);
  await refused([{ name: 'dir/../../outside/' }], 'EPERM', /entry "dir\/\.\.\/\.\.\/outside\/"/);
  await refused([{ name: 'x', pax: { path: '../../outside/sentinel' }, content: 'evil' }], 'EPERM', /entry "\.\.\/\.\.\/outside\/sentinel"/);
  await refused([{ name: 'x', longNames: 'gnu', content: 'e' }, { name: `../${'l'.repeat(120)}`, longNames: 'gnu', content: 'e' }], 'EPERM', /entry "\.\.\/l+" name has a "\.\." component/);
  assert.ok(!fs.existsSync('/etc/x'));
});

test('names with a NUL, over PATH_MAX or with an over-long component are refused', async () => {
  await refused([{ name: 'x', pax: { path: 'a\0b' } }], 'EINVAL', /entry "a\\u0000b" name holds a NUL byte/);
  const tooLong = Array.from({ length: 20 }, () => 'd'.repeat(250)).join('/');
  await refused([{ name: tooLong, content: 'x' }], 'EINVAL', /name is over 4095 bytes: refused/);
  await refused([{ name: `a/${'c'.repeat(256)}`, content: 'x' }], 'EINVAL', /name has a component over 255 bytes/);
  await refused([{ name: '.', type: 'file', content: 'x' }], 'EPERM', /entry "\." is the layer root but not a directory/);
});

test('writing through a symlink is refused, whatever the symlink points at', async () => {
  await refused([{ name: 'link', type: 'symlink', linkname: '/' }, file('link/etc/passwd')], 'EPERM',
    /^layer L: entry "link\/etc\/passwd" goes through the symlink "link": refused/);
  await refused([{ name: 'up', type: 'symlink', linkname: '..' }, file('up/outside/sentinel')], 'EPERM', /entry "up\/outside\/sentinel" goes through the symlink "up"/);
  await refused([{ name: 'a/', type: 'dir' }, { name: 'a/b', type: 'symlink', linkname: '../../outside' }, file('a/b/sentinel')], 'EPERM', /goes through the symlink "a\/b"/);
  // A dir replaced by a symlink, then a file below the old dir's name.
  await refused([{ name: 'd/' }, file('d/x', 'fine'), { name: 'd', type: 'symlink', linkname: '/tmp' }, file('d/y')], 'EPERM', /entry "d\/y" goes through the symlink "d"/);
  // A whole tree replaced by a symlink: none of its old dirs may still be trusted.
  await refused([{ name: 'd/' }, { name: 'd/sub/' }, { name: 'd/sub/deeper/' }, file('d/sub/f', 'fine'),
    { name: 'd', type: 'symlink', linkname: '../../outside' }, file('d/sub/deeper/x')], 'EPERM', /entry "d\/sub\/deeper\/x" goes through the symlink "d"/);
  await refused([{ name: 'd/sub/' }, file('d', 'now a file'), { name: 'd', type: 'symlink', linkname: '/' }, { name: 'd/sub/.wh..wh..opq' }], 'EPERM', /goes through the symlink "d"/);
  // The same for a dir entry, a fifo and a whiteout below the symlink.
  await refused([{ name: 's', type: 'symlink', linkname: '/etc' }, { name: 's/sub/' }], 'EPERM', /entry "s\/sub\/" goes through the symlink "s"/);
  await refused([{ name: 's', type: 'symlink', linkname: '/tmp' }, { name: 's/p', type: 'fifo' }], 'EPERM', /entry "s\/p" goes through the symlink "s"/);
  await refused([{ name: 's', type: 'symlink', linkname: '/etc' }, { name: 's/.wh.passwd' }], 'EPERM', /entry "s\/.wh.passwd" goes through the symlink "s"/);
  await refused([{ name: 's', type: 'symlink', linkname: '/etc' }, { name: 's/.wh..wh..opq' }], 'EPERM', /entry "s\/.wh..wh..opq" goes through the symlink "s"/);
  await refused([file('f', 'plain'), file('f/x')], 'EPERM', /entry "f\/x" goes through "f", which is not a directory/);
});

test('hard links out of the layer or through symlinks are refused', async () => {
  await refused([{ name: 'h', type: 'link', linkname: '/etc/passwd' }], 'EPERM', /^layer L: entry "h" has a hard link target "\/etc\/passwd" is absolute: refused/);
  await refused([{ name: 'h', type: 'link', linkname: '../..' }], 'EPERM', /entry "h" has a hard link target "\.\.\/\.\." has a "\.\." component/);
  await refused([{ name: 'h', type: 'link', linkname: 'a/../../../etc/passwd' }], 'EPERM', /entry "h" has a hard link target .* has a "\.\." component/);
  await refused([{ name: 'l', type: 'symlink', linkname: '/etc' }, { name: 'h', type: 'link', linkname: 'l/passwd' }], 'EPERM',
    /entry "h" refers to "l\/passwd" through the symlink "l": refused/);
  await refused([{ name: 'l', type: 'symlink', linkname: '/etc/passwd' }, { name: 'h', type: 'link', linkname: 'h' }], 'EINVAL', /entry "h" is a hard link to "h", itself or the root/);
  await refused([{ name: 'd/' }, { name: 'h', type: 'link', linkname: 'd' }], 'EPERM', /entry "h" is a hard link to the directory "d"/);
  await refused([{ name: '.wh...' }], 'EPERM', /entry "\.wh\.\.\." is a whiteout of "\.\.": refused/);
});

test('a header declaring a 100 GB file with no data fails as truncated, without allocating it', async () => {
  const before = process.memoryUsage().rss;
  await refused([{ name: 'huge', declaredSize: 100e9 }], 'EINTEGRITY', /^layer L is truncated at entry "huge"/);
  await refused([{ name: 'huge', pax: { size: String(100e9) } }], 'EINTEGRITY', /is truncated at entry "huge"/, { compression: 'zstd' });
  await refused([{ name: 'huge', declaredSize: 100e9 }], 'EINTEGRITY', /is truncated at entry "huge"/, { compression: 'none', raw: true });
  // Sizes no file has (base-256 past 2^53) are refused as such.
  const header = tarHeader({ name: 'x', typeflag: '0', size: 2 ** 80 });
  await refused(Buffer.concat([header, TAR_END]), 'EINTEGRITY', /has a size too large to be real at offset 0/);
  assert.ok(process.memoryUsage().rss - before < 200 * 1024 * 1024, 'no big allocation');
});

test('truncated and corrupt streams are refused with where they broke', async () => {
  const tar = tarOf([file('a', 'x'.repeat(3000)), file('b', 'y'.repeat(70_000)), file('c', 'z')]);
  const gz = compress(tar, 'gzip');
  await refused(gz.subarray(0, gz.length - 20), 'EINTEGRITY', /^layer L is truncated or corrupt: gzip: unexpected end of file \((at|after) entry/, { raw: true });
  await refused(gz.subarray(0, 20), 'EINTEGRITY', /^layer L is truncated or corrupt: gzip/, { raw: true });
  const zst = compress(tar, 'zstd');
  await refused(zst.subarray(0, zst.length - 10), 'EINTEGRITY', /^layer L is truncated or corrupt: zstd: Read error \(\d+\) : premature end \(at the start\)$/, { raw: true });
  await refused(tar.subarray(0, 5000), 'EINTEGRITY', /^layer L is truncated at entry "b" \(offset 5000\)$/, { raw: true });
  await refused(tar.subarray(0, 4000), 'EINTEGRITY', /^layer L is truncated after entry "a" \(offset 4000\)$/, { raw: true });
  await refused(tar.subarray(0, tar.length - TAR_END.length), 'EINTEGRITY', /^layer L is truncated after entry "c" \(no end-of-archive marker\)/, { raw: true });
  await refused(tar.subarray(0, 4096 + 100), 'EINTEGRITY', /is truncated/, { raw: true });
  const flipped = Buffer.from(gz);
  flipped[Math.floor(gz.length / 2)]! ^= 0xff;
  await refused(flipped, 'EINTEGRITY', /^layer L is truncated or corrupt: gzip: /, { raw: true });
  await refused(randomBytes(8192), 'EINTEGRITY', /^layer L is not a tar archive \(bad header checksum at offset 0\)/, { raw: true });
  await refused(Buffer.alloc(0), 'EINTEGRITY', /^layer L is empty/, { raw: true });
  const badSum = Buffer.concat([entryBlocks(file('a')), tarHeader({ name: 'b', typeflag: '0', badChecksum: true }), TAR_END]);
  await refused(badSum, 'EINTEGRITY', /is corrupt: bad tar header checksum at offset 1024, after entry "a"/);
  await refused(Buffer.concat([metaEntry('x', paxRecords({ path: 'p' })), TAR_END]), 'EINTEGRITY', /ends right after a pax\/GNU header/);
});

test('pax headers claiming huge lengths or lying about records are refused', async () => {
  await refused(Buffer.concat([tarHeader({ name: 'pax', typeflag: 'x', size: 2 ** 40 }), TAR_END]), 'EINVAL',
    /^layer L has a pax header of 1099511627776 bytes at the start \(limit 1048576\)/);
  await refused(Buffer.concat([tarHeader({ name: 'long', typeflag: 'L', size: 5 << 20 }), TAR_END]), 'EINVAL', /has a GNU long name header of 5242880 bytes/);
  await refused(Buffer.concat([metaEntry('x', Buffer.from('99999 path=x\n')), entryBlocks(file('x')), TAR_END]), 'EINTEGRITY', /malformed pax record at offset 0/);
  await refused(Buffer.concat([metaEntry('x', Buffer.from('5 a\n')), entryBlocks(file('x')), TAR_END]), 'EINTEGRITY', /malformed pax record/);
  await refused([{ name: 'x', pax: { size: '-1' } }], 'EINTEGRITY', /entry "x" has a bad pax size "-1"/);
  const run = Array.from({ length: 40 }, () => metaEntry('x', paxRecords({ comment: 'c' })));
  await refused(Buffer.concat([...run, entryBlocks(file('x')), TAR_END]), 'EINVAL', /more than 32 pax\/GNU headers in a row/);
  await refused(Buffer.concat([metaEntry('g', Buffer.from('7 a=b\n')), entryBlocks(file('x')), TAR_END]), 'EINTEGRITY', /malformed pax record/);
});

test('limits: entry count and uncompressed size; sparse files are not supported', async () => {
  const many = Array.from({ length: 11 }, (_, i) => file(`f${i}`, 'x'));
  await refused(many, 'EINVAL', /^layer L: entry "f10" is past the limit of 10 entries: refused/, { unpack: { maxEntries: 10 } });
  await refused([file('big', 'x'.repeat(100_000))], 'EINVAL', /^layer L is over the limit of 65536 bytes uncompressed/, { unpack: { maxBytes: 65536 } });
  await refused(Buffer.concat([tarHeader({ name: 'sparse', typeflag: 'S' }), TAR_END]), 'EUNSUPPORTED', /entry "sparse" is a GNU sparse file/);
  await refused([{ name: 'x', pax: { 'GNU.sparse.major': '1' } }], 'EUNSUPPORTED', /entry "x" is a GNU sparse file/);
});

test('a good layer leaves no fd open either', async () => {
  for (const compression of ['none', 'gzip', 'zstd'] as const) {
    const dir = path.join(tmp, `good-${compression}`);
    fs.mkdirSync(dir);
    const blob = path.join(dir, 'blob');
    fs.writeFileSync(blob, compress(tarOf([file('a', 'x'.repeat(100_000)), file('b')]), compression));
    const before = openFds();
    const result = await unpackLayer(blob, path.join(dir, 'root'), { ids, lowerDirs: [] });
    assert.equal(result.entries, 2);
    assert.deepEqual(openFds(), before, compression);
    fs.rmSync(dir, { recursive: true });
  }
});

test('random layers of tricky names, symlinks and links: each made or refused with a clear error, nothing outside', async () => {
  let seed = 20240601;
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const comps = ['a', 'b', 'a', 'b', '..', '.', '', '.wh.a', '.wh..wh..opq', 'outside'] as const;
  const targets = ['/', '..', '../..', '../../outside', tmp, 'a', 'a/b', '.', '/etc/passwd'] as const;
  const types = ['file', 'file', 'dir', 'symlink', 'symlink', 'link', 'fifo'] as const;
  const outcomes = new Map<string, number>();
  for (let i = 0; i < 200; i++) {
    const entries: LayerEntry[] = Array.from({ length: 1 + Math.floor(rnd() * 8) }, () => {
      const type = pick(types);
      const name = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => pick(comps)).join('/');
      const linkname = type === 'link' ? Array.from({ length: 1 + Math.floor(rnd() * 2) }, () => pick(comps)).join('/') : pick(targets);
      return { name, type, content: 'c', linkname };
    });
    const dir = path.join(tmp, `random-${i}`);
    fs.mkdirSync(path.join(dir, 'store'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'outside'));
    fs.writeFileSync(path.join(dir, 'outside', 'sentinel'), 's');
    fs.writeFileSync(path.join(dir, 'blob'), tarOf(entries));
    let outcome = 'made';
    try {
      await unpackLayer(path.join(dir, 'blob'), path.join(dir, 'store', 'layer'), { ids, lowerDirs: [] });
    } catch (e) {
      assert.ok(isHutchError(e) && e.code !== 'EINTERNAL', `${JSON.stringify(entries)}: ${String(e)}`);
      assert.match(e.message, /^layer blob: entry "[^\n]*" /);
      assert.deepEqual(fs.readdirSync(path.join(dir, 'store')), []);
      outcome = e.code;
    }
    assert.deepEqual(fs.readdirSync(dir).sort(), ['blob', 'outside', 'store'], JSON.stringify(entries));
    assert.deepEqual(fs.readdirSync(path.join(dir, 'outside')), ['sentinel'], JSON.stringify(entries));
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    fs.rmSync(dir, { recursive: true });
  }
  assert.ok((outcomes.get('made') ?? 0) > 20 && (outcomes.get('EPERM') ?? 0) > 20, JSON.stringify([...outcomes]));
  assert.equal(fs.statSync('/etc/passwd').mtimeMs, etcPasswd.mtimeMs);
});
