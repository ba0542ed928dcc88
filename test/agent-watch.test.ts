// The agent's watch call against a real agent on real directories: events, unwatch and connection
// close release every inotify watch (counted in the agent's /proc fdinfo), inotify's limit is
// EUNSUPPORTED (an agent in its own user namespace with a limit of one watch), and an old agent's
// "unknown method" — both make hutchd poll instead. And hutchd's checks of what an agent reports.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AgentClient, AGENT_SOCKET_NAME, type WatchChange } from '../src/agent/index.js';
import { isHutchError, type HutchError } from '../src/errors.js';
import { processVanished } from '../src/linux/index.js';
import { ChangeRelay, pollInstead, pollInterval, sendPolled, snapshot } from '../src/server/ws-watch.js';
import { WatchChannels } from '../src/agent/client-watch.js';
import { AGENT_MAIN, startAgent, tempDir, until } from './agent-harness.test.js';

/** The inotify watches process `pid` holds. */
function inotifyWatches(pid: number): number {
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fdinfo`)) {
    try {
      n += (fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').match(/^inotify wd/gm) ?? []).length;
    } catch (e) {
      if (!processVanished(e)) throw e; // else the fd closed meanwhile
    }
  }
  return n;
}

/** A listener that records changes and the end. */
function recorder(): { changes: WatchChange[]; ended: (HutchError | null)[]; change: (c: WatchChange[]) => void; end: (e: HutchError | null) => void } {
  const r = { changes: [] as WatchChange[], ended: [] as (HutchError | null)[], change: (c: WatchChange[]) => void r.changes.push(...c), end: (e: HutchError | null) => void r.ended.push(e) };
  return r;
}

test('watch, unwatch and a closed connection leave no inotify watch in the agent', async () => {
  const agent = await startAgent();
  const dir = tempDir();
  try {
    fs.mkdirSync(path.join(dir, 'a/b'), { recursive: true });
    fs.symlinkSync('/', path.join(dir, 'a/root-link'));
    const pid = agent.child.pid!;
    const c = await agent.connect();
    const r = recorder();
    const w = await c.watch({ path: `${dir}/./a/`, recursive: true }, r);
    assert.deepEqual([w.dirs, inotifyWatches(pid)], [2, 2], 'a and a/b; the link to / is not followed');
    fs.writeFileSync(path.join(dir, 'a/b/f'), 'f');
    await until(() => r.changes.some((ch) => ch.kind === 'created' && ch.path === `${dir}/a/b/f`), 2000, 'the created event');
    await w.close();
    assert.equal(inotifyWatches(pid), 0);
    const count = r.changes.length;
    fs.writeFileSync(path.join(dir, 'a/b/g'), 'g');
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(r.changes.length, count, 'nothing after unwatch');
    await w.close(); // twice is nothing

    // A connection that goes away takes its watches with it.
    const c2 = await agent.connect();
    const r2 = recorder();
    await c2.watch({ path: dir, recursive: true }, r2);
    await c2.watch({ path: path.join(dir, 'a/b/f'), recursive: false }, r2);
    assert.ok(inotifyWatches(pid) >= 3);
    c2.close();
    await until(() => inotifyWatches(pid) === 0, 2000, 'the agent to drop the watches of a closed connection');
    assert.deepEqual(r2.ended.map((e) => e?.code), ['ESTATE', 'ESTATE'], 'the client ends its watches with the connection');

    // Bad input: a relative path; a path that does not exist.
    await assert.rejects(c.watch({ path: 'rel', recursive: false }, recorder()), (e: unknown) => isHutchError(e, 'EINVAL'));
    await assert.rejects(c.watch({ path: `${dir}/nope`, recursive: false }, recorder()), (e: unknown) => isHutchError(e, 'ENOTFOUND') && pollInstead(e));
    // An agent without the call (older than watches) answers "unknown method": hutchd polls then.
    const old = await (c.call as (m: string, p: object) => Promise<unknown>)('watchFiles', {}).catch((e: unknown) => e);
    assert.ok(isHutchError(old, 'EINVAL') && pollInstead(old), String(old));
    c.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await agent.stop();
  }
});

test('at inotify\'s limit the watch fails with EUNSUPPORTED (hutchd polls then) and holds nothing', async (t) => {
  const dir = tempDir();
  const sock = path.join(dir, AGENT_SOCKET_NAME);
  fs.mkdirSync(path.join(dir, 'tree/a'), { recursive: true });
  // The limit is per user namespace: this agent runs in its own, allowed one watch.
  const child = spawn('unshare', ['-U', '-r', 'sh', '-c', 'echo 1 > /proc/sys/user/max_inotify_watches && exec "$0" "$@"', process.execPath, AGENT_MAIN, '--listen', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    let c: AgentClient | undefined;
    for (let i = 0; i < 200 && !c && child.exitCode === null; i++) {
      c = await AgentClient.connectSocket(sock, { timeoutMs: 1000 }).catch(() => undefined);
      if (!c) await new Promise((r) => setTimeout(r, 20));
    }
    if (!c) return t.skip(`cannot run an agent in its own user namespace with an inotify limit: ${stderr.trim()}`);
    const err = await c.watch({ path: path.join(dir, 'tree'), recursive: true }, recorder()).catch((e: unknown) => e);
    assert.ok(isHutchError(err, 'EUNSUPPORTED') && /ENOSPC/.test(err.message) && pollInstead(err), String(err));
    assert.equal(inotifyWatches(child.pid!), 0, 'the watch added before the limit was released');
    const one = await c.watch({ path: path.join(dir, 'tree/a'), recursive: true }, recorder());
    assert.equal(one.dirs, 1, 'within the limit it works');
    await one.close();
    c.close();
  } finally {
    child.kill('SIGKILL');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('hutchd refuses what an agent must not report: paths outside the root, unnormalised paths, floods', () => {
  const outside = (root: string, p: string): unknown => {
    const relay = new ChangeRelay(root);
    relay.change([{ kind: 'created', path: p }]);
    return relay.failure;
  };
  for (const p of ['/etc/passwd', '/wx', '/w/../etc', '/w/./a', '/w/a/']) {
    const f = outside('/w', p);
    assert.ok(isHutchError(f, 'EPROTO') && /not under \/w/.test(f.message), `${p}: ${String(f)}`);
  }
  for (const [root, p] of [['/w', '/w'], ['/w', '/w/a/b'], ['/', '/etc']] as const) assert.equal(outside(root, p), undefined, p);
  const relay = new ChangeRelay('/w');
  let sent = 0;
  const client = { OPEN: 1, readyState: 1, bufferedAmount: 0, send: () => void sent++, close: () => undefined };
  relay.attach(client as unknown as Parameters<ChangeRelay['attach']>[0]);
  const burst = Array.from({ length: 200 }, (_, i) => ({ kind: 'modified' as const, path: `/w/${i}` }));
  for (let i = 0; i < 250 && !relay.failure; i++) relay.change(burst);
  assert.ok(isHutchError(relay.failure, 'EPROTO') && /changes a second/.test(relay.failure.message), String(relay.failure));
  assert.ok(sent >= 40_000 && sent < 50_000, `${sent} changes went to the client`);
  // Held until the socket is up, but not without bound.
  const early = new ChangeRelay('/w');
  for (let i = 0; i < 60 && !early.failure; i++) early.change(burst);
  assert.ok(isHutchError(early.failure, 'EPROTO'), String(early.failure));
});

test('a late watch answer naming a running watch is EPROTO, not a silent end of that watch; stopped ids stay bounded', () => {
  const channels = new WatchChannels();
  const live = recorder();
  channels.add(7, live);
  assert.throws(() => channels.orphaned(7), (e) => isHutchError(e, 'EPROTO') && /watch 7 twice/.test(e.message));
  channels.event({ event: 'watch', watchId: 7, changes: [{ kind: 'created', path: '/w/a' }] });
  assert.deepEqual(live.changes, [{ kind: 'created', path: '/w/a' }], 'the running watch still hears its changes');
  // Orphaned ids are remembered (their late events ignored), but only the last 1024 of them.
  for (let id = 1000; id < 3000; id++) channels.orphaned(id);
  channels.event({ event: 'watch', watchId: 2999, changes: [{ kind: 'created', path: '/w/b' }] });
  assert.throws(() => channels.event({ event: 'watch', watchId: 1000, changes: [{ kind: 'created', path: '/w/c' }] }),
    (e) => isHutchError(e, 'EPROTO') && /unknown watch 1000/.test(e.message));
  assert.equal(channels.size, 1);
});

test('polling: names an agent lists are checked (no path out of the root), and one listing is bounded', async () => {
  const dirEntry = (name: string, type: 'file' | 'dir' = 'file') => ({ name, type, size: 1, mode: 0o644, mtimeMs: 1 });
  const listed: { dir: string; maxEntries?: number }[] = [];
  const agent = (names: string[]) => ({
    stat: async () => ({ type: 'dir' as const, size: 0, mode: 0o755, uid: 0, gid: 0, mtimeMs: 1, linkTarget: null }),
    list: async (dir: string, opts?: { maxEntries?: number }) => {
      listed.push({ dir, ...(opts?.maxEntries !== undefined ? { maxEntries: opts.maxEntries } : {}) });
      return dir === '/w' ? names.map((n) => dirEntry(n, 'dir')) : [];
    },
  });
  for (const bad of ['..', '.', '', 'a/../../etc', '../etc', 'x\0y']) {
    listed.length = 0;
    await assert.rejects(snapshot(agent(['ok', bad]) as unknown as Parameters<typeof snapshot>[0], '/w', true),
      (e) => isHutchError(e, 'EPROTO') && e.message.startsWith('the agent listed /w with an entry named'), JSON.stringify(bad));
    assert.deepEqual(listed.map((l) => l.dir), ['/w'], `nothing listed out of the root for ${JSON.stringify(bad)}`);
  }
  listed.length = 0;
  const fine = await snapshot(agent(['a', 'b c', '..x']) as unknown as Parameters<typeof snapshot>[0], '/w', true);
  assert.deepEqual([...fine.keys()], ['/w', '/w/a', '/w/b c', '/w/..x']);
  assert.ok(listed.length === 4 && listed.every((l) => l.maxEntries === 10_000), JSON.stringify(listed));
});

test('polling: a client that does not read is closed (ESTATE) instead of having every change queued', () => {
  const sent: string[] = [];
  const closed: [number, string][] = [];
  const client = { OPEN: 1, readyState: 1, bufferedAmount: 0, send: (m: string) => void sent.push(m), close: (code: number, reason: string) => void closed.push([code, reason]) };
  const found = [{ kind: 'created' as const, path: '/w/a' }, { kind: 'removed' as const, path: '/w/b' }];
  assert.equal(sendPolled(client as unknown as Parameters<typeof sendPolled>[0], '/w', found), true);
  assert.deepEqual(sent.map((m) => JSON.parse(m)), [{ type: 'change', kind: 'created', path: '/w/a' }, { type: 'change', kind: 'removed', path: '/w/b' }]);
  sent.length = 0;
  client.bufferedAmount = 9 * 1024 * 1024;
  assert.equal(sendPolled(client as unknown as Parameters<typeof sendPolled>[0], '/w', found), false);
  assert.equal(sent.length, 1, 'only the error went out');
  const error = JSON.parse(sent[0]!) as { type: string; error: { code: string; message: string } };
  assert.equal(error.type, 'error');
  assert.equal(error.error.code, 'ESTATE');
  assert.match(error.error.message, /watch client of \/w is more than 8388608 bytes behind/);
  assert.equal(closed.length, 1);
  assert.equal(closed[0]![1], 'ESTATE');
});

test('polling: the interval is bounded on both sides (a huge one would make node fire the timer after 1 ms)', () => {
  const cases: [string | null, number][] = [[null, 500], ['250', 250], ['1', 100], ['-5', 100], ['abc', 500], ['1e10', 86_400_000], ['Infinity', 86_400_000], ['86400001', 86_400_000]];
  for (const [asked, ms] of cases) assert.equal(pollInterval(asked), ms, String(asked));
});
