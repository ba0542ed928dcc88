// The engine's state machine and crash handling over a fake platform (test/fake-platform.ts): no
// root, no executor. The same verbs over real runc are in cli-lifecycle and cli-crash.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Engine, SandboxCalls } from '../src/engine/index.js';
import { isHutchError, type ErrorCode } from '../src/errors.js';
import { fakeRegistry } from './fake-platform.js';

function fakeEngine() {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-fake-'));
  fs.chmodSync(base, 0o711); // the store wants a root others can search (as sandboxes must)
  const rootfs = path.join(base, 'rootfs');
  fs.mkdirSync(rootfs);
  const { registry, controls } = fakeRegistry();
  const engine = new Engine({ root: path.join(base, 'state'), dataRoot: path.join(base, 'data'), platforms: registry, platform: 'fake' });
  const calls = new SandboxCalls(engine);
  const done = async () => {
    calls.closeAll();
    for (const s of await engine.list()) await engine.remove(s.id, true);
    fs.rmSync(base, { recursive: true, force: true });
    assert.deepEqual(agentsUnder(base), [], 'every agent the fake started is gone');
  };
  return { engine, calls, controls, rootfs, done };
}

/** Pids of processes whose command line names `dir` (the fake's agents). */
function agentsUnder(dir: string): number[] {
  return fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir);
    } catch {
      return false; // gone meanwhile
    }
  }).map(Number);
}

async function output(calls: SandboxCalls, id: string, argv: string[]): Promise<{ out: string; code: number | null }> {
  const p = await calls.exec(id, { argv });
  let out = '';
  p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  p.stderr.resume();
  const [status] = await Promise.all([p.wait(), new Promise((r) => p.stdout.on('end', r))]);
  return { out, code: status.exitCode };
}

const rejectsWith = (code: ErrorCode, re: RegExp) => (e: unknown) => isHutchError(e, code) && re.test((e as Error).message);

test('fake platform: create → ready, start → running, exec, pause ⇄ resume, stop, rm; the record names the platform', async () => {
  const f = fakeEngine();
  try {
    const sb = await f.engine.create({ rootfs: f.rootfs, name: 'one' });
    assert.equal(sb.status, 'ready');
    assert.equal(sb.platform, 'fake');
    assert.equal(sb.handle?.platform, 'fake');
    const started = await f.engine.start('one');
    assert.equal(started.status, 'running');
    assert.ok(started.initPid && started.initStartTime, 'the init pid and start time are recorded');
    assert.deepEqual(await output(f.calls, sb.id, ['sh', '-c', 'echo hello']), { out: 'hello\n', code: 0 });
    assert.equal((await f.engine.pause('one')).status, 'paused');
    await assert.rejects(f.engine.pause('one'), rejectsWith('ESTATE', /paused → paused is not a valid transition/));
    assert.equal((await f.engine.resume('one')).status, 'running');
    const labelled = await f.engine.update('one', { labels: { team: 'a' } });
    assert.deepEqual(labelled.labels, { team: 'a' });
    const stopped = await f.engine.stop('one', 2000);
    assert.equal(stopped.status, 'stopped');
    await assert.rejects(f.engine.start('one'), rejectsWith('ESTATE', /stopped sandbox cannot run again/));
    await f.engine.remove('one');
    assert.deepEqual(await f.engine.list(), []);
    assert.ok(!fs.existsSync(f.engine.store.dir(sb.id)));
    assert.deepEqual(f.controls.calls, [`create ${sb.id}`, `start ${sb.id}`, 'pause', 'resume', `destroy ${sb.id}`]);
  } finally {
    await f.done();
  }
});

test('fake platform: a main command\'s exit code and output come through the platform\'s exit record and log', async () => {
  const f = fakeEngine();
  try {
    const sb = await f.engine.create({ rootfs: f.rootfs, command: ['sh', '-c', 'echo from-main; exit 3'] });
    await f.engine.start(sb.id);
    const end = await f.engine.waitStopped(sb.id);
    assert.equal(end.exitCode, 3);
    const chunks: Buffer[] = [];
    await f.engine.logs(sb.id, (c) => chunks.push(c));
    assert.equal(Buffer.concat(chunks).toString(), 'from-main\n');
  } finally {
    await f.done();
  }
});

