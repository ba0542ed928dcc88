// Benchmark 4: memory per idle sandbox with many running. Three phases, one after the other so that each
// is measured alone: N hutch sandboxes (engine.create + start), N runc containers of the same config with
// busybox `sleep` as init (the container's own floor), and N bare `node` processes on the host with the
// agent's node flags (the floor of any agent written for node). Each phase settles, is measured, and is
// removed before the next.
// Usage: node dist/bench/memory.js [--n 50] [--settle 5]
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Engine, SandboxCalls } from '../src/engine/index.js';
import { checkInterrupted, intOption, makeBenchRoot, onCleanup, printTable, runBench, verdict } from './common.js';
import { hutchSpec, RuncPeer, type PeerContainer } from './runc-peer.js';
import { addMem, cgroupMemory, MEMINFO_KEYS, meminfo, memOf, mib, processTable, treeOf, zeroMem, type ProcMem } from './procmem.js';

/** An idle sandbox should cost at most this much (PSS of every process hutch keeps for it). */
const TARGET_MIB = 25;

/** The node flags hutch gives its agent (between the node binary and the script in its init's args). */
function agentNodeFlags(initArgs: string[]): string[] {
  const node = initArgs.findIndex((a) => a.endsWith('/node'));
  const flags: string[] = [];
  for (const a of initArgs.slice(node + 1)) {
    if (!a.startsWith('--')) break;
    flags.push(a);
  }
  return flags;
}

/** What one phase measured, per unit (sandbox, container or process). */
interface PhaseResult {
  name: string;
  mem: ProcMem;
  processes: number;
  cgroup?: { usage: number; rss?: number; cache?: number; kernel?: number };
  meminfo: Record<string, number>;
}

/** Sums the memory of process trees rooted at `pids`, per unit. */
function perUnit(pids: number[]): { mem: ProcMem; processes: number } {
  const table = processTable();
  const total = zeroMem();
  let processes = 0;
  for (const pid of pids) {
    const tree = treeOf(pid, table);
    processes += tree.length;
    addMem(total, memOf(tree.map((p) => p.pid)));
  }
  const n = pids.length;
  return { mem: { rss: total.rss / n, pss: total.pss / n, pssAnon: total.pssAnon / n, pssFile: total.pssFile / n, uss: total.uss / n }, processes: processes / n };
}

