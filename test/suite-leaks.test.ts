// The suite's leak check (test/leaks.ts) counts only what its own run made. On a host where another
// state root has a private-id sandbox running, a docker-registry runs that the run did not start and
// /tmp/hutch-* dirs of others are there (one with a mount in it), none of those is a leak; the same
// things of the run's own are. The run here is one made for the test (its own record and mark), so
// the suite's real run is untouched.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { processStartTime } from '../src/linux/index.js';
import { cleanRoot, cleanUpAll, hutchOk, makeRoot } from './helpers.js';
import { hutchMounts } from './host-scan.js';
import { runLeftovers } from './leaks.js';
import { hostSnapshot, openRun, RUN_ENV, RUNS_DIR } from './suite-run.js';

/** Starts a process and resolves once it has run (or failed to). */
function started(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const child = spawn(file, args, { stdio: 'ignore', env });
  return new Promise((resolve, reject) => { child.once('spawn', () => resolve(child)); child.once('error', reject); });
}

/** Kills `child` and waits for it. */
async function killed(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
}

test('leak check: a foreign root\'s private sandbox, a foreign registry and others\' temp dirs are not counted; the run\'s own things are', { timeout: 120_000 }, async () => {
  // Before the run begins: a temp dir that is not the run's.
  const foreignTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-leakcheck-foreign-'));
  // Named as this process's run would be: removed as stale once this process is gone, should the test fail.
  const run = openRun(RUNS_DIR, `${process.pid}-${processStartTime(process.pid)}`, hostSnapshot);
  const ownRoot = makeRoot('leakcheck-own');
  run.recordRoot(ownRoot);
  const foreignRoot = makeRoot('leakcheck-foreign'); // the suite's, but not this run's
  let ownTmp = '';
  const lateForeignTmp = `/tmp/hutch-leakcheck-late-${process.pid}`;
  let ownId = '';
  let registry: ChildProcess | undefined;
  let marked: ChildProcess | undefined;
  try {
    const foreignId = (await hutchOk(foreignRoot, ['run', '-d', '--userns', 'private', 'busybox', '--', 'sleep', '600'])).trim();
    fs.writeFileSync(path.join(foreignTmp, 'registry.yml'), `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${foreignTmp}/data\nhttp:\n  addr: 127.0.0.1:0\n  secret: leakcheck\n`);
    registry = await started('/usr/bin/docker-registry', ['serve', path.join(foreignTmp, 'registry.yml')], process.env);
    // What the run left: a private sandbox in its root, a process with its mark, a temp dir made after it began.
    ownId = (await hutchOk(ownRoot, ['run', '-d', '--userns', 'private', 'busybox', '--', 'sleep', '600'])).trim();
    marked = await started('sleep', ['600'], { ...process.env, [RUN_ENV]: run.id });
    ownTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-leakcheck-own-'));
    run.recordTemp(ownTmp); // as mkdtemp does for the run of the process (test/suite-run.ts)
    // Another's, made after the run began, with a mount in it (another test run's e2e dir, say).
    fs.mkdirSync(lateForeignTmp);
    fs.mkdirSync(path.join(lateForeignTmp, 'mnt'));
    assert.equal(spawnSync('mount', ['-t', 'tmpfs', 'hutch-leakcheck', path.join(lateForeignTmp, 'mnt')]).status, 0);

    // The check before this one counted every mount that mentions hutch, and every docker-registry.
    assert.ok(hutchMounts().some((m) => m.point.startsWith(`${foreignRoot}/`)), 'the foreign sandbox has hutch mounts');

    const left = runLeftovers(run);
    assert.deepEqual(left.roots, [ownRoot]);
    const pids = left.processes.map((l) => Number(l.split(' ')[0]));
    assert.ok(pids.includes(marked.pid!), `the marked process is counted: ${left.processes.join('; ')}`);
    assert.ok(left.processes.some((l) => / sleep 600$/.test(l) && Number(l.split(' ')[0]) !== marked!.pid), `the own sandbox's init is counted: ${left.processes.join('; ')}`);
    assert.ok(!pids.includes(registry.pid!), 'the foreign registry is not counted');
    const foreignInit = Number(fs.readFileSync(path.join(foreignRoot, 'sandboxes', foreignId, 'init.pid'), 'utf8'));
    assert.ok(!pids.includes(foreignInit), 'the foreign sandbox\'s init is not counted');
    assert.ok(left.mounts.length > 0 && left.mounts.every((l) => l.includes(ownRoot)), `only the own root's mounts: ${left.mounts.join('; ')}`);
    assert.ok(left.cgroups.some((c) => c.endsWith(`/hutch-${ownId}`)), 'the own sandbox\'s cgroup is counted');
    assert.ok(!left.cgroups.some((c) => c.includes(foreignId)), 'the foreign sandbox\'s cgroup is not');
    assert.deepEqual(left.tmp, [ownTmp], 'the temp dir the run made, not the others\'');
    assert.ok(!left.mounts.some((l) => l.includes(lateForeignTmp)), 'a mount in a temp dir of another\'s is not counted');
    assert.deepEqual(left.idSlots.map((s) => s.split(' ')[1]), [ownId], 'the own sandbox\'s id slot, not the foreign one\'s');
  } finally {
    await cleanUpAll(
      () => killed(marked),
      () => killed(registry),
      () => cleanRoot(ownRoot),
      () => cleanRoot(foreignRoot),
      () => ownTmp && fs.rmSync(ownTmp, { recursive: true, force: true }),
      () => fs.rmSync(foreignTmp, { recursive: true, force: true }),
      () => { spawnSync('umount', [path.join(lateForeignTmp, 'mnt')]); fs.rmSync(lateForeignTmp, { recursive: true, force: true }); },
    );
  }
  // Cleaned up: nothing of the run is left (other test runs on the host may have things of their own).
  const after = runLeftovers(run);
  run.remove();
  assert.deepEqual([after.roots, after.idSlots], [[], []]);
  assert.deepEqual(after.processes.filter((l) => / sleep 600$/.test(l)), [], 'no process of the run');
  assert.deepEqual(after.mounts.filter((l) => l.includes(ownRoot)), [], 'no mount of the run');
  assert.deepEqual(after.cgroups.filter((c) => c.includes(ownId)), [], 'no cgroup of the run');
});

