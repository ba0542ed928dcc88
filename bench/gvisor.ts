// Benchmark: the gvisor platform side by side with the container platform and with runsc driven
// directly (the same config.json, the same agent): create until the agent answers, an exec round
// trip through the engine's API, memory of an idle sandbox, checkpoint (time, size), restore until
// the agent answers, and a fork of 5 from one snapshot.
// Usage: node dist/bench/gvisor.js [--n 10] [--execs 100]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Engine, SandboxCalls } from '../src/engine/index.js';
import { interleave, waitForAgent, intOption, makeBenchRoot, ms, onCleanup, printTable, runBench, runQuiet, summarize, timeCommand, timingRow, verdict, type Cmd } from './common.js';
import { RuncPeer, type PeerContainer, type Spec } from './runc-peer.js';
import { cgroupMemory } from './procmem.js';

const RUNSC_GLOBALS = ['--platform=ptrace', '--network=none', '--host-uds=all'];

/** One exec of `true` through the engine's calls, to its exit; ms. */
async function execOnce(calls: SandboxCalls, id: string): Promise<number> {
  const t0 = performance.now();
  const p = await calls.exec(id, { argv: ['true'] });
  p.stdout.resume();
  p.stderr.resume();
  await Promise.all([p.wait(), new Promise((r) => p.stdout.on('end', r))]);
  return performance.now() - t0;
}

