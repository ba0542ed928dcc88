// File calls against the real agent: every operation and its errors.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { isHutchError } from '../src/errors.js';
import type { AgentClient } from '../src/agent/index.js';
import { startAgent, type TestAgent } from './agent-harness.test.js';

let agent: TestAgent;
let c: AgentClient;
let root: string;

before(async () => {
  agent = await startAgent();
  c = await agent.connect();
  root = path.join(agent.dir, 'files');
  fs.mkdirSync(root);
});
after(async () => {
  c.close();
  await agent.stop();
});

const code = (want: string, p?: string) => (e: unknown) => isHutchError(e) && e.code === want && (p === undefined || e.path === p);

test('writeFile then readFile: small, multi-chunk, ranges, append, mode', { timeout: 60_000 }, async () => {
  const small = path.join(root, 'small.txt');
  assert.equal(await c.writeFile(small, 'hello'), 5);
  assert.equal((await c.readFile(small)).toString(), 'hello');
  assert.equal(await c.writeFile(small, ' world', { append: true }), 6);
  assert.equal(fs.readFileSync(small, 'utf8'), 'hello world');
  assert.equal((await c.readFile(small, { offset: 6, length: 3 })).toString(), 'wor');
  assert.equal((await c.readFile(small, { offset: 100 })).length, 0);

  const big = randomBytes(3 * 1024 * 1024 + 17);
  const bigPath = path.join(root, 'big.bin');
  assert.equal(await c.writeFile(bigPath, big, { mode: 0o600 }), big.length);
  assert.equal(fs.statSync(bigPath).mode & 0o777, 0o600);
  assert.ok((await c.readFile(bigPath)).equals(big));
  await assert.rejects(c.readFile(bigPath, { maxBytes: 1024 * 1024 }), code('EINVAL', bigPath));

  const parts: Buffer[] = [];
  for await (const chunk of c.createReadStream(bigPath, { offset: 1000 })) parts.push(chunk as Buffer);
  assert.ok(Buffer.concat(parts).equals(big.subarray(1000)));

  // A stream in many small pieces, replacing the old content.
  const pieces = Array.from({ length: 300 }, (_, i) => Buffer.alloc(4000, i & 0xff));
  assert.equal(await c.writeFile(bigPath, Readable.from(pieces)), 1_200_000);
  assert.ok(fs.readFileSync(bigPath).equals(Buffer.concat(pieces)));
  assert.equal(await c.writeFile(bigPath, Buffer.alloc(0)), 0);
  assert.equal(fs.statSync(bigPath).size, 0);
});

test('readFile/writeFile errors carry the path', { timeout: 60_000 }, async () => {
  const missing = path.join(root, 'missing');
  await assert.rejects(c.readFile(missing), code('ENOTFOUND', missing));
  await assert.rejects(c.readFile(root), code('EINVAL', root));
  await assert.rejects(c.writeFile(path.join(missing, 'x'), 'x'), code('ENOTFOUND', path.join(missing, 'x')));
  await assert.rejects(c.readFile('relative/path'), (e) => isHutchError(e, 'EINVAL') && /absolute/.test(e.message));
  await assert.rejects(c.readFile(`${root}/a\0b`), code('EINVAL'));
  // A FIFO would block a plain open or read: it is refused at once, both ways.
  const fifo = path.join(root, 'fifo');
  execFileSync('mkfifo', [fifo]);
  await assert.rejects(c.readFile(fifo), (e) => isHutchError(e, 'EINVAL') && e.message === `readFile ${fifo}: a fifo, not a regular file`);
  // Writing to one without a reader fails to open (ENXIO): said as what it is, not as the errno.
  await assert.rejects(c.writeFile(fifo, 'x'), (e) => isHutchError(e, 'EINVAL') && e.message === `writeFile ${fifo}: a fifo, not a regular file`);
  await assert.rejects(c.readFile('/dev/null'), (e) => isHutchError(e, 'EINVAL') && /a character device, not a regular file/.test(e.message));
  fs.rmSync(fifo);
});

test('paths are normalised', { timeout: 60_000 }, async () => {
  fs.writeFileSync(path.join(root, 'norm.txt'), 'n');
  assert.equal((await c.readFile(`${root}/./sub/../norm.txt`)).toString(), 'n');
  assert.equal((await c.stat(`${root}//norm.txt`)).size, 1);
});

test('list: sorted entries with types, paging past 1000, errors', { timeout: 60_000 }, async () => {
  const dir = path.join(root, 'many');
  fs.mkdirSync(dir);
  for (let i = 0; i < 2500; i++) fs.writeFileSync(path.join(dir, `f${String(i).padStart(4, '0')}`), '');
  fs.mkdirSync(path.join(dir, 'zdir'));
  fs.symlinkSync('f0000', path.join(dir, 'zlink'));
  const entries = await c.list(dir);
  assert.equal(entries.length, 2502);
  assert.equal(entries[0]!.name, 'f0000');
  assert.deepEqual(entries.slice(-2).map((e) => [e.name, e.type]), [['zdir', 'dir'], ['zlink', 'symlink']]);
  assert.equal(entries[0]!.type, 'file');
  await assert.rejects(c.list(dir, { maxEntries: 100 }), code('EINVAL', dir));
  await assert.rejects(c.list(path.join(root, 'nope')), code('ENOTFOUND', path.join(root, 'nope')));
  await assert.rejects(c.list(path.join(dir, 'f0001')), code('EINVAL'));
  fs.rmSync(dir, { recursive: true });
});

