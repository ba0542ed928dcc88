// File watches through a real hutchd into real sandboxes: inotify in the agent (prompt, no polling:
// every watch here asks for a one-minute poll interval), recursive watches of directories made after
// the start, removal of the watched directory, symlinks out of the tree, no watcher left in the agent
// once the socket closes, and the polling fallback.
import test from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { makeRoot, cleanRoot } from './helpers.js';
import { startDaemon, type Daemon } from './server-kit.js';
import { Sandbox, Transport, type FileChange, type FileWatch } from '../src/sdk/index.js';

const root = makeRoot('watch');
let daemon: Daemon;
let t: Transport;
let sb: Sandbox;
const NO_POLL = 60_000;

test.before(async () => {
  daemon = await startDaemon(root);
  t = new Transport({ socketPath: daemon.socketPath });
  sb = await Sandbox.create({ transport: t });
});

test.after(async () => {
  await sb?.kill();
  t?.close();
  await daemon?.stop();
  await cleanRoot(root);
});

interface Seen extends FileChange { at: number }

/** Collects a watch's changes in the background; `until` waits for one matching change. */
function collect(w: FileWatch): { seen: Seen[]; done: Promise<void>; until: (kind: FileChange['kind'], p: string, ms?: number) => Promise<Seen> } {
  const seen: Seen[] = [];
  const done = (async () => { for await (const c of w) seen.push({ ...c, at: Date.now() }); })();
  done.catch(() => undefined); // a test that expects a failure awaits it
  const until = async (kind: FileChange['kind'], p: string, ms = 1500): Promise<Seen> => {
    const end = Date.now() + ms;
    for (;;) {
      const hit = seen.find((c) => c.kind === kind && c.path === p);
      if (hit) return hit;
      if (Date.now() > end) assert.fail(`no ${kind} ${p} within ${ms} ms; saw ${JSON.stringify(seen.map(({ kind: k, path }) => `${k} ${path}`))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return { seen, done, until };
}

/** The inotify watches the agent (pid 1 of the sandbox) holds, read from the host: the agent is not
 * dumpable, so its /proc/1/fdinfo is not readable from inside the sandbox. */
async function agentWatches(): Promise<number> {
  const pid = Number(readFileSync(path.join(root, 'sandboxes', sb.id, 'init.pid'), 'utf8').trim());
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    let info: string;
    try { info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // closed meanwhile
      throw e;
    }
    n += info.split('\n').filter((l) => l.startsWith('inotify wd')).length;
  }
  return n;
}

async function eventually(what: string, check: () => Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what} did not happen within ${ms} ms`);
}

test('inotify: created, modified and removed are reported promptly, without polling', async () => {
  await sb.files.mkdir('/w1');
  await sb.files.write('/w1/old.txt', 'old');
  const w = await sb.files.watch('/w1', { intervalMs: NO_POLL });
  assert.equal(w.mode, 'inotify');
  const c = collect(w);
  try {
    let t0 = Date.now();
    await sb.files.write('/w1/new.txt', 'new');
    assert.ok((await c.until('created', '/w1/new.txt')).at - t0 < 1000);
    t0 = Date.now();
    await sb.exec('echo more >> /w1/old.txt');
    assert.ok((await c.until('modified', '/w1/old.txt')).at - t0 < 1000);
    t0 = Date.now();
    await sb.files.remove('/w1/new.txt');
    assert.ok((await c.until('removed', '/w1/new.txt')).at - t0 < 1000);
    // The watched directory's own attributes are no change of its entries.
    await sb.exec('chmod 700 /w1 && touch /w1');
    // A burst is coalesced, and its last state wins: a file written 50 times shows as one creation.
    await sb.exec('for i in $(seq 50); do echo $i >> /w1/burst.txt; done');
    await c.until('created', '/w1/burst.txt');
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(c.seen.filter((s) => s.path === '/w1/burst.txt').length <= 3, JSON.stringify(c.seen));
    // Not recursive: a file in a subdirectory is not reported (the subdirectory itself is).
    await sb.files.mkdir('/w1/sub');
    await c.until('created', '/w1/sub');
    await sb.files.write('/w1/sub/deep.txt', 'x');
    await sb.exec('chmod 700 /w1/sub'); // a directory's attribute change is not a creation
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(c.seen.filter((s) => s.path === '/w1/sub').length, 1, JSON.stringify(c.seen));
    assert.ok(!c.seen.some((s) => s.path === '/w1/sub/deep.txt'));
    const expected = ['/w1/new.txt', '/w1/old.txt', '/w1/burst.txt', '/w1/sub'];
    assert.deepEqual(c.seen.filter((s) => !expected.includes(s.path)), [], 'nothing else was reported');
  } finally {
    w.close();
    await c.done;
  }
});

test('inotify, recursive: directories made after the start are watched, with what is already in them', async () => {
  await sb.files.mkdir('/w2/a', { parents: true });
  const w = await sb.files.watch('/w2', { recursive: true, intervalMs: NO_POLL });
  const c = collect(w);
  try {
    await sb.exec('chmod 700 /w2/a');
    await sb.files.write('/w2/a/one.txt', '1');
    await c.until('created', '/w2/a/one.txt');
    assert.ok(!c.seen.some((s) => s.path === '/w2/a'), JSON.stringify(c.seen));
    // Made in one go: the inner directories and the file exist before a watch on /w2/n could see them.
    await sb.exec('mkdir -p /w2/n/b/c && echo hi > /w2/n/b/c/f.txt');
    for (const p of ['/w2/n', '/w2/n/b', '/w2/n/b/c', '/w2/n/b/c/f.txt']) await c.until('created', p);
    await sb.files.write('/w2/n/b/c/later.txt', 'later');
    await c.until('created', '/w2/n/b/c/later.txt');
    await sb.exec('echo again >> /w2/n/b/c/f.txt');
    await c.until('modified', '/w2/n/b/c/f.txt');
    // Moved within the tree: gone under the old name, there (with its files) under the new one.
    await sb.exec('mv /w2/n /w2/m');
    await c.until('removed', '/w2/n');
    await c.until('created', '/w2/m/b/c/f.txt');
    await sb.files.write('/w2/m/b/after-move.txt', 'x');
    await c.until('created', '/w2/m/b/after-move.txt');
    assert.ok(!c.seen.some((s) => s.kind === 'modified' && ['/w2/a', '/w2/n', '/w2/m'].includes(s.path)), 'a directory is never modified');
  } finally {
    w.close();
    await c.done;
  }
});

test('inotify: a symlink out of the tree is reported but not followed', async () => {
  await sb.files.mkdir('/outside');
  await sb.files.mkdir('/w3/in', { parents: true });
  await sb.exec('ln -s /outside /w3/link');
  const before = await agentWatches();
  const w = await sb.files.watch('/w3', { recursive: true, intervalMs: NO_POLL });
  const c = collect(w);
  try {
    assert.equal(await agentWatches(), before + 2, 'only /w3 and /w3/in are watched');
    await sb.exec('ln -s /outside /w3/in/link2');
    await c.until('created', '/w3/in/link2');
    await sb.files.write('/outside/x.txt', 'x');
    await sb.files.write('/w3/in/y.txt', 'y');
    await c.until('created', '/w3/in/y.txt');
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!c.seen.some((s) => s.path.includes('x.txt')), JSON.stringify(c.seen));
    assert.equal(await agentWatches(), before + 2);
  } finally {
    w.close();
    await c.done;
  }
});

test('inotify: removing the watched directory reports it and ends the watch', async () => {
  await sb.files.mkdir('/w4/d', { parents: true });
  await sb.files.write('/w4/d/f', 'f');
  const w = await sb.files.watch('/w4', { recursive: true, intervalMs: NO_POLL });
  const c = collect(w);
  await sb.files.remove('/w4', { recursive: true });
  await c.until('removed', '/w4');
  await c.done; // the iteration ends: the socket closed normally
  assert.ok(c.seen.some((s) => s.kind === 'removed' && s.path === '/w4/d/f'));
  await eventually('the agent drops its watches', async () => (await agentWatches()) === 0);
});

test('inotify: a watched file, replaced by rename, stays watched', async () => {
  await sb.files.mkdir('/w5');
  await sb.files.write('/w5/conf', 'a');
  const w = await sb.files.watch('/w5/conf', { intervalMs: NO_POLL });
  const c = collect(w);
  try {
    await sb.files.write('/w5/other', 'not watched');
    await sb.exec('echo b > /w5/tmp && mv /w5/tmp /w5/conf');
    await c.until('created', '/w5/conf');
    await sb.exec('echo c >> /w5/conf');
    await c.until('modified', '/w5/conf');
    await sb.files.remove('/w5/conf');
    await c.until('removed', '/w5/conf');
    assert.ok(c.seen.every((s) => s.path === '/w5/conf'), JSON.stringify(c.seen));
  } finally {
    w.close();
    await c.done;
  }
});

test('closing the socket stops the watch in the agent; so does a client that vanishes', async () => {
  await sb.files.mkdir('/w6/a/b', { parents: true });
  assert.equal(await agentWatches(), 0);
  const w = await sb.files.watch('/w6', { recursive: true, intervalMs: NO_POLL });
  assert.equal(await agentWatches(), 3);
  w.close();
  await eventually('the agent drops the watches of a closed socket', async () => (await agentWatches()) === 0);
  // Many sockets at once, dropped without a close handshake.
  const raw = await Promise.all(Array.from({ length: 5 }, () => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(`ws+unix://${daemon.socketPath}:/v1/sandboxes/${sb.id}/files/watch?path=/w6&recursive=true`);
    ws.once('message', () => resolve(ws));
    ws.once('error', reject);
  })));
  // inotify has one watch per directory however many watches of the agent share it.
  assert.equal(await agentWatches(), 3);
  for (const ws of raw.slice(1)) ws.terminate();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await agentWatches(), 3, 'the remaining watch keeps its directories watched');
  raw[0]!.terminate();
  await eventually('the agent drops the watches of vanished clients', async () => (await agentWatches()) === 0);
});

