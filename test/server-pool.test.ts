// The warm pool on real sandboxes: filling, claims (exclusive, relabelled, usable), refills, dead
// pooled sandboxes never handed out and replaced, draining, bad configurations.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { cleanRoot, hutch, leftovers, makeRoot } from './helpers.js';
import { buildTestImage, TEST_IMAGE_NAME } from './e2e/oci-image.js';
import { Engine, SandboxCalls, type SandboxInfo } from '../src/engine/index.js';
import { EventBus, type LifecycleEvent } from '../src/server/events.js';
import { LifetimeKeeper, MANAGED_LABEL, POOL_LABEL } from '../src/server/lifetime.js';
import { poolKey, WarmPool } from '../src/server/pool.js';

let root: string;
let engine: Engine;
before(() => {
  root = makeRoot('pool');
  engine = new Engine({ root });
});
after(async () => {
  await cleanRoot(root);
  assert.deepEqual(leftovers(root), []);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond` holds (checked every 50 ms), failing after `ms`. */
async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const pooled = async () => (await engine.list()).filter((s) => s.labels?.[POOL_LABEL] !== undefined);

/** Runs a command through the engine's calls; returns exit code and stdout. */
async function run(calls: SandboxCalls, id: string, argv: string[]): Promise<{ code: number | null; out: string }> {
  const p = await calls.exec(id, { argv });
  const out: Buffer[] = [];
  p.stdout.on('data', (d: Buffer) => out.push(d));
  p.stderr.resume();
  const ended = new Promise((r) => p.stdout.once('end', r));
  const exit = await p.wait();
  await ended; // wait() may resolve with output still buffered in the stream
  return { code: exit.exitCode, out: Buffer.concat(out).toString() };
}

async function removeAll(infos: (SandboxInfo | undefined)[]): Promise<void> {
  for (const s of infos) if (s) await engine.remove(s.id, true);
}

test('fills to its size; a claim gets a started, relabelled sandbox in which exec works; the pool refills', async () => {
  const events = new EventBus();
  const seen: LifecycleEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const pool = new WarmPool(engine, events, [{ image: 'busybox', size: 3 }]);
  assert.deepEqual(pool.sizes(), { busybox: { ready: 0, target: 3 } });
  pool.start();
  const calls = new SandboxCalls(engine);
  let claimed: SandboxInfo | undefined;
  try {
    await until('the pool to fill', () => pool.sizes().busybox!.ready === 3);
    const inPool = await pooled();
    assert.equal(inPool.length, 3, 'exactly its size, no more');
    for (const s of inPool) {
      assert.equal(s.status, 'running');
      assert.deepEqual(s.labels, { [POOL_LABEL]: 'busybox', [MANAGED_LABEL]: 'hutchd' });
    }
    claimed = await pool.claim('busybox', { labels: { owner: 'alice', 'dev.hutch.expires-at': '2999-01-01T00:00:00.000Z' }, env: ['GREETING=hi'], cwd: '/tmp' });
    assert.ok(claimed);
    assert.ok(inPool.some((s) => s.id === claimed!.id), 'one of the pooled ones');
    assert.equal(claimed.status, 'running');
    assert.deepEqual(claimed.labels, { owner: 'alice', 'dev.hutch.expires-at': '2999-01-01T00:00:00.000Z', [MANAGED_LABEL]: 'hutchd' });
    assert.deepEqual(seen.map((e) => `${e.type}:${e.sandboxId}`), [`pool-claimed:${claimed.id}`]);
    // Nothing ran in it before the claim: the agent is its only process.
    assert.deepEqual((await calls.ps(claimed.id)).map((p) => p.pid), [1]);
    assert.deepEqual(await run(calls, claimed.id, ['sh', '-c', 'echo "$GREETING $(pwd)"']), { code: 0, out: 'hi /tmp\n' });
    await until('the refill', () => pool.sizes().busybox!.ready === 3);
    assert.equal((await pooled()).length, 3);
    assert.ok(!(await pooled()).some((s) => s.id === claimed!.id));
  } finally {
    calls.closeAll();
    await pool.stop({ drain: true });
    await removeAll([claimed]);
  }
  assert.deepEqual(await engine.list(), []);
});

test('no sandbox is handed out twice under 10 concurrent claims', async () => {
  const pool = new WarmPool(engine, new EventBus(), [{ image: 'busybox', size: 4 }], { concurrency: 2 });
  pool.start();
  let got: (SandboxInfo | undefined)[] = [];
  try {
    await until('the pool to fill', () => pool.sizes().busybox!.ready === 4);
    got = await Promise.all(Array.from({ length: 10 }, () => pool.claim('busybox', { labels: { n: 'x' } })));
    const ids = got.filter((s): s is SandboxInfo => s !== undefined).map((s) => s.id);
    assert.ok(ids.length >= 4, `at least the 4 ready ones were claimed (got ${ids.length})`);
    assert.equal(new Set(ids).size, ids.length, 'all distinct');
    for (const s of got) if (s) assert.equal(s.labels?.[POOL_LABEL], undefined);
    // The ones that found the pool empty get undefined: the server then creates cold.
    assert.equal(got.filter((s) => s === undefined).length, 10 - ids.length);
  } finally {
    await pool.stop({ drain: true });
    await removeAll(got);
  }
  assert.deepEqual(await engine.list(), []);
});

test('claims it cannot serve return undefined; a claim may not set the pool label', async () => {
  const pool = new WarmPool(engine, new EventBus(), [{ image: 'busybox', size: 1, limits: { memoryBytes: 64 * 1024 * 1024 } }]);
  pool.start();
  let claimed: SandboxInfo | undefined;
  try {
    await until('the pool to fill', () => pool.sizes().busybox!.ready === 1);
    assert.equal(await pool.claim('alpine:3'), undefined, 'no pool for the image');
    assert.equal(await pool.claim('busybox'), undefined, 'default limits differ from the pool\'s');
    assert.equal(await pool.claim('busybox', { limits: { memoryBytes: 128 * 1024 * 1024 } }), undefined);
    assert.equal(await pool.claim('busybox', { limits: { memoryBytes: 1 } }), undefined, 'invalid limits: left to the cold create to refuse');
    await assert.rejects(pool.claim('busybox', { limits: { memoryBytes: 64 * 1024 * 1024 }, labels: { [POOL_LABEL]: 'x' } }), /is hutchd's own/);
    await assert.rejects(pool.claim('busybox', { limits: { memoryBytes: 64 * 1024 * 1024 }, labels: { 'bad key': 'x' } }), /invalid label key/);
    assert.equal(pool.sizes().busybox!.ready, 1, 'a claim with a bad label does not lose the sandbox');
    // Same limits, spelled with the default pids limit: served.
    claimed = await pool.claim('busybox', { limits: { memoryBytes: 64 * 1024 * 1024, pids: 1024 } });
    assert.ok(claimed);
    assert.equal(claimed.limits.memoryBytes, 64 * 1024 * 1024);
  } finally {
    await pool.stop({ drain: true });
    await removeAll([claimed]);
  }
  assert.equal(await pool.claim('busybox', { limits: { memoryBytes: 64 * 1024 * 1024 } }), undefined, 'a stopped pool hands out nothing');
  assert.deepEqual(await engine.list(), []);
});

/** Kills a sandbox's init (its agent) from outside, and waits until it is gone. */
async function killAgent(id: string): Promise<void> {
  const pid = Number(fs.readFileSync(path.join(root, 'sandboxes', id, 'init.pid'), 'utf8'));
  process.kill(pid, 'SIGKILL');
  await until(`pid ${pid} to die`, () => !fs.existsSync(`/proc/${pid}`), 5000);
}

test('a pooled sandbox killed from outside is never handed out; it is removed and replaced', async () => {
  const pool = new WarmPool(engine, new EventBus(), [{ image: 'busybox', size: 2 }], { checkIntervalMs: 60_000 });
  pool.start();
  const got: (SandboxInfo | undefined)[] = [];
  try {
    await until('the pool to fill', () => pool.sizes().busybox!.ready === 2);
    const victims = (await pooled()).map((s) => s.id);
    for (const id of victims) await killAgent(id);
    // Found at claim time: both dead ones are skipped and removed; nothing is handed out.
    got.push(await pool.claim('busybox'));
    assert.equal(got[0], undefined);
    await until('the dead ones to be removed', async () => victims.every((id) => !fs.existsSync(path.join(root, 'sandboxes', id))));
    await until('the replacements', () => pool.sizes().busybox!.ready === 2);
    const fresh = await pool.claim('busybox');
    got.push(fresh);
    assert.ok(fresh && !victims.includes(fresh.id) && fresh.status === 'running');
  } finally {
    await pool.stop({ drain: true });
    await removeAll(got);
  }
  assert.deepEqual(await engine.list(), []);
});

test('the periodic check removes and replaces a dead pooled sandbox without a claim', async () => {
  const pool = new WarmPool(engine, new EventBus(), [{ image: 'busybox', size: 2 }], { checkIntervalMs: 200 });
  pool.start();
  try {
    await until('the pool to fill', () => pool.sizes().busybox!.ready === 2);
    const [victim] = (await pooled()).map((s) => s.id);
    await killAgent(victim!);
    await until('the dead one to be removed', () => !fs.existsSync(path.join(root, 'sandboxes', victim!)));
    await until('its replacement', async () => pool.sizes().busybox!.ready === 2 && (await pooled()).every((s) => s.status === 'running'));
    assert.equal((await pooled()).length, 2);
  } finally {
    await pool.stop({ drain: true });
  }
  assert.deepEqual(await engine.list(), []);
});

test('stop without drain leaves the pooled sandboxes, which the next recovery removes; drain removes them all', async () => {
  const pool = new WarmPool(engine, new EventBus(), [{ image: 'busybox', size: 2 }]);
  pool.start();
  await until('the pool to fill', () => pool.sizes().busybox!.ready === 2);
  const pool2 = new WarmPool(engine, new EventBus(), [{ image: 'busybox', size: 3 }], { concurrency: 3 });
  pool2.start();
  await sleep(50); // stopped while sandboxes are being made: they are removed by the drain too
  await pool2.stop({ drain: true });
  assert.equal((await pooled()).length, 2);
  await pool.stop();
  const left = (await pooled()).map((s) => s.id);
  assert.equal(left.length, 2, 'left for recovery');
  // The next hutchd's recovery removes them: never re-offered.
  const recovered = await new LifetimeKeeper(new Engine({ root }), new EventBus(), { defaultTtlMs: 1000, maxTtlMs: 1000, sweepIntervalMs: 1000 }).recover();
  assert.deepEqual(new Set(recovered.removed), new Set(left));
  assert.deepEqual(recovered.adopted, []);
  await pool.stop({ drain: true }); // nothing left to drain: already gone is fine
  assert.deepEqual(await engine.list(), []);
});

test('bad configurations are refused; a pool whose sandboxes cannot be made reports once and backs off', async (t) => {
  assert.throws(() => new WarmPool(engine, new EventBus(), [{ image: 'busybox', size: -1 }]), /whole number/);
  assert.throws(() => new WarmPool(engine, new EventBus(), [{ image: 'busybox', size: 1 }, { image: 'busybox', size: 2 }]), /two pools/);
  assert.throws(() => new WarmPool(engine, new EventBus(), [{ image: 'busybox', size: 1, limits: { cpus: 1000 } }]), /cpus 1000 is out of range/);
  assert.throws(() => new WarmPool(engine, new EventBus(), [], { concurrency: 0 }), /concurrency/);
  const written: string[] = [];
  t.mock.method(process.stderr, 'write', (chunk: string) => { written.push(String(chunk)); return true; });
  const pool = new WarmPool(engine, new EventBus(), [{ image: '/nonexistent-hutch-rootfs', size: 2 }, { image: 'busybox', size: 1 }]);
  pool.start();
  try {
    await until('the good pool to fill', () => pool.sizes().busybox!.ready === 1);
    await sleep(1200);
    const reports = written.filter((w) => w.includes('/nonexistent-hutch-rootfs'));
    assert.equal(reports.length, 1, written.join(''));
    assert.match(reports[0]!, /cannot make a sandbox .*does not exist/);
    assert.deepEqual(pool.sizes()['/nonexistent-hutch-rootfs'], { ready: 0, target: 2 });
  } finally {
    await pool.stop({ drain: true });
  }
  assert.deepEqual(await engine.list(), []);
});

test('a pool and a claim match by the canonical image reference, not by its spelling', async () => {
  // A stored image named docker.io/library/pooltest:1, loaded from an OCI layout built here.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-pool-image-'));
  const saved = process.env.HUTCH_IMAGE_ROOT;
  process.env.HUTCH_IMAGE_ROOT = path.join(tmp, 'store');
  const pool = new WarmPool(engine, new EventBus(), [{ image: 'pooltest:1', size: 1 }]);
  let claimed: SandboxInfo | undefined;
  try {
    const image = buildTestImage(path.join(tmp, 'image'));
    const index = path.join(image.layoutDir, 'index.json');
    fs.writeFileSync(index, fs.readFileSync(index, 'utf8').replaceAll(TEST_IMAGE_NAME, 'pooltest:1'));
    const loaded = await hutch(root, ['load', '-i', image.layoutDir], { env: { HUTCH_IMAGE_ROOT: process.env.HUTCH_IMAGE_ROOT } });
    assert.equal(loaded.code, 0, loaded.stderr);
    pool.start();
    await until('the pool to fill', () => pool.sizes()['pooltest:1']!.ready === 1);
    assert.equal(await pool.claim('pooltest:2', { entrypoint: [] }), undefined, 'another tag is another image');
    assert.equal(await pool.claim('busybox'), undefined);
    // Its Cmd (sh) would be the main command of a cold create: only a claim that asks for none is served.
    assert.equal(await pool.claim('pooltest:1'), undefined, 'the image has a Cmd: a pooled sandbox (nothing running) does not serve it');
    assert.equal(await pool.claim('pooltest:1', { cmd: ['sleep', '1'] }), undefined);
    assert.equal(await pool.claim('pooltest:1', { entrypoint: ['sleep'] }), undefined);
    claimed = await pool.claim('index.docker.io/library/pooltest:1', { entrypoint: [] });
    assert.ok(claimed, 'docker.io\'s long spelling of the pool\'s image is served from the pool');
    assert.equal(claimed.labels?.[POOL_LABEL], undefined);
  } finally {
    await pool.stop({ drain: true });
    await removeAll([claimed]);
    if (saved === undefined) delete process.env.HUTCH_IMAGE_ROOT;
    else process.env.HUTCH_IMAGE_ROOT = saved;
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  assert.throws(() => new WarmPool(engine, new EventBus(), [{ image: 'alpine', size: 1 }, { image: 'docker.io/library/alpine:latest', size: 1 }]),
    /two pools for image alpine and docker\.io\/library\/alpine:latest \(both docker\.io\/library\/alpine:latest\)/);
  assert.equal(poolKey('busybox'), 'busybox', 'the embedded rootfs is not docker.io\'s busybox');
  assert.equal(poolKey('Not A Reference'), 'Not A Reference');
  assert.deepEqual(await engine.list(), []);
});

test('prepare runs on each pooled sandbox before it is offered (a failing one is never offered); a claim refills after the delay', async (t) => {
  const calls = new SandboxCalls(engine);
  const prepared: string[] = [];
  const pool = new WarmPool(engine, new EventBus(), [{ image: 'busybox', size: 1 }], {
    refillDelayMs: 600,
    prepare: async (id) => {
      const r = await run(calls, id, ['sh', '-c', 'echo warmed > /tmp/warm']);
      assert.equal(r.code, 0);
      prepared.push(id);
    },
  });
  let claimed: SandboxInfo | undefined;
  try {
    pool.start();
    await until('the pool to fill', () => pool.sizes().busybox!.ready === 1);
    assert.equal(prepared.length, 1);
    claimed = await pool.claim('busybox');
    assert.ok(claimed);
    assert.equal(claimed.id, prepared[0], 'the sandbox offered is the one prepared');
    assert.deepEqual(await run(calls, claimed.id, ['cat', '/tmp/warm']), { code: 0, out: 'warmed\n' });
    // No refill before the delay is over, then one.
    await sleep(300);
    assert.equal((await pooled()).length, 0, 'no refill within the delay');
    await until('the refill', () => pool.sizes().busybox!.ready === 1);
  } finally {
    await pool.stop({ drain: true });
    await removeAll([claimed]);
  }
  assert.throws(() => new WarmPool(engine, new EventBus(), [], { refillDelayMs: -1 }), /refill delay/);

  // A prepare that fails: reported once, backed off, the sandbox removed, nothing offered.
  const written: string[] = [];
  t.mock.method(process.stderr, 'write', (chunk: string) => { written.push(String(chunk)); return true; });
  const failing = new WarmPool(engine, new EventBus(), [{ image: 'busybox', size: 1 }], { prepare: async () => { throw new Error('warm-up refused'); } });
  try {
    failing.start();
    await until('a report', () => written.some((w) => w.includes('warm-up refused')));
    await sleep(300);
    assert.equal(failing.sizes().busybox!.ready, 0);
    assert.equal(await failing.claim('busybox'), undefined);
  } finally {
    await failing.stop({ drain: true });
    calls.closeAll();
  }
  assert.deepEqual(await engine.list(), [], 'the sandboxes that failed their prepare were removed');
});
