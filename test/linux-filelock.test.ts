import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileLock } from '../src/linux/index.js';
import { isHutchError } from '../src/errors.js';
import './suite-run.js'; // marks the processes this file starts as this run's (test/suite-run.ts)

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-lock-test-'));
const children = new Set<ChildProcess>();
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) { c.kill('SIGKILL'); await once(c, 'exit'); }
  fs.rmSync(tmp, { recursive: true, force: true });
});

const INDEX_URL = new URL('../src/linux/index.js', import.meta.url).href;

/** Starts a node process that takes the lock and says "locked" on stdout, then holds it until killed. */
async function holdInChild(file: string, mode: 'shared' | 'exclusive'): Promise<ChildProcess> {
  const script = `const { FileLock } = await import(${JSON.stringify(INDEX_URL)});
    globalThis.lock = await FileLock.acquire(${JSON.stringify(file)}, ${JSON.stringify(mode)}, { timeoutMs: 5000 });
    process.stdout.write('locked\\n'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  assert.equal(chunk.toString().trim(), 'locked');
  return child;
}

test('shared locks coexist; exclusive conflicts with shared in one process', async () => {
  const file = path.join(tmp, 'a.lock');
  const s1 = await FileLock.acquire(file, 'shared', { timeoutMs: 100 });
  const s2 = FileLock.tryAcquire(file, 'shared');
  assert.ok(s2, 'second shared lock');
  assert.equal(FileLock.tryAcquire(file, 'exclusive'), null);
  s1.release();
  s2.release();
  s2.release(); // twice is harmless
  const ex = FileLock.tryAcquire(file, 'exclusive');
  assert.ok(ex);
  ex.release();
});

test('acquire gives up with ELOCKED naming the id and path', async () => {
  const file = path.join(tmp, 'b.lock');
  const held = await FileLock.acquire(file, 'shared', { timeoutMs: 0 });
  const start = Date.now();
  await assert.rejects(FileLock.acquire(file, 'exclusive', { timeoutMs: 120, id: 'sb-1' }), (e: unknown) => {
    assert.ok(isHutchError(e, 'ELOCKED'));
    assert.equal(e.id, 'sb-1');
    assert.equal(e.path, file);
    assert.match(e.message, /sb-1/);
    return true;
  });
  const waited = Date.now() - start;
  assert.ok(waited >= 110 && waited < 3000, `waited ${waited} ms`);
  held.release();
});

test('a waiting acquire gets the lock soon after it is released', async () => {
  const file = path.join(tmp, 'c.lock');
  const held = FileLock.tryAcquire(file, 'exclusive')!;
  setTimeout(() => held.release(), 30);
  const start = Date.now();
  const got = await FileLock.acquire(file, 'exclusive', { timeoutMs: 2000 });
  assert.ok(Date.now() - start < 1000);
  assert.ok(got.held);
  got[Symbol.dispose]();
  assert.equal(got.held, false);
});

test('locks conflict across processes and die with their process', async () => {
  const file = path.join(tmp, 'd.lock');
  const child = await holdInChild(file, 'exclusive');
  assert.equal(FileLock.tryAcquire(file, 'shared'), null);
  await assert.rejects(FileLock.acquire(file, 'shared', { timeoutMs: 50 }), (e: unknown) => isHutchError(e, 'ELOCKED'));
  child.kill('SIGKILL');
  await once(child, 'exit');
  const mine = await FileLock.acquire(file, 'exclusive', { timeoutMs: 1000 });
  mine.release();
});

test('shared across processes', async () => {
  const file = path.join(tmp, 'e.lock');
  const child = await holdInChild(file, 'shared');
  const mine = FileLock.tryAcquire(file, 'shared');
  assert.ok(mine);
  mine.release();
  assert.equal(FileLock.tryAcquire(file, 'exclusive'), null);
  child.kill('SIGKILL');
  await once(child, 'exit');
});

test('a symlink in place of the lock file is refused', () => {
  const target = path.join(tmp, 'target');
  fs.writeFileSync(target, '');
  const link = path.join(tmp, 'link.lock');
  fs.symlinkSync(target, link);
  assert.throws(() => FileLock.tryAcquire(link, 'shared'), (e: unknown) => isHutchError(e, 'EPERM'));
  assert.throws(() => FileLock.tryAcquire(path.join(tmp, 'nodir', 'x.lock'), 'shared'), (e: unknown) => isHutchError(e, 'ENOTFOUND'));
});

test('isAtPath: true while the locked file is the one at its path; not once it is removed or replaced', async () => {
  const file = path.join(tmp, 'at-path.lock');
  const lock = await FileLock.acquire(file, 'exclusive', { timeoutMs: 1000 });
  assert.equal(lock.isAtPath(), true);
  fs.rmSync(file);
  assert.equal(lock.isAtPath(), false, 'removed');
  fs.writeFileSync(file, '');
  assert.equal(lock.isAtPath(), false, 'another file at the same path');
  lock.release();
  assert.equal(lock.isAtPath(), false, 'released');
  const again = FileLock.tryAcquire(file, 'exclusive');
  assert.ok(again !== null && again.isAtPath());
  again.release();
});
