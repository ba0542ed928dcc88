// Benchmark 3: a new sandbox until its agent answers. engine.create + engine.start (start returns when
// the agent answers a ping) against runc create + start of the same config.json with the same agent as
// init, polled the same way; runc with `sleep` as init shows what the agent's own boot costs; and the
// `hutch run -d busybox` CLI against `node -e 0`. Every sandbox and container is removed after it is timed.
// Usage: node dist/bench/create.js [--n 20]
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Engine } from '../src/engine/index.js';
import { hutchCmd, interleave, waitForAgent, intOption, makeBenchRoot, ms, NODE_FLOOR, printTable, runBench, summarize, timeCommand, timingRow } from './common.js';
import { hutchSpec, RuncPeer, type PeerContainer } from './runc-peer.js';

runBench('create: a sandbox until its agent answers', async () => {
  const n = intOption('n', 20);
  const br = makeBenchRoot();
  const engine = new Engine({ root: br.root });
  const peer = new RuncPeer(br);
  const agentSpec = await hutchSpec(engine, 'agent');
  const createMs: number[] = [], startMs: number[] = [], removeMs: number[] = [];

  const timeRemove = async (fn: () => Promise<void>) => {
    const t0 = performance.now();
    await fn();
    removeMs.push(performance.now() - t0);
  };
  const peerRun = async (args: string[] | null, ready: (c: PeerContainer) => Promise<void>) => {
    const c = peer.prepare(agentSpec, args); // the overlay mount is not timed: runc's figure is runc's own
    try {
      const t0 = performance.now();
      await peer.createAndStart(c);
      await ready(c);
      return performance.now() - t0;
    } finally {
      await peer.remove(c);
    }
  };
  const variants = [
    {
      name: 'engine.create + engine.start (agent answers)',
      once: async () => {
        const t0 = performance.now();
        const sb = await engine.create({ rootfs: 'busybox' });
        const t1 = performance.now();
        await engine.start(sb.id);
        const t2 = performance.now();
        createMs.push(t1 - t0);
        startMs.push(t2 - t1);
        await timeRemove(() => engine.remove(sb.id, true));
        return t2 - t0;
      },
    },
    {
      name: 'runc create + start, same config (agent answers)',
      once: () => peerRun(null, (c) => waitForAgent(path.join(c.run, 'agent.sock'))),
    },
    { name: 'runc create + start, `sleep` as init', once: () => peerRun(['sleep', '1000'], async () => undefined) },
    {
      name: 'CLI: hutch run -d busybox',
      once: async () => {
        const r = await timeCommand(hutchCmd(br.root, ['run', '-d', 'busybox']));
        await engine.remove(r.stdout.trim(), true);
        return r.ms;
      },
    },
    { name: 'CLI: node -e 0', once: async () => (await timeCommand(NODE_FLOOR)).ms },
  ];
  console.log(`${n} rounds, interleaved, after 2 warm-up rounds\n`);
  await interleave(2, variants);
  createMs.length = startMs.length = removeMs.length = 0;
  const results = await interleave(n, variants);
  const s = variants.map((v) => summarize(results.get(v.name)!));
  printTable(['ms', 'n', 'p50', 'p90', 'mean'], [
    ...variants.map((v, i) => timingRow(v.name, s[i]!)),
    timingRow('  of which engine.create (bundle, overlay, runc create)', summarize(createMs)),
    timingRow('  of which engine.start (runc start, agent boot, ping)', summarize(startMs)),
    timingRow('(not in the above) engine.remove(id, force)', summarize(removeMs)),
  ]);
  const [hutch, runcAgent, runcSleep, cli, node] = s;
  console.log('');
  printTable(['', 'p50', 'mean'], [
    ['engine − runc (same agent)', ms(hutch!.p50 - runcAgent!.p50), ms(hutch!.mean - runcAgent!.mean)],
    ['engine / runc (same agent)', (hutch!.p50 / runcAgent!.p50).toFixed(2), (hutch!.mean / runcAgent!.mean).toFixed(2)],
    ['agent boot: runc agent − runc sleep', ms(runcAgent!.p50 - runcSleep!.p50), ms(runcAgent!.mean - runcSleep!.mean)],
    ['CLI − node − engine', ms(cli!.p50 - node!.p50 - hutch!.p50), ms(cli!.mean - node!.mean - hutch!.mean)],
  ]);
  console.log('');
});
