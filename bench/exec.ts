// Benchmark 2: exec into a running sandbox.
// (a) in one process, through the engine's API (the path hutchd uses): SandboxCalls.exec of `true`,
//     with the layers under it alongside (the agent's exec on a held connection, a bare ping) and the
//     host's own floor for starting a process from Node (child_process.spawn of /bin/true).
// (b) from the shell: `hutch exec ID -- true` against `runc exec ID true` into the same container, and
//     `node -e 0`.
// Usage: node dist/bench/exec.js [--n-api 200] [--n-cli 30]
import { spawn } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Engine, SandboxCalls } from '../src/engine/index.js';
import type { ProcessHandle } from '../src/agent/index.js';
import {
  hutchCmd, interleave, intOption, makeBenchRoot, ms, NODE_FLOOR, onCleanup, printTable, runBench, summarize, timeCommand, timingRow, verdict,
} from './common.js';

/** The in-process exec round trip should take at most this (p50). */
const TARGET_API_P50_MS = 5;

/** Drains a process's output and waits for its exit; `true` must exit 0. */
async function finish(p: ProcessHandle): Promise<void> {
  p.stdout.resume();
  p.stderr.resume();
  const status = await p.wait();
  if (status.exitCode !== 0) throw new Error(`true exited ${status.exitCode ?? status.signal}`);
}

/** Times one async step in ms. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** child_process.spawn of a host binary and its exit: what any Node process pays to run one. */
function spawnTrue(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/true', [], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.resume();
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`/bin/true exited ${code}`))));
  });
}

runBench('exec: a command in a running sandbox', async () => {
  const nApi = intOption('n-api', 200);
  const nCli = intOption('n-cli', 30);
  const br = makeBenchRoot();
  const engine = new Engine({ root: br.root });
  const sb = await engine.create({ rootfs: 'busybox' });
  await engine.start(sb.id);
  const calls = new SandboxCalls(engine);
  onCleanup(() => calls.closeAll());
  const record = engine.mustRead(sb.id);
  const agent = await calls.client(record);
  const env = Object.fromEntries(record.env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const raw = { argv: ['true'], env, cwd: record.cwd, uid: record.user.uid, gid: record.user.gid, stdin: false };

  console.log(`## (a) in one process, ${nApi} round trips each, interleaved (after 10 warm-up rounds)\n`);
  const api = [
    { name: 'SandboxCalls.exec true → exit (engine API)', once: () => timed(async () => finish(await calls.exec(sb.id, { argv: ['true'] }))) },
    { name: 'AgentClient.exec true → exit (held connection)', once: () => timed(async () => finish(await agent.exec(raw))) },
    { name: 'AgentClient.ping (protocol round trip)', once: () => timed(() => agent.ping()) },
    { name: 'host: child_process.spawn /bin/true → exit', once: () => timed(spawnTrue) },
  ];
  await interleave(10, api);
  const apiResults = await interleave(nApi, api);
  const apiSummaries = api.map((v) => summarize(apiResults.get(v.name)!));
  printTable(['ms', 'n', 'p50', 'p90', 'p99', 'mean'], api.map((v, i) => timingRow(v.name, apiSummaries[i]!, true)));
  const [viaEngine, viaAgent, ping, host] = apiSummaries;
  console.log(`\nengine layer (lock, state read, liveness check) ≈ ${ms(viaEngine!.p50 - viaAgent!.p50)} ms p50; ` +
    `agent exec above the host's own spawn ≈ ${ms(viaAgent!.p50 - host!.p50)} ms p50; ping ${ms(ping!.p50)} ms\n`);
  verdict(`SandboxCalls.exec p50 ≤ ${TARGET_API_P50_MS} ms`, viaEngine!.p50 <= TARGET_API_P50_MS,
    `p50 ${ms(viaEngine!.p50)} ms, p99 ${ms(viaEngine!.p99)} ms`);
  // The CLI connects afresh; the cached connection of this process is not needed any more.
  calls.closeAll();

  console.log(`\n## (b) from the shell, ${nCli} runs each, interleaved (after 3 warm-up rounds)\n`);
  const runcRoot = path.join(br.root, 'runc');
  const cli = [
    { name: 'node -e 0', once: async () => (await timeCommand(NODE_FLOOR)).ms },
    { name: 'hutch exec ID -- true', once: async () => (await timeCommand(hutchCmd(br.root, ['exec', sb.id, '--', 'true']))).ms },
    { name: 'runc exec ID true (same container)', once: async () => (await timeCommand({ file: 'runc', args: ['--root', runcRoot, 'exec', sb.id, 'true'] })).ms },
  ];
  await interleave(3, cli);
  const cliResults = await interleave(nCli, cli);
  const [node, hutch, runc] = cli.map((v) => summarize(cliResults.get(v.name)!));
  printTable(['wall time, ms', 'n', 'p50', 'p90', 'mean'], cli.map((v, i) => timingRow(v.name, [node, hutch, runc][i]!)));
  console.log('');
  printTable(['', 'p50', 'mean'], [
    ['hutch − node', ms(hutch!.p50 - node!.p50), ms(hutch!.mean - node!.mean)],
    ['hutch − runc', ms(hutch!.p50 - runc!.p50), ms(hutch!.mean - runc!.mean)],
    ['hutch / runc', (hutch!.p50 / runc!.p50).toFixed(2), (hutch!.mean / runc!.mean).toFixed(2)],
    ['hutch / (node + in-process exec)', (hutch!.p50 / (node!.p50 + viaEngine!.p50)).toFixed(2), (hutch!.mean / (node!.mean + viaEngine!.mean)).toFixed(2)],
  ]);
  console.log('');
  await engine.remove(sb.id, true);
});