test('a test process that ends without stopping its registry exits, and the registry dies with it', { timeout: 60_000 }, async () => {
  // Before, the registry's child process and pipes kept the test process alive: the file hung for good.
  const kit = new URL('./image/registry-kit.js', import.meta.url).href;
  const script = `import { startRegistry } from ${JSON.stringify(kit)}; const r = await startRegistry(); console.log(r.pid, r.dir);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('close', (c, s) => r([c, s])));
  clearTimeout(timer);
  const [pid, dir] = out.trim().split(' ');
  try {
    assert.deepEqual([code, signal], [0, null], `the test process exited by itself: ${err}`);
    assert.match(err, /^test: killing \/usr\/bin\/docker-registry \(pid \d+\), which the test did not stop$/m);
    assert.equal(processStartTime(Number(pid)), null, 'the registry is gone');
  } finally {
    if (pid && processStartTime(Number(pid)) !== null) process.kill(Number(pid), 'SIGKILL');
    if (dir?.startsWith(os.tmpdir())) fs.rmSync(dir, { recursive: true, force: true }); // what it left, as the leak check would report
  }
});

test('cleanUpAll runs every step even when earlier ones fail, then throws the first failure (all of them when several)', async () => {
  const ran: number[] = [];
  await assert.rejects(cleanUpAll(() => { ran.push(1); throw new Error('one'); }, async () => { ran.push(2); }, () => { ran.push(3); }), /^Error: one$/);
  assert.deepEqual(ran, [1, 2, 3]);
  await assert.rejects(cleanUpAll(() => { throw new Error('a'); }, async () => { throw new Error('b'); }), (e: unknown) => e instanceof AggregateError && /2 clean-up steps failed: a; b/.test(e.message));
  await cleanUpAll(() => undefined, async () => undefined);
});