runBench('gvisor: create, exec, memory, checkpoint, restore, fork', async () => {
  const n = intOption('n', 10);
  const execs = intOption('execs', 100);
  const br = makeBenchRoot();
  const snapRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-bench-snap-'));
  process.env.HUTCH_SNAPSHOT_ROOT = snapRoot;
  onCleanup(() => fs.rmSync(snapRoot, { recursive: true, force: true }));
  const engine = new Engine({ root: br.root });
  const calls = new SandboxCalls(engine);
  onCleanup(() => calls.closeAll());
  const peer = new RuncPeer(br);
  const runscRoot = path.join(br.root, 'peer', 'runsc');
  fs.mkdirSync(runscRoot, { mode: 0o700 });
  const runsc = (args: string[]): Cmd => ({ file: 'runsc', args: ['--root', runscRoot, ...RUNSC_GLOBALS, ...args] });
  // The very spec hutch writes for a gvisor sandbox (rro dropped, no OCI seccomp).
  const probe = await engine.create({ rootfs: 'busybox', platform: 'gvisor' });
  const gvSpec = JSON.parse(fs.readFileSync(path.join(engine.store.dir(probe.id), 'bundle', 'config.json'), 'utf8')) as Spec;
  await engine.remove(probe.id, true);
  const peerRemove = async (c: PeerContainer) => {
    await runQuiet(runsc(['delete', '--force', c.id]));
    await peer.remove(c);
  };

  const timed = async (fn: () => Promise<unknown>) => { const t0 = performance.now(); await fn(); return performance.now() - t0; };
  const engineVariant = (platform: string) => ({
    name: `engine.create + start on ${platform} (agent answers)`,
    once: async () => {
      let id = '';
      const t = await timed(async () => { id = (await engine.create({ rootfs: 'busybox', platform })).id; await engine.start(id); });
      await engine.remove(id, true);
      return t;
    },
  });
  const variants = [
    engineVariant('gvisor'),
    {
      name: 'runsc create + start, same config (agent answers)',
      once: async () => {
        const c = peer.prepare(gvSpec, null);
        try {
          return await timed(async () => {
            await timeCommand({ ...runsc(['create', '--bundle', c.bundle, c.id]), logFile: c.log });
            await timeCommand(runsc(['start', c.id]));
            await waitForAgent(path.join(c.run, 'agent.sock'));
          });
        } finally {
          await peerRemove(c);
        }
      },
    },
    engineVariant('container'),
  ];
  console.log(`create: ${n} rounds, interleaved, after 1 warm-up round\n`);
  await interleave(1, variants);
  const created = await interleave(n, variants);
  const cs = variants.map((v) => summarize(created.get(v.name)!));
  printTable(['ms', 'n', 'p50', 'p90', 'mean'], variants.map((v, i) => timingRow(v.name, cs[i]!)));
  const [gvCreate, runscCreate, ctCreate] = cs;
  console.log(`\n  gvisor engine / runsc alone: p50 ${(gvCreate!.p50 / runscCreate!.p50).toFixed(2)}; gvisor / container: ${(gvCreate!.p50 / ctCreate!.p50).toFixed(2)}`);
  verdict('create ≤ runsc alone + 10%', gvCreate!.p50 <= runscCreate!.p50 * 1.1, `${ms(gvCreate!.p50)} vs ${ms(runscCreate!.p50)}`);

  // Exec round trips, and memory of idle sandboxes.
  const gv = await engine.create({ rootfs: 'busybox', platform: 'gvisor' });
  await engine.start(gv.id);
  const ct = await engine.create({ rootfs: 'busybox' });
  await engine.start(ct.id);
  for (let i = 0; i < 5; i++) { await execOnce(calls, gv.id); await execOnce(calls, ct.id); }
  const gvExec: number[] = [], ctExec: number[] = [];
  for (let i = 0; i < execs; i++) { gvExec.push(await execOnce(calls, gv.id)); ctExec.push(await execOnce(calls, ct.id)); }
  console.log(`\nexec of \`true\` through SandboxCalls (agent connection kept), ${execs} each, alternating\n`);
  const ge = summarize(gvExec), ce = summarize(ctExec);
  printTable(['ms', 'n', 'p50', 'p90', 'mean'], [timingRow('gvisor', ge), timingRow('container', ce)]);
  verdict('exec round trip p50 ≤ 15 ms on gvisor', ge.p50 <= 15, ms(ge.p50));
  await sleep(3000); // the agents give memory back after 2 s idle
  const mem = (id: string) => cgroupMemory(engine.mustRead(id).handle!.state['cgroupsPath'] as string);
  const gm = mem(gv.id), cm = mem(ct.id);
  console.log('');
  printTable(['idle sandbox (cgroup memory)', 'usage', 'rss'], [
    ['gvisor (sentry + gofer + agent, page cache)', `${(gm.usage / 1048576).toFixed(1)} MiB`, gm.rss !== undefined ? `${(gm.rss / 1048576).toFixed(1)} MiB` : '-'],
    ['container (agent)', `${(cm.usage / 1048576).toFixed(1)} MiB`, cm.rss !== undefined ? `${(cm.rss / 1048576).toFixed(1)} MiB` : '-'],
  ]);
  await engine.remove(ct.id, true);

  // Checkpoint, restore, fork.
  await calls.exec(gv.id, { argv: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /root/n; sleep 0.1; done'] });
  const ckMs: number[] = [], sizes: number[] = [];
  let source = gv.id;
  let snapId = '';
  for (let i = 0; i < Math.min(n, 5); i++) {
    const t0 = performance.now();
    const snap = await engine.snapshots().checkpoint(source, { leaveRunning: true });
    ckMs.push(performance.now() - t0);
    sizes.push(snap.sizeBytes);
    if (snapId) engine.snapshots().store.remove(snapId);
    snapId = snap.id;
  }
  const t1 = performance.now();
  const stopSnap = await engine.snapshots().checkpoint(source);
  const stopMs = performance.now() - t1;
  engine.snapshots().store.remove(snapId);
  snapId = stopSnap.id;
  const restoreMs: number[] = [];
  for (let i = 0; i < n; i++) {
    let id = '';
    restoreMs.push(await timed(async () => { id = (await engine.snapshots().restore(snapId)).id; }));
    await engine.remove(id, true);
  }
  const forkIds: string[] = [];
  const forkMs = await timed(async () => { for (let i = 0; i < 5; i++) forkIds.push((await engine.snapshots().restore(snapId)).id); });
  const counts = await Promise.all(forkIds.map(async (id) => {
    const p = await calls.exec(id, { argv: ['cat', '/root/n'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.resume();
    await Promise.all([p.wait(), new Promise((r) => p.stdout.on('end', r))]);
    return Number(out);
  }));
  for (const id of [...forkIds, source]) await engine.remove(id, true);
  source = '';
  engine.snapshots().store.remove(snapId);
  console.log(`\ncheckpoint and restore (a busybox sandbox with its agent and a shell loop)\n`);
  const rs = summarize(restoreMs);
  printTable(['ms', 'n', 'p50', 'p90', 'mean'], [
    timingRow('checkpoint --leave-running (checkpoint + restore in place)', summarize(ckMs)),
    ['checkpoint (the sandbox stops)', 1, ms(stopMs), ms(stopMs), ms(stopMs)],
    timingRow('restore until the agent answers', rs),
    ['fork: 5 restores of one snapshot, one after another', 1, ms(forkMs), ms(forkMs), ms(forkMs)],
  ]);
  console.log(`\n  snapshot size: ${(summarize(sizes).p50 / 1048576).toFixed(1)} MiB (runsc image + writable layer); the forks' loops: ${counts.join(', ')}`);
  verdict('restore ≤ 500 ms (p50)', rs.p50 <= 500, ms(rs.p50));
  console.log('');
});