/** Averages cgroup memory over cgroups. */
function averageCgroup(paths: string[]): PhaseResult['cgroup'] {
  const all = paths.map(cgroupMemory);
  const avg = (f: (c: (typeof all)[number]) => number | undefined) => {
    const v = all.map(f).filter((x): x is number => x !== undefined);
    return v.length === all.length ? v.reduce((a, b) => a + b, 0) / v.length : undefined;
  };
  const out: NonNullable<PhaseResult['cgroup']> = { usage: avg((c) => c.usage)! };
  for (const k of ['rss', 'cache', 'kernel'] as const) {
    const v = avg((c) => c[k]);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** meminfo deltas (after − before) per unit; MemAvailable is turned into "used" (before − after). */
function meminfoDelta(before: Record<string, number>, after: Record<string, number>, n: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of MEMINFO_KEYS) out[k === 'MemAvailable' ? 'used (−MemAvailable)' : k] = (k === 'MemAvailable' ? before[k]! - after[k]! : after[k]! - before[k]!) / n;
  return out;
}

runBench('memory: per idle sandbox', async () => {
  const n = intOption('n', 50);
  const settleMs = intOption('settle', 5) * 1000;
  const br = makeBenchRoot();
  const engine = new Engine({ root: br.root });
  const calls = new SandboxCalls(engine);
  const peer = new RuncPeer(br);
  const spec = await hutchSpec(engine, 'agent');
  const results: PhaseResult[] = [];
  console.log(`${n} of each, ${settleMs / 1000} s to settle before measuring\n`);

  // Phase 1: hutch sandboxes.
  let before = meminfo();
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    checkInterrupted();
    const sb = await engine.create({ rootfs: 'busybox' });
    ids.push(sb.id);
    await engine.start(sb.id);
  }
  await sleep(settleMs);
  const initPids = ids.map((id) => Number.parseInt(fs.readFileSync(path.join(engine.store.dir(id), 'init.pid'), 'utf8'), 10));
  const hutchMem = perUnit(initPids);
  const statsMemory = (await Promise.all(ids.map((id) => calls.stats(id)))).map((s) => s.memoryBytes ?? 0);
  const cgroupsPaths = ids.map((id) => engine.mustRead(id).handle!.state['cgroupsPath'] as string);
  // Nothing else of hutch's should stay per sandbox: no runc, no shim, no hutch process.
  const extra = processTable().filter((p) => /runc|hutch\.mjs|conmon|shim/.test(`${p.comm} ${p.cmdline}`) && p.cmdline.includes(br.root));
  results.push({ name: `hutch sandbox (agent + descendants)`, ...hutchMem, cgroup: averageCgroup(cgroupsPaths), meminfo: meminfoDelta(before, meminfo(), n) });
  const statsAvg = statsMemory.reduce((a, b) => a + b, 0) / n;
  for (const id of ids) await engine.remove(id, true);

  // Phase 2: runc containers of the same config, `sleep` as init.
  before = meminfo();
  // After an error or Ctrl-C, the root's sweep removes these (runc state, overlays, cgroups).
  const containers: PeerContainer[] = [];
  for (let i = 0; i < n; i++) {
    checkInterrupted();
    const c = peer.prepare(spec, ['sleep', '100000']);
    containers.push(c);
    await peer.createAndStart(c);
  }
  await sleep(settleMs);
  results.push({
    name: 'runc container, same config, `sleep` init', ...perUnit(containers.map((c) => peer.initPid(c))),
    cgroup: averageCgroup(containers.map((c) => `/${c.id}`)), meminfo: meminfoDelta(before, meminfo(), n),
  });
  for (const c of containers.splice(0)) await peer.remove(c);

  // Phase 3: bare node processes with the agent's flags, idle (the floor of a node agent).
  const nodeFlags = agentNodeFlags(spec.process.args);
  console.log(`bare node floor runs with the agent's flags: ${nodeFlags.join(' ')}`);
  before = meminfo();
  // Each child with a promise of its exit made at spawn: one that dies early (Ctrl-C reaches it too) is
  // still waited for, rather than waited on for an 'exit' event that has already fired.
  const nodes: { child: ChildProcess; exited: Promise<unknown> }[] = [];
  const stopNodes = async () => { await Promise.all(nodes.splice(0).map((n) => { n.child.kill('SIGKILL'); return n.exited; })); };
  onCleanup(stopNodes);
  for (let i = 0; i < n; i++) {
    checkInterrupted();
    const child = spawn(process.execPath, [...nodeFlags, '-e', 'setInterval(() => {}, 1 << 30)'], {
      // The agent's environment (PATH only): NODE_EXTRA_CA_CERTS, say, would make node load a CA bundle.
      // Own session, as for every child here: Ctrl-C stops the benchmark between steps, not its peers.
      stdio: 'ignore', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, detached: true,
    });
    nodes.push({ child, exited: once(child, 'exit').catch(() => undefined) });
    await sleep(20);
  }
  await sleep(settleMs);
  results.push({ name: 'bare idle `node` on the host, agent flags', ...perUnit(nodes.map((c) => c.child.pid!)), meminfo: meminfoDelta(before, meminfo(), n) });
  await stopNodes();
  checkInterrupted();

  printTable(['per unit, MiB', 'procs', 'PSS', 'PSS anon', 'PSS file', 'USS', 'RSS', 'cgroup usage', 'cgroup rss', 'cgroup cache', 'cgroup kmem'], results.map((r) => [
    r.name, r.processes.toFixed(1), mib(r.mem.pss), mib(r.mem.pssAnon), mib(r.mem.pssFile), mib(r.mem.uss), mib(r.mem.rss),
    r.cgroup ? mib(r.cgroup.usage) : '–', r.cgroup?.rss !== undefined ? mib(r.cgroup.rss) : '–',
    r.cgroup?.cache !== undefined ? mib(r.cgroup.cache) : '–', r.cgroup?.kernel !== undefined ? mib(r.cgroup.kernel) : '–',
  ]));
  console.log('\nsystem-wide /proc/meminfo change per unit (MiB; includes page tables, slab, kernel stacks of namespaces/mounts/cgroups):\n');
  const keys = Object.keys(results[0]!.meminfo);
  printTable(['per unit, MiB', ...keys], results.map((r) => [r.name, ...keys.map((k) => mib(r.meminfo[k]!))]));
  console.log(`\nSandboxCalls.stats memoryBytes, average: ${mib(statsAvg)} MiB`);
  console.log(`runc/shim/hutch processes left running for ${n} sandboxes: ${extra.length}${extra.length ? ` (${extra.map((p) => `${p.pid} ${p.comm}`).join(', ')})` : ''}\n`);
  const hutch = results[0]!;
  verdict(`PSS per idle sandbox ≤ ${TARGET_MIB} MiB`, hutch.mem.pss <= TARGET_MIB * 2 ** 20,
    `${mib(hutch.mem.pss)} MiB (agent tree, ${hutch.processes.toFixed(1)} processes each); ${mib(hutch.mem.pss - results[1]!.mem.pss)} MiB above a sleep container, ` +
    `${mib(hutch.mem.pss - results[2]!.mem.pss)} MiB above a bare node`);
});
