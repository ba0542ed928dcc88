// Benchmark 1: a one-shot sandbox. `hutch run --rm busybox -- true` against `runc run` of the same
// config.json on the same kind of overlay, and `node -e 0` (the floor of every CLI call), interleaved.
// Usage: node dist/bench/oneshot.js [--n 30] [--warmup 3]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Engine } from '../src/engine/index.js';
import {
  HUTCH_CLI, hutchCmd, interleave, intOption, makeBenchRoot, ms, NODE_FLOOR, printTable, runBench, summarize, timeCommand, timingRow, verdict,
} from './common.js';
import { hutchSpec, RuncPeer } from './runc-peer.js';

/** The `hutch` command on the PATH when it runs this install's bundle (as a link or from a launcher script). */
function hutchOnPath(): string | null {
  const found = spawnSync('sh', ['-c', 'command -v hutch'], { encoding: 'utf8' }).stdout.trim();
  if (!found) return null;
  if (fs.realpathSync(found) === HUTCH_CLI) return found;
  const text = fs.readFileSync(found, 'utf8').slice(0, 4096);
  return text.startsWith('#!') && text.includes(HUTCH_CLI) ? found : null;
}

const NODE_ROW = 'node -e 0';
const HUTCH_ROW = 'node hutch.cjs run --rm busybox -- true';
const RUNC_ROW = 'runc run (same config.json, own overlay)';

/** hutch may spend this much above runc + node's own start-up. */
const TARGET_OVERHEAD_MS = 20;

runBench('oneshot: hutch run --rm busybox -- true', async () => {
  const n = intOption('n', 30);
  const warmup = intOption('warmup', 3);
  const br = makeBenchRoot();
  const engine = new Engine({ root: br.root });
  const peer = new RuncPeer(br);
  // The exact config hutch gives runc for `hutch run busybox -- true` (direct mode: the command is the init).
  const spec = await hutchSpec(engine, 'direct');
  const prepareMs: number[] = [];
  const removeMs: number[] = [];
  const hutchRun = hutchCmd(br.root, ['run', '--rm', 'busybox', '--', 'true']);
  /** One `runc run` of a fresh peer container; the overlay mount and its removal are not timed. */
  const runcOnce = async (withLog: boolean) => {
    const t0 = performance.now();
    const c = peer.prepare(spec, ['true']);
    prepareMs.push(performance.now() - t0);
    try {
      const cmd = peer.runCmd(c);
      if (withLog) cmd.args.unshift('--log', `${c.dir}/runc.log`, '--log-format', 'json');
      return (await timeCommand(cmd)).ms;
    } finally {
      const t1 = performance.now();
      await peer.remove(c);
      removeMs.push(performance.now() - t1);
    }
  };
  const variants = [
    { name: NODE_ROW, once: async () => (await timeCommand(NODE_FLOOR)).ms },
    { name: HUTCH_ROW, once: async () => (await timeCommand(hutchRun)).ms },
    { name: RUNC_ROW, once: () => runcOnce(false) },
    { name: 'runc run --log F --log-format json (as hutch calls it)', once: () => runcOnce(true) },
  ];
  // What users type: the `hutch` on the PATH (a launcher script or a link to the bundle), if it runs this install.
  const onPath = hutchOnPath();
  if (onPath) variants.splice(2, 0, { name: '`hutch` on the PATH, run --rm busybox -- true', once: async () => (await timeCommand({ file: onPath, args: ['--root', br.root, 'run', '--rm', 'busybox', '--', 'true'] })).ms });
  else console.log('no `hutch` on the PATH that runs this install: its row is left out');
  console.log(`warm-up: ${warmup} rounds; then ${n} rounds, interleaved\n`);
  await interleave(warmup, variants);
  prepareMs.length = 0;
  removeMs.length = 0;
  const results = await interleave(n, variants);
  const summaries = variants.map((v) => summarize(results.get(v.name)!));
  const [node, hutch, runc] = [NODE_ROW, HUTCH_ROW, RUNC_ROW].map((name) => summarize(results.get(name)!));
  printTable(['wall time, ms', 'n', 'p50', 'p90', 'mean'], variants.map((v, i) => timingRow(v.name, summaries[i]!)));
  const prep = summarize(prepareMs), rm = summarize(removeMs);
  console.log(`\n(not timed in runc's row: the bench's own overlay mount + config write p50 ${ms(prep.p50)} ms, runc delete + umount + cgroup + rm p50 ${ms(rm.p50)} ms)\n`);
  const floor50 = runc!.p50 + node!.p50, floorMean = runc!.mean + node!.mean;
  printTable(['', 'p50', 'mean'], [
    ['hutch − runc', ms(hutch!.p50 - runc!.p50), ms(hutch!.mean - runc!.mean)],
    ['hutch − (runc + node)', ms(hutch!.p50 - floor50), ms(hutch!.mean - floorMean)],
    ['hutch / runc', (hutch!.p50 / runc!.p50).toFixed(2), (hutch!.mean / runc!.mean).toFixed(2)],
    ['hutch / (runc + node)', (hutch!.p50 / floor50).toFixed(2), (hutch!.mean / floorMean).toFixed(2)],
  ]);
  console.log('');
  verdict(`hutch ≤ runc + node + ${TARGET_OVERHEAD_MS} ms (p50)`, hutch!.p50 <= floor50 + TARGET_OVERHEAD_MS,
    `${ms(hutch!.p50)} vs ${ms(runc!.p50)} + ${ms(node!.p50)} + ${TARGET_OVERHEAD_MS} = ${ms(floor50 + TARGET_OVERHEAD_MS)} ms`);
  verdict(`hutch ≤ runc + node + ${TARGET_OVERHEAD_MS} ms (mean)`, hutch!.mean <= floorMean + TARGET_OVERHEAD_MS,
    `${ms(hutch!.mean)} vs ${ms(runc!.mean)} + ${ms(node!.mean)} + ${TARGET_OVERHEAD_MS} = ${ms(floorMean + TARGET_OVERHEAD_MS)} ms`);
});
