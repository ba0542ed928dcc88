// hutchd lifetimes on real sandboxes: TTL labels, expiry by the sweeper, the cap, and recovery after a
// crash (a new Engine and keeper on the same root stand for a restarted hutchd).
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { cleanRoot, hutch, hutchOk, leftovers, makeRoot } from './helpers.js';
import { Engine, SandboxCalls } from '../src/engine/index.js';
import { EventBus, type LifecycleEvent } from '../src/server/events.js';
import { LifetimeKeeper, MANAGED_LABEL, POOL_LABEL, TTL_LABEL } from '../src/server/lifetime.js';

let root: string;
before(() => { root = makeRoot('lifetime'); });
after(async () => {
  await cleanRoot(root);
  assert.deepEqual(leftovers(root), []);
});

const OPTS = { defaultTtlMs: 60_000, maxTtlMs: 3_600_000, sweepIntervalMs: 100 };
const managed = { [MANAGED_LABEL]: 'hutchd' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A started busybox sandbox with `labels`. */
async function running(engine: Engine, labels: Record<string, string>): Promise<string> {
  const s = await engine.create({ rootfs: 'busybox', labels });
  await engine.start(s.id);
  return s.id;
}

async function ids(engine: Engine): Promise<string[]> {
  return (await engine.list()).map((s) => s.id);
}

test('bad TTLs are refused with EINVAL and change nothing; other sandboxes are not hutchd\'s to set', async () => {
  const engine = new Engine({ root });
  const keeper = new LifetimeKeeper(engine, new EventBus(), OPTS);
  const id = await running(engine, { ...keeper.labelsFor(10_000) });
  const cli = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
  try {
    const before = (await engine.inspect(id)).labels![TTL_LABEL];
    for (const bad of [0, -5, NaN, Infinity, OPTS.maxTtlMs + 1]) {
      await assert.rejects(keeper.setTtl(id, bad), (e: Error & { code?: string }) => e.code === 'EINVAL' && /TTL/.test(e.message), String(bad));
    }
    assert.equal((await engine.inspect(id)).labels![TTL_LABEL], before);
    await assert.rejects(keeper.setTtl(cli, 1000), (e: Error & { code?: string }) => e.code === 'EPERM' && e.message.includes(cli));
    assert.equal((await engine.inspect(cli)).labels, undefined, 'the CLI sandbox got no label');
    await assert.rejects(keeper.setTtl('ffffffffffffffff', 1000), (e: Error & { code?: string }) => e.code === 'ENOTFOUND');
    assert.throws(() => keeper.labelsFor(OPTS.maxTtlMs * 2), /beyond the maximum/);
    assert.throws(() => new LifetimeKeeper(engine, new EventBus(), { ...OPTS, defaultTtlMs: OPTS.maxTtlMs + 1 }), /beyond the maximum/);
    assert.throws(() => new LifetimeKeeper(engine, new EventBus(), { ...OPTS, sweepIntervalMs: 0 }), /sweepIntervalMs/);
  } finally {
    await engine.remove(id, true);
    await engine.remove(cli, true);
  }
});

test('the sweeper removes an expired sandbox (expired, then removed) and leaves the others', async () => {
  const engine = new Engine({ root });
  const events = new EventBus();
  const keeper = new LifetimeKeeper(engine, events, OPTS);
  const seen: LifecycleEvent[] = [];
  const short = await running(engine, keeper.labelsFor(60_000));
  const long = await running(engine, keeper.labelsFor(60_000));
  const cli = (await hutchOk(root, ['run', '-d', '--label', `${TTL_LABEL}=2000-01-01T00:00:00Z`, 'busybox'])).trim();
  const t0 = Date.now();
  await keeper.setTtl(short, 500);
  events.subscribe((e) => seen.push(e));
  keeper.start();
  try {
    while (!seen.some((e) => e.type === 'removed') && Date.now() - t0 < 10_000) await sleep(50);
    assert.deepEqual(seen.map((e) => `${e.type}:${e.sandboxId}`), [`expired:${short}`, `removed:${short}`]);
    assert.ok(Date.now() - t0 >= 500, 'not removed before its expiry');
    assert.ok(!fs.existsSync(path.join(root, 'sandboxes', short)));
    const left = await ids(engine);
    assert.ok(left.includes(long) && left.includes(cli), 'a live sandbox and a CLI sandbox (even with an old expiry label) stay');
  } finally {
    await keeper.stop();
    await engine.remove(long, true);
    await engine.remove(cli, true);
  }
});

test('setTtl extends (label and event), a later sweep keeps it; shortening makes the next sweep remove it', async () => {
  const engine = new Engine({ root });
  const events = new EventBus();
  const keeper = new LifetimeKeeper(engine, events, OPTS);
  const seen: LifecycleEvent[] = [];
  const id = await running(engine, keeper.labelsFor(200));
  events.subscribe((e) => seen.push(e), { sandboxId: id });
  const t = Date.now();
  const expiresAt = await keeper.setTtl(id, 120_000);
  assert.ok(Math.abs(Date.parse(expiresAt) - (t + 120_000)) < 2000, expiresAt);
  assert.equal((await engine.inspect(id)).labels![TTL_LABEL], expiresAt);
  assert.equal((await engine.inspect(id)).labels![MANAGED_LABEL], 'hutchd', 'other labels kept');
  assert.deepEqual(seen.map((e) => e.type), ['ttl-extended']);
  assert.deepEqual(seen[0]!.data, { expiresAt, ttlMs: 120_000 });
  await sleep(300);
  assert.deepEqual(await keeper.sweep(), [], 'extended: not expired');
  assert.ok((await ids(engine)).includes(id));
  await keeper.setTtl(id, 1);
  await sleep(20);
  const [a, b] = await Promise.all([keeper.sweep(), keeper.sweep()]);
  assert.deepEqual(a, [id]);
  assert.equal(a, b, 'concurrent calls share one sweep');
  assert.deepEqual(seen.map((e) => e.type), ['ttl-extended', 'ttl-extended', 'expired', 'removed']);
  await assert.rejects(keeper.setTtl(id, 1000), (e: Error & { code?: string }) => e.code === 'ENOTFOUND');
});

test('a removal that fails is reported once on stderr and retried by later sweeps', async (t) => {
  const engine = new Engine({ root });
  const keeper = new LifetimeKeeper(engine, new EventBus(), OPTS);
  const id = await running(engine, keeper.labelsFor(1));
  await sleep(10);
  const written: string[] = [];
  const write = t.mock.method(process.stderr, 'write', (chunk: string) => { written.push(String(chunk)); return true; });
  const remove = t.mock.method(engine, 'remove', async () => { throw new Error('disk on fire'); });
  assert.deepEqual(await keeper.sweep(), []);
  assert.deepEqual(await keeper.sweep(), []);
  assert.equal(written.filter((w) => w.includes(id)).length, 1, written.join(''));
  assert.match(written[0]!, /cannot remove expired sandbox .*disk on fire/);
  remove.mock.restore();
  write.mock.restore();
  assert.deepEqual(await keeper.sweep(), [id]);
});

test('recover after a crash: running and paused ones adopted; stopped, half-made (never started), expired and pooled removed; CLI ones untouched', async () => {
  const engine = new Engine({ root });
  const old = new LifetimeKeeper(engine, new EventBus(), OPTS);
  const label = (l: Record<string, string>) => Object.entries(l).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
  const runningId = await running(engine, old.labelsFor());
  const pausedId = await running(engine, old.labelsFor());
  await engine.pause(pausedId);
  const neverStarted = (await engine.create({ rootfs: 'busybox', labels: managed })).id; // died between create and start
  const runningNoTtl = await running(engine, managed);
  const stoppedId = await running(engine, old.labelsFor());
  await engine.stop(stoppedId, 0);
  const expiredId = await running(engine, { ...managed, [TTL_LABEL]: new Date(Date.now() - 1000).toISOString() });
  const pooledId = await running(engine, { ...managed, [POOL_LABEL]: 'busybox' });
  // hutch processes killed mid-create and mid-delete leave 'creating' and 'deleting' records.
  const crash = await hutch(root, ['create', ...label(old.labelsFor()), 'busybox'], { env: { HUTCH_CRASH_AT: 'create:executor' } });
  assert.equal(crash.signal, 'SIGKILL');
  const deletingId = await running(engine, old.labelsFor());
  assert.equal((await hutch(root, ['rm', '-f', deletingId], { env: { HUTCH_CRASH_AT: 'delete:deleting' } })).signal, 'SIGKILL');
  const cliRunning = (await hutchOk(root, ['run', '-d', 'busybox'])).trim();
  const cliStopped = (await hutchOk(root, ['create', 'busybox'])).trim();
  await hutchOk(root, ['start', cliStopped]);
  await hutchOk(root, ['stop', '-t', '0', cliStopped]);
  const halfMade = (await engine.list()).find((s) => s.note === 'interrupted create')!.id;
  assert.ok(halfMade);

  // The restarted hutchd: a new engine and keeper on the same root.
  const engine2 = new Engine({ root });
  const events = new EventBus();
  const seen: LifecycleEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const keeper = new LifetimeKeeper(engine2, events, OPTS);
  const result = await keeper.recover();
  assert.deepEqual(result.failed, []);
  assert.deepEqual(new Set(result.adopted), new Set([runningId, pausedId, runningNoTtl]));
  assert.deepEqual(new Set(result.removed), new Set([stoppedId, expiredId, pooledId, halfMade, deletingId, neverStarted]));
  for (const id of result.removed) assert.ok(!fs.existsSync(path.join(root, 'sandboxes', id)), `${id} gone`);
  const now = await engine2.list();
  assert.deepEqual(new Set(now.map((s) => s.id)), new Set([runningId, pausedId, runningNoTtl, cliRunning, cliStopped]));
  assert.equal(now.find((s) => s.id === cliStopped)!.status, 'stopped', 'a stopped CLI sandbox is not touched');
  const ttl = Date.parse(now.find((s) => s.id === runningNoTtl)!.labels![TTL_LABEL]!);
  assert.ok(Math.abs(ttl - (Date.now() + OPTS.defaultTtlMs)) < 5000, 'an adopted sandbox without expiry gets the default TTL');
  assert.deepEqual(seen.filter((e) => e.type === 'expired').map((e) => e.sandboxId), [expiredId]);
  assert.deepEqual(new Set(seen.filter((e) => e.type === 'removed').map((e) => e.sandboxId)), new Set(result.removed));

  // The adopted sandboxes are served again.
  const calls = new SandboxCalls(engine2);
  try {
    const p = await calls.exec(runningId, { argv: ['echo', 'still here'] });
    const out: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    const ended = new Promise((r) => p.stdout.once('end', r));
    assert.equal((await p.wait()).exitCode, 0);
    await ended; // wait() may resolve with output still buffered in the stream
    assert.equal(Buffer.concat(out).toString(), 'still here\n');
    await engine2.resume(pausedId);
  } finally {
    calls.closeAll();
  }
  // A second recovery changes nothing.
  const again = await keeper.recover();
  assert.deepEqual(again.removed, []);
  assert.deepEqual(new Set(again.adopted), new Set([runningId, pausedId, runningNoTtl]));
  for (const id of [runningId, pausedId, runningNoTtl, cliRunning, cliStopped]) await engine2.remove(id, true);
});

/** An engine and a keeper on this root, with every event the keeper's bus carries. */
function watchedKeeper(): { engine: Engine; events: EventBus; seen: LifecycleEvent[]; keeper: LifetimeKeeper } {
  const engine = new Engine({ root });
  const events = new EventBus();
  const seen: LifecycleEvent[] = [];
  events.subscribe((e) => { seen.push(e); });
  return { engine, events, seen, keeper: new LifetimeKeeper(engine, events, OPTS) };
}

/** Sweeps twice and asserts exactly one stopped event, for `id`; returns it. */
async function theStoppedEvent(keeper: LifetimeKeeper, seen: LifecycleEvent[], id: string): Promise<LifecycleEvent> {
  await keeper.sweep();
  await keeper.sweep();
  const stopped = seen.filter((e) => e.type === 'stopped');
  assert.equal(stopped.length, 1, 'exactly one stopped event');
  assert.equal(stopped[0]!.sandboxId, id);
  return stopped[0]!;
}

test('a sandbox whose main command ends on its own gets one stopped event at the next sweep', async () => {
  const { engine, seen, keeper } = watchedKeeper();
  const s = await engine.create({ rootfs: 'busybox', labels: { ...keeper.labelsFor(60_000) }, command: ['sh', '-c', 'sleep 0.5; exit 7'] });
  await engine.start(s.id);
  try {
    await keeper.sweep();
    assert.deepEqual(seen.filter((e) => e.type === 'stopped'), [], 'alive: no event');
    await engine.waitStopped(s.id);
    const stopped = await theStoppedEvent(keeper, seen, s.id);
    assert.equal(stopped.data?.exitCode, 7);
  } finally {
    await engine.remove(s.id, true);
  }
});

test('a sandbox whose agent dies before any sweep saw it run still gets its stopped event', async () => {
  const { engine, events, seen, keeper } = watchedKeeper();
  const s = await engine.create({ rootfs: 'busybox', labels: { ...keeper.labelsFor(60_000) } });
  await engine.start(s.id);
  events.publish({ type: 'started', sandboxId: s.id }); // as hutchd's create route does
  try {
    const pid = Number(fs.readFileSync(path.join(root, 'sandboxes', s.id, 'init.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    await engine.waitStopped(s.id);
    const stopped = await theStoppedEvent(keeper, seen, s.id);
    assert.equal(stopped.data?.agentDied, true);
  } finally {
    await engine.remove(s.id, true);
  }
});