test('polling: forced with mode=poll, and used for a path that does not exist yet', async () => {
  await sb.files.mkdir('/w7');
  const w = await sb.files.watch('/w7', { mode: 'poll', intervalMs: 100 });
  assert.equal(w.mode, 'poll');
  assert.equal(await agentWatches(), 0);
  const c = collect(w);
  try {
    await sb.files.write('/w7/p.txt', 'p');
    await c.until('created', '/w7/p.txt');
  } finally {
    w.close();
    await c.done;
  }
  const later = await sb.files.watch('/w8', { intervalMs: 100 });
  assert.equal(later.mode, 'poll');
  const c2 = collect(later);
  try {
    await sb.files.mkdir('/w8');
    await c2.until('created', '/w8');
  } finally {
    later.close();
    await c2.done;
  }
});

test('bad watches are refused: unknown mode, relative path, too many directories, inotify on a missing path', async (t) => {
  const status = (e: unknown) => (e as { status?: number }).status;
  await assert.rejects(sb.files.watch('/w1', { mode: 'bogus' as 'poll' }), (e: unknown) => status(e) === 400);
  await assert.rejects(sb.files.watch('relative'), (e: unknown) => status(e) === 400);
  await assert.rejects(sb.files.watch('/nope', { mode: 'inotify' }), (e: unknown) => status(e) === 404);
  await sb.exec('mkdir -p /big && cd /big && mkdir $(seq 9999)');
  try {
    // The root and 9999 subdirectories: exactly the 10000 a watch may hold.
    const t0 = Date.now();
    const w = await sb.files.watch('/big', { recursive: true, intervalMs: NO_POLL });
    const startMs = Date.now() - t0;
    assert.equal(await agentWatches(), 10_000);
    const c = collect(w);
    await sb.files.mkdir('/big/one-more');
    await assert.rejects(c.done, (e: unknown) => status(e) === 400 && /more than 10000 directories/.test((e as Error).message));
    await eventually('the agent drops the watches of a watch that went over its bound', async () => (await agentWatches()) === 0);
    await assert.rejects(sb.files.watch('/big', { recursive: true }), (e: unknown) => status(e) === 400 && /10000/.test((e as Error).message));
    assert.equal(await agentWatches(), 0, 'a refused watch leaves no watch behind');
    // Not recursive, the same directory is one watch.
    const flat = await sb.files.watch('/big', { intervalMs: NO_POLL });
    assert.equal(flat.mode, 'inotify');
    flat.close();
    t.diagnostic(`a recursive watch of 10000 directories started in ${startMs} ms`);
  } finally {
    await sb.files.remove('/big', { recursive: true });
  }
});
