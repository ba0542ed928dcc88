// Snapshots through hutchd and the SDK (gvisor): a sandbox's snapshot, restores of it (a fork), a
// warm pool on gvisor, snapshots surviving a hutchd restart, and what the API refuses.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { daemonFixture, startDaemon } from './server-kit.js';
import { testPlatforms } from './helpers.js';
import { HutchApiError, NotFoundError, Sandbox, Transport } from '../src/sdk/index.js';

const gvisor = testPlatforms().find((p) => p.name === 'gvisor');
const skip = gvisor === undefined ? 'gvisor is not in HUTCH_TEST_PLATFORMS' : gvisor.skip;
const snapRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-sdk-snap-'));
const fx = daemonFixture('sdksnap', ['--pool', 'busybox=1@gvisor'], { HUTCH_SNAPSHOT_ROOT: snapRoot });
test.after(() => {
  const left = fs.readdirSync(snapRoot);
  fs.rmSync(snapRoot, { recursive: true, force: true }); // first: a failed check must not leave it
  assert.deepEqual(left, [], 'every snapshot was removed');
});

async function readyPool(t: Transport): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const m = await t.request({ method: 'GET', path: '/metrics' });
    let text = '';
    for await (const chunk of m) text += String(chunk);
    if (/hutch_pool_ready\{image="busybox@gvisor"\} 1/.test(text)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the gvisor pool never got ready');
}

test('sdk: a gvisor sandbox from the pool; snapshot, two restores (a fork) going on from where it was', { skip }, async () => {
  await readyPool(fx.t);
  const pooled = await Sandbox.create({ transport: fx.t, platform: 'gvisor' });
  assert.equal(pooled.info.platform, 'gvisor');
  assert.equal((await pooled.exec('uname -r')).stdout.trim() === os.release(), false, 'it runs on the sentry, not the host kernel');
  await pooled.kill();

  const sb = await Sandbox.create({ transport: fx.t, platform: 'gvisor', labels: { job: 'x' }, cmd: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /root/n; sleep 0.1; done'] });
  await sb.exec('echo kept > /root/f');
  await new Promise((r) => setTimeout(r, 400));
  const snap = await sb.snapshot();
  assert.match(snap.id, /^[0-9a-f]{16}$/);
  assert.deepEqual([snap.platform, snap.source.id, snap.labels], ['gvisor', sb.id, { job: 'x' }]);
  assert.ok(snap.sizeBytes > 0);
  await sb.refresh();
  assert.equal(sb.info.status, 'stopped', 'a snapshot without leaveRunning stops it (E2B\'s pause)');
  assert.deepEqual((await Sandbox.listSnapshots({ transport: fx.t })).map((s) => s.id), [snap.id]);

  const [a, b] = await Promise.all([Sandbox.fromSnapshot(snap.id, { transport: fx.t, labels: { copy: 'a' } }), Sandbox.fromSnapshot(snap.id, { transport: fx.t })]);
  assert.equal(a!.info.status, 'running');
  assert.deepEqual(a!.info.labels, { job: 'x', copy: 'a' });
  assert.ok(a!.info.expiresAt && Date.parse(a!.info.expiresAt) > Date.now(), 'a restored sandbox has a TTL of its own');
  const n1 = Number((await a!.exec('cat /root/n')).stdout);
  await new Promise((r) => setTimeout(r, 300));
  const n2 = Number((await a!.exec('cat /root/n')).stdout);
  assert.ok(n1 > 1 && n2 > n1, `the main command goes on (${n1} → ${n2})`);
  await a!.exec('echo changed > /root/f');
  assert.equal((await b!.exec('cat /root/f')).stdout, 'kept\n', 'the fork\'s copies share nothing writable');
  await Promise.all([a!.kill(), b!.kill(), sb.kill()]);
  await Sandbox.deleteSnapshot(snap.id, { transport: fx.t });
  await assert.rejects(Sandbox.fromSnapshot(snap.id, { transport: fx.t }), NotFoundError);
});

test('sdk: snapshots outlive hutchd; the API refuses what it cannot do', { skip }, async () => {
  const sb = await Sandbox.create({ transport: fx.t, platform: 'gvisor' });
  await sb.exec('echo before-restart > /root/f');
  const snap = await sb.snapshot({ leaveRunning: true });
  assert.equal((await sb.exec('cat /root/f')).stdout, 'before-restart\n', 'leaveRunning: it goes on');
  await sb.kill();
  // A second hutchd on another root with the same snapshot store finds it (as a restarted one does).
  const root2 = fs.mkdtempSync('/run/hutch-test-sdksnap2-');
  const d2 = await startDaemon(root2, [], undefined, { HUTCH_SNAPSHOT_ROOT: snapRoot });
  const t2 = new Transport({ socketPath: d2.socketPath });
  try {
    const r = await Sandbox.fromSnapshot(snap.id, { transport: t2 });
    assert.equal((await r.exec('cat /root/f')).stdout, 'before-restart\n');
    await r.kill();
  } finally {
    t2.close();
    await d2.stop();
    fs.rmSync(root2, { recursive: true, force: true });
  }
  const plain = await Sandbox.create({ transport: fx.t });
  assert.equal(plain.info.platform, 'container');
  await assert.rejects(plain.snapshot(), (e: unknown) => e instanceof HutchApiError && e.code === 'EUNSUPPORTED' && e.status === 501 && /not supported on the container platform/.test(e.message));
  await plain.kill();
  await assert.rejects(Sandbox.fromSnapshot('..%2F..%2Fetc', { transport: fx.t }), NotFoundError);
  await assert.rejects(Sandbox.create({ transport: fx.t, platform: 'warp' }), (e: unknown) => e instanceof HutchApiError && e.code === 'EINVAL' && /unknown platform "warp"/.test(e.message));
  await assert.rejects(Sandbox.fromSnapshot(snap.id, { transport: fx.t, labels: { 'dev.hutch.pool': 'x' } }), (e: unknown) => e instanceof HutchApiError && e.status === 400 && /hutch's own/.test(e.message));
  await Sandbox.deleteSnapshot(snap.id, { transport: fx.t });
});
