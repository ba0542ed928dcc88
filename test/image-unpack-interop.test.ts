// Layers made by other tools: GNU tar's formats unpack to the same tree GNU tar itself extracts;
// and a large layer streams through with bounded memory (backpressure, no whole-entry buffers).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { unpackLayer } from '../src/image/unpack/index.js';
import { lgetxattr, lsetxattr, mknod, S_IFIFO } from '../src/linux/index.js';
import { tarHeader, TAR_END } from './image/tar-kit.js';
import './suite-run.js'; // marks the processes this file starts as this run's (test/suite-run.ts)

const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-unpack-interop-')));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A source tree with what layers hold: modes, owners, times, links of both kinds, fifos, long names, xattrs. */
function makeTree(root: string): void {
  const p = (rel: string): string => path.join(root, rel);
  fs.mkdirSync(p('etc/ssl/certs'), { recursive: true });
  fs.mkdirSync(p('tmp'));
  fs.chmodSync(p('tmp'), 0o1777);
  fs.mkdirSync(p('empty'));
  fs.writeFileSync(p('etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
  fs.writeFileSync(p('etc/ssl/certs/ca.pem'), 'PEM\n'.repeat(2000));
  fs.mkdirSync(p('bin'));
  fs.writeFileSync(p('bin/busybox'), Buffer.alloc(300_000, 7));
  fs.chmodSync(p('bin/busybox'), 0o4755);
  fs.linkSync(p('bin/busybox'), p('bin/ls'));
  fs.symlinkSync('busybox', p('bin/sh'));
  fs.symlinkSync('/etc/ssl/certs/ca.pem', p('etc/ca.pem'));
  mknod(p('etc/initctl'), S_IFIFO | 0o600);
  fs.mkdirSync(p('home/user'), { recursive: true });
  fs.writeFileSync(p('home/user/.profile'), 'export A=1\n');
  fs.chownSync(p('home/user/.profile'), 1000, 1000);
  fs.chownSync(p('home/user'), 1000, 1000);
  const long = p(`opt/${'long-directory-name-'.repeat(6)}/${'f'.repeat(120)}.txt`);
  fs.mkdirSync(path.dirname(long), { recursive: true });
  fs.writeFileSync(long, 'long\n');
  fs.symlinkSync(`../${'t'.repeat(130)}`, p('opt/longlink'));
  fs.writeFileSync(p('xattr'), 'x');
  lsetxattr(p('xattr'), 'user.mime_type', Buffer.from('text/plain'));
  for (const [i, rel] of ['etc/passwd', 'bin/busybox', 'bin/sh', 'home/user/.profile'].entries()) {
    fs.lutimesSync(p(rel), 1_500_000_000 + i, 1_500_000_000 + i);
  }
  fs.utimesSync(p('etc'), 1_400_000_000, 1_400_000_000);
}

/** path → a line describing it (type, mode, owner, size, mtime, link target, content hash, hard link group, user xattr). */
function describeTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const firstByInode = new Map<number, string>();
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(root, r);
      const st = fs.lstatSync(abs);
      const first = firstByInode.get(st.ino) ?? r;
      firstByInode.set(st.ino, first);
      out.set(r, [
        st.mode.toString(8), st.uid, st.gid, st.isDirectory() ? '-' : st.size, Math.floor(st.mtimeMs / 1000),
        st.isSymbolicLink() ? fs.readlinkSync(abs) : '',
        st.isFile() ? createHash('sha256').update(fs.readFileSync(abs)).digest('hex').slice(0, 12) : '',
        first === r ? '' : `=${first}`,
        st.isFile() ? lgetxattr(abs, 'user.mime_type')?.toString() ?? '' : '',
      ].join(' '));
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

const src = path.join(tmp, 'src');
fs.mkdirSync(src);
makeTree(src);

for (const [format, flags] of [['gnu', ['-z']], ['posix', ['--zstd', '--xattrs']], ['posix', ['--xattrs']]] as const) {
  test(`a layer from GNU tar --format=${format} ${flags.join(' ')} unpacks as GNU tar extracts it`, async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'case-'));
    const blob = path.join(dir, 'blob');
    execFileSync('tar', [`--format=${format}`, ...flags, '-cf', blob, '-C', src, '.']);
    const byTar = path.join(dir, 'tar');
    fs.mkdirSync(byTar);
    execFileSync('tar', ['-xpf', blob, '--numeric-owner', '--xattrs', '--xattrs-include=user.*', '-C', byTar]);
    const ours = path.join(dir, 'ours');
    // With base 0 the ids stay as they are, so the two trees compare directly.
    const result = await unpackLayer(blob, ours, { ids: { uidBase: 0, gidBase: 0, size: 65536 }, lowerDirs: [] });
    const expected = describeTree(byTar);
    assert.deepEqual(describeTree(ours), expected);
    assert.equal(result.entries, expected.size + 1, 'every path, and ./');
    assert.equal(describeTree(ours).get('xattr')?.endsWith('text/plain'), (flags as readonly string[]).includes('--xattrs'));
    assert.deepEqual(result.skipped, []);
  });
}

test('a 100 MB layer streams through with bounded memory', async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'big-'));
  const size = 100 * 1024 * 1024;
  const head = path.join(dir, 'head');
  const end = path.join(dir, 'end');
  fs.writeFileSync(head, tarHeader({ name: 'big.bin', typeflag: '0', size }));
  fs.writeFileSync(end, TAR_END);
  const blob = path.join(dir, 'blob');
  // Made by a pipeline, so this process never holds the 100 MB either.
  const made = spawnSync('sh', ['-c', `{ cat "$1"; head -c ${size} /dev/zero | tr '\\0' x; cat "$2"; } | tee "$3.tar" | zstd -q -1 -o "$3"; sha256sum < "$3.tar"; rm "$3.tar"`, 'sh', head, end, blob], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const diffId = `sha256:${made.stdout.split(' ')[0]}`;
  let peak = 0;
  const base = process.memoryUsage().rss;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss - base); }, 10);
  try {
    const result = await unpackLayer(blob, path.join(dir, 'root'), { ids: { uidBase: 0, gidBase: 0, size: 65536 }, lowerDirs: [], diffId });
    assert.equal(result.bytes, size + 512 + 1024);
  } finally {
    clearInterval(sampler);
  }
  assert.equal(fs.statSync(path.join(dir, 'root/big.bin')).size, size);
  assert.ok(peak < 64 * 1024 * 1024, `memory grew by ${Math.round(peak / 1048576)} MB while unpacking`);
  fs.rmSync(dir, { recursive: true });
});