test('stat: the link itself unless follow', { timeout: 60_000 }, async () => {
  const target = path.join(root, 'target.txt');
  const link = path.join(root, 'link');
  fs.writeFileSync(target, 'abc');
  fs.symlinkSync(target, link);
  const l = await c.stat(link);
  assert.equal(l.type, 'symlink');
  assert.equal(l.linkTarget, target);
  const f = await c.stat(link, { follow: true });
  assert.equal(f.type, 'file');
  assert.equal(f.size, 3);
  assert.equal(f.linkTarget, null);
  assert.equal((await c.stat(root)).type, 'dir');
  await assert.rejects(c.stat(path.join(root, 'nope')), code('ENOTFOUND'));
  fs.symlinkSync(path.join(root, 'dangling-target'), path.join(root, 'dangling'));
  assert.equal((await c.stat(path.join(root, 'dangling'))).type, 'symlink');
  await assert.rejects(c.stat(path.join(root, 'dangling'), { follow: true }), code('ENOTFOUND'));
});

test('mkdir: plain, existing, parents, missing parent, mode', { timeout: 60_000 }, async () => {
  const d = path.join(root, 'd1');
  await c.mkdir(d, { mode: 0o700 });
  assert.equal(fs.statSync(d).mode & 0o777, 0o700);
  await assert.rejects(c.mkdir(d), code('EEXIST', d));
  await c.mkdir(d, { parents: true }); // existing is fine with parents
  await c.mkdir(path.join(root, 'p/q/r'), { parents: true });
  assert.ok(fs.statSync(path.join(root, 'p/q/r')).isDirectory());
  await assert.rejects(c.mkdir(path.join(root, 'x/y')), code('ENOTFOUND'));
});

test('remove: file, symlink (not its target), empty dir, tree, errors', { timeout: 60_000 }, async () => {
  const f = path.join(root, 'rm-file');
  fs.writeFileSync(f, 'x');
  const link = path.join(root, 'rm-link');
  fs.symlinkSync(f, link);
  await c.remove(link);
  assert.ok(fs.existsSync(f) && !fs.existsSync(link));
  await c.remove(f);
  assert.ok(!fs.existsSync(f));
  const tree = path.join(root, 'rm-tree');
  fs.mkdirSync(path.join(tree, 'a/b'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'a/b/c'), 'x');
  await assert.rejects(c.remove(tree), (e) => isHutchError(e, 'EINVAL') && e.path === tree && /ENOTEMPTY/.test(e.message));
  await c.remove(tree, { recursive: true });
  assert.ok(!fs.existsSync(tree));
  const empty = path.join(root, 'rm-empty');
  fs.mkdirSync(empty);
  await c.remove(empty);
  await assert.rejects(c.remove(empty), code('ENOTFOUND', empty));
  await assert.rejects(c.remove('/'), code('EINVAL', '/'));
  await assert.rejects(c.remove('/..'), code('EINVAL', '/'));
});

test('a multi-chunk write that fails midway leaves the old file whole; one that ends replaces it through a link, keeping its mode', { timeout: 60_000 }, async () => {
  const dir = path.join(root, 'staged');
  fs.mkdirSync(dir);
  const target = path.join(dir, 'keep.txt');
  fs.writeFileSync(target, 'the old content');
  fs.chmodSync(target, 0o600);
  const failing = async function* () {
    yield randomBytes(600 * 1024);
    yield randomBytes(600 * 1024); // two chunks reached the agent by now
    throw new Error('the upload was cut');
  };
  await assert.rejects(c.writeFile(target, failing()), /the upload was cut/);
  assert.equal(fs.readFileSync(target, 'utf8'), 'the old content');
  assert.deepEqual(fs.readdirSync(dir), ['keep.txt'], 'no staged file left behind');
  // Through a symlink, as a plain write goes: the link stays, its target gets the content and keeps its mode.
  fs.symlinkSync('keep.txt', path.join(dir, 'link'));
  const big = randomBytes(1536 * 1024 + 5);
  assert.equal(await c.writeFile(path.join(dir, 'link'), Readable.from([big])), big.length);
  assert.ok(fs.lstatSync(path.join(dir, 'link')).isSymbolicLink());
  assert.ok(fs.readFileSync(target).equals(big));
  assert.equal(fs.statSync(target).mode & 0o777, 0o600);
  assert.equal(await c.writeFile(target, Readable.from([big]), { mode: 0o640 }), big.length);
  assert.equal(fs.statSync(target).mode & 0o777, 0o640, 'a given mode wins');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['keep.txt', 'link']);
  // Over a directory: refused, nothing staged left.
  fs.mkdirSync(path.join(dir, 'sub'));
  await assert.rejects(c.writeFile(path.join(dir, 'sub'), Readable.from([big])), code('EINVAL'));
  assert.deepEqual(fs.readdirSync(dir).sort(), ['keep.txt', 'link', 'sub']);
});

test('rename: a file over another, a dir, a missing source, /', { timeout: 60_000 }, async () => {
  const a = path.join(root, 'ren-a');
  const b = path.join(root, 'ren-b');
  fs.writeFileSync(a, 'A');
  fs.writeFileSync(b, 'B');
  await c.rename(a, b);
  assert.equal(fs.readFileSync(b, 'utf8'), 'A', 'the file at the target is replaced (rename(2))');
  assert.ok(!fs.existsSync(a));
  const d = path.join(root, 'ren-dir');
  fs.mkdirSync(path.join(d, 'inner'), { recursive: true });
  await c.rename(d, path.join(root, 'ren-dir2'));
  assert.ok(fs.statSync(path.join(root, 'ren-dir2', 'inner')).isDirectory());
  await assert.rejects(c.rename(path.join(root, 'nope'), path.join(root, 'x')), code('ENOTFOUND'));
  await assert.rejects(c.rename('/', path.join(root, 'x')), code('EINVAL'));
  await assert.rejects(c.rename(b, path.join(root, 'no/such/dir/x')), code('ENOTFOUND'));
});