test('fake platform: an init killed from outside shows as stopped, agentDied; a reused pid is not taken for the init', async () => {
  const f = fakeEngine();
  try {
    const a = await f.engine.create({ rootfs: f.rootfs });
    const pid = (await f.engine.start(a.id)).initPid!;
    process.kill(pid, 'SIGKILL');
    const end = await f.engine.waitStopped(a.id);
    assert.equal(end.status, 'stopped');
    assert.equal(end.agentDied, true);
    await assert.rejects(f.calls.exec(a.id, { argv: ['true'] }), rejectsWith('ESTATE', /it is stopped/));

    const b = await f.engine.create({ rootfs: f.rootfs });
    await f.engine.start(b.id);
    // The record says the init started at another time: its pid now belongs to someone else.
    const record = f.engine.mustRead(b.id);
    record.initStartTime = (record.initStartTime ?? 0) + 1;
    f.engine.store.write(record);
    assert.equal((await f.engine.inspect(b.id)).status, 'stopped');
  } finally {
    await f.done();
  }
});

test('fake platform: crashes and failures: a failed create leaves nothing; a failed cleanup keeps the record for rm -f; interrupted phases', async () => {
  const f = fakeEngine();
  try {
    f.controls.failCreate = true;
    await assert.rejects(f.engine.create({ rootfs: f.rootfs, name: 'bad' }), rejectsWith('EEXEC', /fake create of .* failed/));
    assert.deepEqual(await f.engine.list(), [], 'the failed create left no record');
    assert.match(f.controls.calls.at(-1)!, /^destroy /, 'the platform was asked to undo it');

    f.controls.failDestroy = true;
    await assert.rejects(f.engine.create({ rootfs: f.rootfs, name: 'worse' }));
    const [kept] = await f.engine.list();
    assert.equal(kept?.status, 'stopped');
    assert.match(kept!.note!, /create failed \(fake create of .* failed\); cleanup failed: fake destroy failed/);
    f.controls.failCreate = false;
    f.controls.failDestroy = false;
    await f.engine.remove('worse', true);

    // A hutch killed mid-create (phase creating, lock free) and mid-start (ready, init started).
    const c = await f.engine.create({ rootfs: f.rootfs });
    const creating = f.engine.mustRead(c.id);
    creating.phase = 'creating';
    f.engine.store.write(creating);
    const seen = await f.engine.inspect(c.id);
    assert.equal(seen.status, 'stopped');
    assert.equal(seen.note, 'interrupted create');
    await f.engine.remove(c.id);

    const d = await f.engine.create({ rootfs: f.rootfs });
    await f.engine.start(d.id);
    const ready = f.engine.mustRead(d.id);
    ready.phase = 'ready';
    f.engine.store.write(ready);
    assert.match((await f.engine.inspect(d.id)).note ?? '', /interrupted start: its init runs/);
    assert.equal((await f.engine.start(d.id)).status, 'running', 'start finishes an interrupted start');
    assert.equal((await f.engine.inspect(d.id)).note, undefined);
  } finally {
    await f.done();
  }
});

test('fake platform: what it cannot do is refused by capability, and unknown platforms by name', async () => {
  const f = fakeEngine();
  try {
    await assert.rejects(f.engine.create({ rootfs: f.rootfs, hardening: { idRange: 'private' } }), rejectsWith('EUNSUPPORTED', /the fake platform cannot give a sandbox a private id range/));
    await assert.rejects(f.engine.create({ rootfs: f.rootfs, platform: 'warp' }), rejectsWith('EINVAL', /unknown platform "warp": use fake/));
    assert.throws(() => new Engine({ root: '/nonexistent-hutch', platforms: fakeRegistry().registry, platform: 'nope' }), rejectsWith('EINVAL', /unknown platform "nope"/));
    assert.match((await f.engine.privateIdsProblem()) ?? '', /the fake platform has no private id ranges/);
    assert.deepEqual(await f.engine.capabilities(), { directExec: false, privateIds: false, checkpoint: false });
  } finally {
    await f.done();
  }
});
